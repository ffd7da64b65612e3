// Create: pick or drop a file, upload it resumably (tus), trim it over a strip of its own frames,
// pick a look from real previews of the clip, a sound (search, trending, listen, mix level), write a
// caption with hashtag suggestions, choose who can watch, post, and follow the job until it is ready.
import { api, csrfToken, hue, icon, idempotencyKey, toast } from "./api.js";
import { captionsEditor } from "./captions-editor.js";
import { recorder } from "./recorder.js";
import { textOverlays } from "./text-overlays.js";

const musicIcon = () => icon("music");

const root = document.getElementById("create");
const $ = (selector) => root.querySelector(selector);
const MIN_SECONDS = 1;
const STRIP_FRAMES = 8;

const state = {
  uploadId: null,
  duration: 0,
  tus: null,
  paused: false,
  filter: "none",
  intensity: 80,
  trimStart: 0,
  trimEnd: 0,
  soundtrack: "original",
  song: null,
  mix: 80,
  draftId: null, // the draft this edit is kept as, once saved
  previewAt: 0, // seconds of the edited video the preview shows
  coverAt: 0, // seconds of the upload (inside the trim) the poster is taken at
};

const fmt = (s) => `${s.toFixed(1)} s`;
const sizeText = (bytes) => (bytes >= 1048576 ? `${(bytes / 1048576).toFixed(1)} MB` : `${Math.ceil(bytes / 1024)} KB`);

function previewUrl(filter, at, intensity = state.intensity) {
  const q = new URLSearchParams({
    filter,
    intensity: String(filter === "none" ? 0 : intensity),
    at: (Math.round(at * 10) / 10).toFixed(1),
  });
  return `/api/v1/uploads/${encodeURIComponent(state.uploadId)}/preview?${q}`;
}

// 1. upload ---------------------------------------------------------------------------------

function uploadError(message) {
  const box = $(".upload-error");
  box.textContent = message;
  box.hidden = !message;
  if (message) {
    $(".upload-status").hidden = true;
    $("#dropzone").hidden = false;
  }
}

function serverMessage(err) {
  try {
    const body = JSON.parse(err.originalResponse?.getBody() ?? "");
    if (body?.error?.message) return body.error.message;
  } catch {
    /* not JSON: fall through */
  }
  return "The upload did not get through. Check your connection and try again.";
}

function startUpload(file) {
  uploadError("");
  if (!file) return;
  const maxBytes = Number(root.dataset.maxBytes);
  if (file.size === 0) return uploadError("The file is empty. Choose a video file.");
  if (file.size > maxBytes) {
    return uploadError(`The file is ${sizeText(file.size)}; the most reelm accepts is ${sizeText(maxBytes)}.`);
  }
  $("#dropzone").hidden = true;
  $(".upload-status").hidden = false;
  $(".upload-file").textContent = file.name;
  $(".upload-size").textContent = sizeText(file.size);
  const bar = $("#upload-bar");
  bar.value = 0;
  const upload = new window.tus.Upload(file, {
    endpoint: "/api/v1/uploads",
    chunkSize: 8 * 1024 * 1024,
    retryDelays: [0, 1000, 3000, 5000],
    metadata: { filename: file.name, filetype: file.type || "application/octet-stream" },
    // one key for this file: a creation retried after a dropped connection finds the same upload
    headers: { "X-CSRF-Token": csrfToken(), "Idempotency-Key": idempotencyKey() },
    removeFingerprintOnSuccess: true,
    onShouldRetry(err) {
      const status = err.originalResponse?.getStatus() ?? 0;
      return !(status >= 400 && status < 500); // a refusal is final; a dropped connection is not
    },
    onProgress(sent, total) {
      const pct = total ? Math.floor((sent / total) * 100) : 0;
      bar.value = pct;
      $(".upload-pct").textContent = pct < 100 ? `${pct}% uploaded` : "Checking your video…";
    },
    onError(err) {
      uploadError(serverMessage(err));
    },
    onSuccess() {
      uploaded(upload.url.split("/").pop());
    },
  });
  state.tus = upload;
  upload.findPreviousUploads().then((previous) => {
    if (previous.length) upload.resumeFromPreviousUpload(previous[0]);
    upload.start();
  });
}

