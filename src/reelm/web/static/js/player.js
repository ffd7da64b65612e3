// The vertical player: the visible video plays (muted until the first tap, then with sound), the
// next one is preloaded, HLS through hls.js with MP4 as the fallback; tap to pause, double-tap to
// like; the side rail; keyboard (up/down, space, m); watch time reported in batches.
import { api, compact, copyLink, icon, idempotencyKey, loginFirst, me, reducedMotion, signedIn, toast } from "./api.js";
import { openComments } from "./comments.js";

const PRELOAD_AHEAD = 1;
const KEEP_ATTACHED = 2; // slides further than this from the visible one release their media
const state = { sound: false, captions: false, active: null, feed: null };
const watchQueue = [];

const slides = () => [...state.feed.querySelectorAll(".slide")];
const videoOf = (slide) => slide.querySelector("video.player");

// media --------------------------------------------------------------------------------------

function useMp4(slide) {
  const video = videoOf(slide);
  slide._hls?.destroy();
  slide._hls = null;
  slide.dataset.playback = "mp4";
  video.src = slide.dataset.mp4;
  if (slide.dataset.captions && !video.querySelector("track")) {
    // without HLS the captions come as a <track> of the WebVTT file itself
    const track = document.createElement("track");
    track.kind = "captions";
    track.label = "Captions";
    track.src = slide.dataset.captions;
    video.append(track);
  }
  offerCaptions(slide);
}

// captions ------------------------------------------------------------------------------------

/** The CC button shows once the video is known to have captions; the viewer's choice holds for
 *  every video, like the sound's. */
function offerCaptions(slide) {
  const button = slide.querySelector(".cc");
  button.hidden = false;
  showCaptions(slide);
}

function showCaptions(slide) {
  const on = state.captions;
  slide.querySelector(".cc").setAttribute("aria-pressed", String(on));
  if (slide._hls) {
    slide._hls.subtitleDisplay = on;
    slide._hls.subtitleTrack = on && slide._hls.subtitleTracks.length ? 0 : -1;
  }
  for (const track of videoOf(slide).textTracks) {
    if (track.kind === "captions" || track.kind === "subtitles") track.mode = on ? "showing" : "hidden";
  }
}

function setCaptions(on) {
  state.captions = on;
  for (const slide of slides()) if (!slide.querySelector(".cc").hidden) showCaptions(slide);
}

function attach(slide) {
  if (slide._attached) return;
  slide._attached = true;
  const video = videoOf(slide);
  video.preload = "auto";
  const Hls = window.Hls;
  if (Hls?.isSupported()) {
    const hls = new Hls({ maxBufferLength: 12, capLevelToPlayerSize: true, enableWorker: true });
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (data.fatal) useMp4(slide); // a broken playlist or segment: the progressive MP4 still plays
    });
    hls.on(Hls.Events.SUBTITLE_TRACKS_UPDATED, (_event, data) => {
      if (data.subtitleTracks.length) offerCaptions(slide);
    });
    // a track hls.js adds to the video follows the viewer's choice
    video.textTracks.addEventListener("addtrack", () => {
      if (!slide.querySelector(".cc").hidden) showCaptions(slide);
    });
    hls.loadSource(slide.dataset.hls);
    hls.attachMedia(video);
    slide._hls = hls;
    slide.dataset.playback = "hls.js";
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = slide.dataset.hls;
    slide.dataset.playback = "native-hls";
    if (slide.dataset.captions) offerCaptions(slide);
  } else {
    useMp4(slide);
  }
  video.addEventListener("error", () => {
    if (slide.dataset.playback !== "mp4") useMp4(slide);
  });
}

function detach(slide) {
  if (!slide._attached) return;
  slide._attached = false;
  slide._hls?.destroy();
  slide._hls = null;
  const video = videoOf(slide);
  video.removeAttribute("src");
  video.load();
}

/** A video whose song is not licensed for this viewer plays muted, whatever the sound setting
 *  (`muted_notice` from the server); one still being checked stays muted until it is known. */
export function soundLocked(slide) {
  return Boolean(slide.dataset.mutedNotice) || slide.dataset.licence === "checking";
}

export function showLicence(slide) {
  const notice = slide.dataset.mutedNotice;
  const banner = slide.querySelector(".licence-notice");
  banner.hidden = !notice;
  banner.querySelector(".licence-text").textContent = notice ?? "";
  const button = slide.querySelector(".mute");
  button.disabled = soundLocked(slide);
  if (notice) button.setAttribute("aria-label", "Sound is not available for this video here");
  if (slide === state.active) videoOf(slide).muted = !state.sound || soundLocked(slide);
}