$(".upload-pause").addEventListener("click", (event) => {
  if (!state.tus) return;
  state.paused = !state.paused;
  if (state.paused) state.tus.abort();
  else state.tus.start();
  event.target.textContent = state.paused ? "Resume" : "Pause";
});

$("#file-input").addEventListener("change", (event) => startUpload(event.target.files[0]));
const drop = $("#dropzone");
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("is-over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("is-over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("is-over");
  startUpload(event.dataTransfer.files[0]);
});

// or record one -----------------------------------------------------------------------------

let knownSongs = [];
let recordedSong = null;
const camera = recorder({
  root,
  songs: () => knownSongs,
  onRecorded(file, song) {
    recordedSong = song;
    $("#record-step").hidden = true;
    startUpload(file);
  },
});

async function uploaded(uploadId) {
  try {
    const upload = await api("GET", `/api/v1/uploads/${encodeURIComponent(uploadId)}`);
    if (upload.state === "rejected") return uploadError(upload.error?.message ?? "This file cannot be used.");
    state.uploadId = upload.id;
    state.duration = upload.probe?.duration_s ?? 0;
    openEditor();
    // a recording made to a song: the song from its start, as it played while recording
    if (recordedSong) chooseSong(recordedSong);
  } catch (err) {
    uploadError(err.message);
  }
}

// 2. edit -----------------------------------------------------------------------------------

const texts = textOverlays({
  list: $(".text-list"),
  template: document.getElementById("text-template"),
  layer: $("#text-layer"),
  addButton: $("#add-text"),
});

const captions = captionsEditor({
  list: $(".cue-list"),
  template: document.getElementById("cue-template"),
  addButton: $("#add-cue"),
  fileInput: $("#vtt-input"),
  errorBox: $(".captions-error"),
  now: () => state.previewAt,
});

let previewTimer;
function refreshPreview() {
  clearTimeout(previewTimer);
  texts.at(state.previewAt);
  previewTimer = setTimeout(() => {
    const img = $("#preview-img");
    const busy = $(".preview-busy");
    busy.hidden = false;
    img.onload = img.onerror = () => { busy.hidden = true; };
    img.src = previewUrl(state.filter, state.trimStart + state.previewAt);
    refreshCover();
  }, 120);
}

/** The preview's scrubber spans the kept part; the cover stays inside it. */
function fitTimeControls() {
  const length = Math.max(0, state.trimEnd - state.trimStart);
  const at = $("#preview-at");
  at.max = String(Math.round(length * 10) / 10);
  state.previewAt = Math.min(state.previewAt, length);
  at.value = String(state.previewAt);
  $(".preview-at-out").textContent = fmt(state.previewAt);
  const cover = $("#cover-at");
  cover.min = String(state.trimStart);
  cover.max = String(state.trimEnd);
  state.coverAt = Math.min(Math.max(state.coverAt, state.trimStart), state.trimEnd);
  cover.value = String(state.coverAt);
  $(".cover-out").textContent = fmt(state.coverAt);
}

function refreshCover() {
  $("#cover-img").src = previewUrl(state.filter, state.coverAt);
}

$("#preview-at").addEventListener("input", (event) => {
  state.previewAt = Number(event.target.value);
  $(".preview-at-out").textContent = fmt(state.previewAt);
  refreshPreview();
});
$("#cover-at").addEventListener("input", (event) => {
  state.coverAt = Number(event.target.value);
  $(".cover-out").textContent = fmt(state.coverAt);
});
$("#cover-at").addEventListener("change", refreshCover);