function play(slide) {
  const video = videoOf(slide);
  video.muted = !state.sound || soundLocked(slide);
  const started = video.play();
  slide.classList.remove("is-paused");
  started?.catch(() => {
    // the browser refused sound without a gesture: carry on muted
    video.muted = true;
    setSound(false);
    video.play().catch(() => slide.classList.add("is-paused"));
  });
}

function pause(slide) {
  videoOf(slide).pause();
  slide.classList.add("is-paused");
}

function togglePause(slide = state.active) {
  if (!slide) return;
  if (videoOf(slide).paused) play(slide);
  else pause(slide);
}

function setSound(on) {
  state.sound = on;
  for (const slide of slides()) {
    const button = slide.querySelector(".mute");
    button.setAttribute("aria-pressed", String(on && !soundLocked(slide)));
    if (!soundLocked(slide)) button.setAttribute("aria-label", on ? "Mute" : "Turn sound on");
  }
  if (state.active) videoOf(state.active).muted = !on || soundLocked(state.active);
}

// which slide is on screen -------------------------------------------------------------------

function activate(slide) {
  if (state.active === slide) return;
  const previous = state.active;
  if (previous) {
    pause(previous);
    previous.classList.remove("is-active", "is-paused");
    reportWatch(previous);
  }
  state.active = slide;
  slide.classList.add("is-active");
  const all = slides();
  const index = all.indexOf(slide);
  all.forEach((other, i) => {
    if (i >= index && i <= index + PRELOAD_AHEAD) attach(other);
    else if (Math.abs(i - index) > KEEP_ATTACHED) detach(other);
  });
  slide._watchStart = null;
  if (reducedMotion()) slide.classList.add("is-paused"); // nothing starts moving by itself
  else play(slide);
  state.feed.dispatchEvent(new CustomEvent("slide:active", { detail: { index, slide } }));
}

// While a keyboard or button move scrolls, the slides it passes do not take over.
let moving = { target: null, until: 0 };

const observer = new IntersectionObserver(
  (entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting || entry.intersectionRatio < 0.6) continue;
      if (moving.target && performance.now() < moving.until && entry.target !== moving.target) continue;
      activate(entry.target);
    }
  },
  { threshold: 0.6 },
);

export function move(step) {
  const all = slides();
  const index = all.indexOf(state.active);
  const target = all[Math.min(all.length - 1, Math.max(0, index + step))];
  if (!target || target === state.active) return;
  moving = { target, until: performance.now() + 1000 };
  target.scrollIntoView({ behavior: reducedMotion() ? "auto" : "smooth", block: "start" });
  activate(target);
}

// watch time ---------------------------------------------------------------------------------

function trackTime(slide) {
  const video = videoOf(slide);
  const bar = slide.querySelector(".timeline-bar");
  let last = 0;
  video.addEventListener("timeupdate", () => {
    const t = video.currentTime;
    if (video.duration) bar.style.transform = `scaleX(${Math.min(1, t / video.duration)})`;
    const delta = t - last;
    if (delta > 0 && delta < 1.5) slide._watchedMs = (slide._watchedMs ?? 0) + delta * 1000;
    if (delta < -0.5) slide._completed = true; // looped back to the start: watched to the end
    last = t;
  });
  video.addEventListener("ended", () => { slide._completed = true; });
}

function reportWatch(slide) {
  const watched = Math.round(slide._watchedMs ?? 0);
  if (watched <= 0 && !slide._completed) return;
  watchQueue.push({ video_id: slide.dataset.videoId, watched_ms: Math.min(watched, 3_600_000), completed: Boolean(slide._completed) });
  slide._watchedMs = 0;
  slide._completed = false;
  if (watchQueue.length >= 5) flushWatch();
}

function flushWatch(keepalive = false) {
  if (!watchQueue.length) return;
  const events = watchQueue.splice(0, watchQueue.length);
  api("POST", "/api/v1/watch-events", { events }, { keepalive }).catch(() => {});
}

// the rail -----------------------------------------------------------------------------------

function forCreator(handle, fn) {
  for (const s of slides()) if (s.dataset.creator === handle) fn(s);
}

function burst(slide, x, y) {
  if (reducedMotion()) return;
  const heart = slide.querySelector(".burst");
  const box = slide.querySelector(".stage").getBoundingClientRect();
  heart.style.left = `${(x ?? box.left + box.width / 2) - box.left}px`;
  heart.style.top = `${(y ?? box.top + box.height / 2) - box.top}px`;
  heart.classList.remove("go");
  void heart.offsetWidth; // restart the animation
  heart.classList.add("go");
}