function openEditor() {
  $("#upload-step").hidden = true;
  $("#editor").hidden = false;
  const d = state.duration;
  state.trimStart = 0;
  state.trimEnd = Math.round(d * 10) / 10;
  for (const input of [$("#trim-start"), $("#trim-end")]) {
    input.max = String(state.trimEnd);
  }
  $("#trim-start").value = "0";
  $("#trim-end").value = String(state.trimEnd);
  state.previewAt = 0;
  state.coverAt = 0;
  const frames = $(".strip-frames");
  frames.replaceChildren();
  for (let i = 0; i < STRIP_FRAMES; i += 1) {
    const img = document.createElement("img");
    img.alt = "";
    img.src = previewUrl("none", (d * (i + 0.5)) / STRIP_FRAMES);
    frames.append(img);
  }
  const thumbAt = Math.min(d * 0.3, Math.max(0, d - 0.1));
  for (const option of root.querySelectorAll(".filter-opt")) {
    const name = option.querySelector("input").value;
    option.querySelector("img").src = previewUrl(name, thumbAt, 80);
  }
  updateTrim();
  refreshPreview();
  $("#editor").scrollIntoView({ block: "start" });
  $("#caption").focus({ preventScroll: true });
}

function updateTrim(changed) {
  const start = $("#trim-start");
  const end = $("#trim-end");
  let a = Number(start.value);
  let b = Number(end.value);
  const gap = Math.min(MIN_SECONDS, state.duration);
  if (b - a < gap) {
    if (changed === start) a = Math.max(0, b - gap);
    else b = Math.min(state.trimEnd > 0 ? Number(end.max) : state.duration, a + gap);
    start.value = String(a);
    end.value = String(b);
  }
  state.trimStart = a;
  state.trimEnd = b;
  $(".trim-readout").textContent = `${fmt(a)} – ${fmt(b)} · ${fmt(b - a)}`;
  start.setAttribute("aria-valuetext", fmt(a));
  end.setAttribute("aria-valuetext", fmt(b));
  const total = Number(end.max) || 1;
  const win = $(".strip-window");
  win.style.left = `${(a / total) * 100}%`;
  win.style.right = `${100 - (b / total) * 100}%`;
  fitTimeControls();
}

for (const input of [$("#trim-start"), $("#trim-end")]) {
  input.addEventListener("input", () => updateTrim(input));
  input.addEventListener("change", refreshPreview);
}

for (const radio of root.querySelectorAll('input[name="filter"]')) {
  radio.addEventListener("change", () => {
    state.filter = radio.value;
    const label = radio.closest(".filter-opt").querySelector("span").textContent;
    $(".preview-look").textContent = label;
    $("#intensity").disabled = radio.value === "none";
    refreshPreview();
  });
}
$("#intensity").addEventListener("input", (event) => {
  state.intensity = Number(event.target.value);
  $(".intensity-out").textContent = event.target.value;
  refreshPreview();
});

// sound -------------------------------------------------------------------------------------

const audio = new Audio();
audio.preload = "none";
let playingButton = null;

function stopAudio() {
  audio.pause();
  playingButton?.setAttribute("aria-pressed", "false");
  playingButton = null;
}
audio.addEventListener("ended", stopAudio);

function chooseSong(song) {
  state.song = song;
  const radio = root.querySelector('input[name="soundtrack"][value="song"]');
  radio.disabled = false;
  radio.checked = true;
  state.soundtrack = "song";
  $(".chosen-song").textContent = `${song.title} · ${song.artist}`;
  $(".mix-row").hidden = false;
  for (const row of root.querySelectorAll("#song-list .song")) {
    const chosen = row.dataset.songId === song.id;
    row.classList.toggle("is-chosen", chosen);
    const use = row.querySelector(".song-use");
    use.textContent = chosen ? "Chosen" : "Use";
    use.setAttribute("aria-pressed", String(chosen));
  }
}

function songRow(song) {
  const row = document.getElementById("song-template").content.firstElementChild.cloneNode(true);
  row.dataset.songId = song.id;
  const cover = row.querySelector(".song-cover");
  if (song.cover_url) {
    const img = document.createElement("img");
    img.src = song.cover_url;
    img.alt = "";
    cover.append(img);
  } else {
    cover.classList.add(`hue-${hue(song.id)}`);
    cover.append(musicIcon());
  }
  row.querySelector(".song-title").textContent = song.title;
  const minutes = Math.floor(song.duration_s / 60);
  const seconds = String(Math.round(song.duration_s % 60)).padStart(2, "0");
  row.querySelector(".song-artist").textContent = `${song.artist} · ${minutes}:${seconds}`;
  const play = row.querySelector(".song-play");
  play.setAttribute("aria-label", `Play a preview of ${song.title}`);
  play.addEventListener("click", () => {
    const wasPlaying = playingButton === play;
    stopAudio();
    if (wasPlaying) return;
    audio.src = song.preview_url ?? song.audio_url;
    audio.play().catch(() => stopAudio());
    play.setAttribute("aria-pressed", "true");
    playingButton = play;
  });
  const use = row.querySelector(".song-use");
  use.setAttribute("aria-label", `Use ${song.title} by ${song.artist}`);
  use.addEventListener("click", () => chooseSong(song));
  if (state.song?.id === song.id) {
    row.classList.add("is-chosen");
    use.textContent = "Chosen";
  }
  return row;
}

async function listSongs(q) {
  const list = $("#song-list");
  try {
    const page = q
      ? await api("GET", `/api/v1/sounds?${new URLSearchParams({ q, limit: "20" })}`)
      : await api("GET", "/api/v1/sounds/trending?limit=20");
    let items = page.items;
    if (!q && !items.length) items = (await api("GET", "/api/v1/sounds?limit=20")).items;
    $(".sound-list-title").textContent = q ? `Results for “${q}”` : "Trending";
    if (!q) {
      knownSongs = items;
      camera.fillSongs(items);
    }
    list.replaceChildren(...items.map(songRow));
    if (!items.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "No songs match.";
      list.append(li);
    }
  } catch (err) {
    toast(err.message);
  }
}

let songTimer;
$("#sound-q").addEventListener("input", (event) => {
  clearTimeout(songTimer);
  songTimer = setTimeout(() => listSongs(event.target.value.trim()), 250);
});
for (const radio of root.querySelectorAll('input[name="soundtrack"]')) {
  radio.addEventListener("change", () => {
    state.soundtrack = radio.value;
    $(".mix-row").hidden = radio.value !== "song";
  });
}
$("#mix").addEventListener("input", (event) => {
  state.mix = Number(event.target.value);
  $(".mix-out").textContent = `${event.target.value}%`;
});

// caption and hashtag suggestions ----------------------------------------------------------