async function like(slide, { only = false } = {}) {
  if (!signedIn()) return loginFirst();
  const button = slide.querySelector(".rail-btn.like");
  const count = button.querySelector(".rail-count");
  const liked = button.getAttribute("aria-pressed") === "true";
  if (liked && only) return;
  const likes = Number(slide.dataset.likes ?? 0);
  button.setAttribute("aria-pressed", String(!liked));
  button.classList.toggle("pop", !liked);
  try {
    if (liked) {
      await api("DELETE", `/api/v1/videos/${slide.dataset.videoId}/like`);
      slide.dataset.likes = String(Math.max(0, likes - 1));
    } else {
      const r = await api("POST", `/api/v1/videos/${slide.dataset.videoId}/like`);
      slide.dataset.likes = String(r.like_count);
    }
    count.textContent = compact(slide.dataset.likes);
  } catch (err) {
    button.setAttribute("aria-pressed", String(liked));
    toast(err.message);
  }
}

async function save(slide) {
  if (!signedIn()) return loginFirst();
  const button = slide.querySelector(".rail-btn.save");
  const saved = button.getAttribute("aria-pressed") === "true";
  button.setAttribute("aria-pressed", String(!saved));
  try {
    await api(saved ? "DELETE" : "POST", `/api/v1/videos/${slide.dataset.videoId}/save`);
    toast(saved ? "Removed from Favourites" : "Added to Favourites");
  } catch (err) {
    button.setAttribute("aria-pressed", String(saved));
    toast(err.message);
  }
}

async function share(slide) {
  try {
    const r = await api("POST", `/api/v1/videos/${slide.dataset.videoId}/share`, { channel: "link" }, {
      idempotencyKey: idempotencyKey(),
      retries: 2,
    });
    slide.querySelector(".rail-btn.share .rail-count").textContent = compact(r.share_count);
    await copyLink(r.url);
  } catch (err) {
    toast(err.message);
  }
}

async function follow(slide) {
  if (!signedIn()) return loginFirst();
  const handle = slide.dataset.creator;
  try {
    const r = await api("POST", `/api/v1/users/${encodeURIComponent(handle)}/follow`);
    forCreator(handle, (s) => markFollowing(s, r.state === "pending"));
    toast(r.state === "pending" ? `Follow request sent to @${handle}` : `Following @${handle}`);
  } catch (err) {
    toast(err.message);
  }
}

function checkIcon() {
  return icon("check");
}

function toggleMenu(slide, open) {
  const menu = slide.querySelector(".slide-menu");
  const button = slide.querySelector(".rail-btn.more");
  const show = open ?? menu.hidden;
  menu.hidden = !show;
  button.setAttribute("aria-expanded", String(show));
  if (show) menu.querySelector("button")?.focus();
}

async function notInterested(slide) {
  toggleMenu(slide, false);
  if (!signedIn()) return loginFirst();
  try {
    await api("POST", `/api/v1/videos/${slide.dataset.videoId}/not-interested`);
    toast("Got it: you'll see fewer videos like this");
    const all = slides();
    const next = all[all.indexOf(slide) + 1] ?? all[all.indexOf(slide) - 1];
    observer.unobserve(slide);
    detach(slide);
    if (state.active === slide) state.active = null;
    slide.remove();
    if (next) {
      next.scrollIntoView({ block: "start" });
      activate(next);
    }
  } catch (err) {
    toast(err.message);
  }
}

function why(slide) {
  toggleMenu(slide, false);
  const reason = slide.querySelector(".reason");
  const text = reason.textContent.trim() || "Popular on reelm right now";
  reason.textContent = `Why this video: ${text.replace(/^Why this video: /, "")}`;
  reason.hidden = false;
  toast(reason.textContent);
}

// wiring -------------------------------------------------------------------------------------

let lastTap = { time: 0, slide: null, timer: 0 };

function onTap(slide, event) {
  const now = performance.now();
  if (lastTap.slide === slide && now - lastTap.time < 300) {
    clearTimeout(lastTap.timer);
    lastTap = { time: 0, slide: null, timer: 0 };
    burst(slide, event.clientX, event.clientY);
    like(slide, { only: true });
    return;
  }
  const single = () => {
    const video = videoOf(slide);
    if (!state.sound) {
      setSound(true); // the first tap turns the sound on
      if (video.paused) play(slide);
    } else {
      togglePause(slide);
    }
  };
  // a keyboard "click" has no pointer: act at once, no double-tap to wait for
  if (event.detail === 0) return single();
  lastTap = { time: now, slide, timer: setTimeout(single, 260) };
}