const caption = $("#caption");
let tagTimer;
function hashtagAtCaret() {
  const before = caption.value.slice(0, caption.selectionStart);
  return before.match(/(?:^|\s)#(\w{1,50})$/u)?.[1] ?? null;
}

function insertTag(tag) {
  const caret = caption.selectionStart;
  const before = caption.value.slice(0, caret).replace(/#\w*$/u, `#${tag} `);
  caption.value = before + caption.value.slice(caret);
  caption.selectionStart = caption.selectionEnd = before.length;
  caption.focus();
  $(".tag-suggestions").hidden = true;
  countCaption();
}

function countCaption() {
  $(".caption-count").textContent = `${caption.value.length}/2200`;
}

caption.addEventListener("input", () => {
  countCaption();
  clearTimeout(tagTimer);
  const partial = hashtagAtCaret();
  const box = $(".tag-suggestions");
  if (!partial) {
    box.hidden = true;
    return;
  }
  tagTimer = setTimeout(async () => {
    try {
      const found = await api("GET", `/api/v1/search?${new URLSearchParams({ q: `#${partial}` })}`);
      const chips = found.hashtags.slice(0, 8).map((t) => {
        const li = document.createElement("li");
        const chip = document.createElement("button");
        chip.type = "button";
        chip.className = "chip";
        chip.textContent = `#${t.tag}`;
        const n = document.createElement("span");
        n.className = "muted";
        n.textContent = ` ${t.videos} videos`;
        chip.append(n);
        chip.addEventListener("click", () => insertTag(t.tag));
        li.append(chip);
        return li;
      });
      box.replaceChildren(...chips);
      box.hidden = chips.length === 0;
    } catch {
      box.hidden = true;
    }
  }, 200);
});

// 3. post and follow the job ----------------------------------------------------------------

function soundtrack() {
  if (state.soundtrack === "song" && state.song) {
    return { kind: "song", song_id: state.song.id, offset_s: 0, mix: state.mix };
  }
  return { kind: state.soundtrack === "none" ? "none" : "original" };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Follow the processing job on the region's worker: its progress, then the new video itself (as
 * TikTok does). A poll that fails (a dropped connection, a restarting server) is retried with a
 * growing pause and said so on this step; only a failed job ends here. */
async function follow(video) {
  const bar = $("#job-bar");
  const label = $(".job-state");
  const trouble = $(".job-error");
  let pause = 800;
  for (;;) {
    bar.value = video.progress ?? 0;
    if (video.state === "ready") {
      bar.value = 100;
      $("#done-title").textContent = "Your video is posted!";
      const href = video.visibility === "public" ? `/v/${video.id}` : `/@${document.body.dataset.user}`;
      label.textContent = "Opening your video…";
      $("#view-video").href = href;
      $(".job-actions").hidden = false;
      location.assign(href);
      return;
    }
    if (video.state === "failed") {
      $("#done-title").textContent = "We could not process your video";
      trouble.textContent = video.failure ?? "Processing failed.";
      trouble.hidden = false;
      label.textContent = "";
      $(".job-actions").hidden = false;
      $("#view-video").hidden = true;
      return;
    }
    label.textContent = video.state === "queued"
      ? "Waiting for a worker in your region…"
      : `Processing… ${video.progress ?? 0}%`;
    await sleep(pause);
    try {
      video = await api("GET", `/api/v1/me/videos/${encodeURIComponent(video.id)}`);
      trouble.hidden = true;
      pause = 800;
    } catch (err) {
      if (err.status === 404 || err.status === 401) throw err;
      trouble.textContent = `${err.message} Still checking…`;
      trouble.hidden = false;
      pause = Math.min(pause * 2, 8000);
    }
  }
}

/** The edit and its settings, as both posting and a draft send them. */
function editBody() {
  return {
    upload_id: state.uploadId,
    edit: {
      trim_start_s: state.trimStart,
      trim_end_s: state.trimEnd,
      filter: state.filter === "none" ? null : state.filter,
      filter_intensity: state.intensity,
      soundtrack: soundtrack(),
      cover_time_s: state.coverAt,
      texts: texts.value(),
    },
    caption: caption.value,
    captions_vtt: captions.webvtt(),
    visibility: $("#visibility").value,
    allow_comments: $("#allow-comments").checked,
    allow_sound_reuse: $("#allow-reuse").checked,
  };
}

$("#save-draft").addEventListener("click", async () => {
  const button = $("#save-draft");
  const box = $(".publish-error");
  box.hidden = true;
  button.disabled = true;
  try {
    const saved = state.draftId
      ? await api("PUT", `/api/v1/drafts/${encodeURIComponent(state.draftId)}`, editBody())
      : await api("POST", "/api/v1/drafts", editBody());
    state.draftId = saved.id;
    history.replaceState(null, "", `/create?draft=${encodeURIComponent(saved.id)}`);
    button.textContent = "Draft saved";
    toast("Draft saved. Find it under your profile, in Drafts.");
  } catch (err) {
    box.textContent = err.message;
    box.hidden = false;
  } finally {
    button.disabled = false;
  }
});
for (const event of ["input", "change"]) {
  $("#editor").addEventListener(event, () => { $("#save-draft").textContent = "Save draft"; });
}

/** Open a saved draft: its clip, then everything the edit said, as it was left. */
async function openDraft(draft) {
  const { content } = draft;
  const edit = content.edit ?? {};
  state.draftId = draft.id;
  state.uploadId = content.upload_id;
  state.duration = draft.duration_s;
  openEditor();
  const num = (v, fallback) => (typeof v === "number" && Number.isFinite(v) ? v : fallback);
  $("#trim-start").value = String(num(edit.trim_start_s, 0));
  $("#trim-end").value = String(num(edit.trim_end_s, state.duration));
  updateTrim();
  state.coverAt = num(edit.cover_time_s, state.trimStart);
  const look = root.querySelector(`input[name="filter"][value="${CSS.escape(edit.filter ?? "none")}"]`);
  if (look) {
    look.checked = true;
    look.dispatchEvent(new Event("change"));
  }
  $("#intensity").value = String(num(edit.filter_intensity, 80));
  $("#intensity").dispatchEvent(new Event("input"));
  const sound = edit.soundtrack ?? { kind: "original" };
  if (sound.kind === "song" && sound.song_id) {
    try {
      chooseSong(await api("GET", `/api/v1/sounds/${encodeURIComponent(sound.song_id)}`));
      $("#mix").value = String(num(sound.mix, 80));
      $("#mix").dispatchEvent(new Event("input"));
    } catch {
      toast("The draft's song is no longer available; pick another.");
    }
  } else {
    const radio = root.querySelector(`input[name="soundtrack"][value="${sound.kind === "none" ? "none" : "original"}"]`);
    radio.checked = true;
    radio.dispatchEvent(new Event("change"));
  }
  for (const text of Array.isArray(edit.texts) ? edit.texts : []) texts.add(text);
  if (content.captions_vtt) {
    try {
      const { cues } = await api("POST", "/api/v1/captions/check", { webvtt: content.captions_vtt });
      cues.forEach((cue) => captions.add(cue));
    } catch (err) {
      captions.showError(err.message);
    }
  }
  caption.value = content.caption ?? "";
  countCaption();
  $("#visibility").value = content.visibility ?? "public";
  $("#allow-comments").checked = content.allow_comments !== false;
  $("#allow-reuse").checked = content.allow_sound_reuse !== false;
  fitTimeControls();
  refreshPreview();
  $("#save-draft").textContent = "Draft saved";
}

$("#editor").addEventListener("submit", async (event) => {
  event.preventDefault();
  const box = $(".publish-error");
  box.hidden = true;
  if (state.trimEnd - state.trimStart < MIN_SECONDS - 1e-6) {
    box.textContent = `Keep at least ${MIN_SECONDS} second of your clip.`;
    box.hidden = false;
    return;
  }
  const button = $("#publish");
  button.disabled = true;
  button.textContent = "Posting…";
  stopAudio();
  try {
    const video = await api("POST", "/api/v1/videos", { ...editBody(), draft_id: state.draftId });
    $("#editor").hidden = true;
    $("#done-step").hidden = false;
    try {
      await follow(video);
    } catch (err) {
      // the video was posted; only following it failed: say so where the user is looking
      $(".job-error").textContent = err.message;
      $(".job-error").hidden = false;
      $(".job-actions").hidden = false;
    }
  } catch (err) {
    box.textContent = err.message;
    box.hidden = false;
    button.disabled = false;
    button.textContent = "Post";
  }
});

$("#discard").addEventListener("click", () => location.assign("/create"));

// start ------------------------------------------------------------------------------------

const preselected = document.getElementById("preselected-sound");
const draftData = document.getElementById("draft-data");
listSongs("").then(() => {
  if (preselected) chooseSong(JSON.parse(preselected.textContent));
  if (draftData) openDraft(JSON.parse(draftData.textContent));
});