export function wire(slide) {
  if (slide._wired) return;
  slide._wired = true;
  if (me() && slide.dataset.creator === me()) slide.querySelector(".follow-plus").hidden = true;
  slide.querySelector(".tap").addEventListener("click", (e) => onTap(slide, e));
  slide.querySelector(".mute").addEventListener("click", () => setSound(!state.sound));
  slide.querySelector(".cc").addEventListener("click", () => setCaptions(!state.captions));
  slide.querySelector(".rail-btn.like").addEventListener("click", () => like(slide));
  slide.querySelector(".rail-btn.save").addEventListener("click", () => save(slide));
  slide.querySelector(".rail-btn.share").addEventListener("click", () => share(slide));
  slide.querySelector(".follow-plus").addEventListener("click", () => follow(slide));
  slide.querySelector(".rail-btn.comment").addEventListener("click", () =>
    openComments({
      videoId: slide.dataset.videoId,
      creator: slide.dataset.creator,
      slide,
      allowComments: slide.dataset.allowComments !== "false",
    }),
  );
  slide.querySelector(".rail-btn.more").addEventListener("click", () => toggleMenu(slide));
  slide.querySelector(".not-interested").addEventListener("click", () => notInterested(slide));
  slide.querySelector(".why").addEventListener("click", () => why(slide));
  slide.querySelector(".copy-link").addEventListener("click", () => {
    toggleMenu(slide, false);
    copyLink(`/v/${slide.dataset.videoId}`);
  });
  slide.querySelector(".slide-menu").addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      toggleMenu(slide, false);
      slide.querySelector(".rail-btn.more").focus();
    }
  });
  const video = videoOf(slide);
  video.addEventListener("play", () => slide.classList.remove("is-paused"));
  video.addEventListener("pause", () => slide.classList.add("is-paused"));
  trackTime(slide);
  const button = slide.querySelector(".mute");
  button.setAttribute("aria-pressed", String(state.sound));
  button.setAttribute("aria-label", state.sound ? "Mute" : "Turn sound on");
  showLicence(slide);
  observer.observe(slide);
}

function markFollowing(slide, pending = false) {
  const plus = slide.querySelector(".follow-plus");
  const handle = slide.dataset.creator;
  plus.classList.add("is-following");
  plus.setAttribute("aria-label", pending ? `Follow request sent to @${handle}` : `Following @${handle}`);
  plus.disabled = true;
  plus.replaceChildren(checkIcon());
}

/** Show the rail as this viewer left it: liked, saved, following (one request per page). */
export async function applyStates(list) {
  if (!signedIn() || !list.length) return;
  const ids = list.map((s) => s.dataset.videoId).join(",");
  let states;
  try {
    states = await api("GET", `/api/v1/me/video-states?ids=${encodeURIComponent(ids)}`);
  } catch {
    return;
  }
  for (const slide of list) {
    const st = states[slide.dataset.videoId];
    if (!st) continue;
    slide.querySelector(".rail-btn.like").setAttribute("aria-pressed", String(st.liked));
    slide.querySelector(".rail-btn.save").setAttribute("aria-pressed", String(st.saved));
    if (st.following) markFollowing(slide);
  }
}

function typing(target) {
  return target.closest?.("input, textarea, select, [contenteditable], dialog[open]");
}

export function start(feed) {
  state.feed = feed;
  feed.addEventListener("scrollend", () => { moving = { target: null, until: 0 }; });
  for (const slide of slides()) wire(slide);
  applyStates(slides());
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
    if (typing(event.target) || document.querySelector("dialog[open]")) return;
    const key = event.key;
    if (key === "ArrowDown" || key === "PageDown" || key === "j") {
      event.preventDefault();
      move(1);
    } else if (key === "ArrowUp" || key === "PageUp" || key === "k") {
      event.preventDefault();
      move(-1);
    } else if (key === " " || key === "Spacebar") {
      if (event.target.closest?.("button, a") && !event.target.classList.contains("tap")) return;
      event.preventDefault();
      togglePause();
    } else if (key === "m" || key === "M") {
      setSound(!state.sound);
      toast(state.sound ? "Sound on" : "Muted");
    }
  });
  document.addEventListener("click", (event) => {
    for (const menu of feed.querySelectorAll(".slide-menu:not([hidden])")) {
      const slide = menu.closest(".slide");
      if (!slide.contains(event.target) || !event.target.closest(".slide-menu, .rail-btn.more")) toggleMenu(slide, false);
    }
  });
  setInterval(() => flushWatch(), 10_000);
  addEventListener("pagehide", () => {
    if (state.active) reportWatch(state.active);
    flushWatch(true);
  });
  document.addEventListener("visibilitychange", () => {
    if (document.hidden && state.active) pause(state.active);
  });
}

export const player = state;
