// Create: record from the camera and microphone in segments (hold to record, let go to pause,
// up to 60 s), with the chosen song playing while the camera rolls and paused with it, so the
// song in the result starts with the recording and stays in step. The recording becomes a
// WebM file that goes through the same resumable upload as a chosen file. Without a camera (or
// when it is refused) the page says so and the upload stays.
const MAX_SECONDS = 60;

function pickType() {
  for (const type of ["video/webm;codecs=vp8,opus", "video/webm;codecs=vp9,opus", "video/webm"]) {
    if (window.MediaRecorder?.isTypeSupported(type)) return type;
  }
  return "";
}

export function recorder({ root, onRecorded, songs }) {
  const $ = (s) => root.querySelector(s);
  const preview = $("#camera");
  const hold = $("#record-hold");
  const bar = $("#record-bar");
  const readout = $(".record-time");
  const done = $("#record-done");
  const status = $(".record-status");
  const songSelect = $("#record-song");
  const audio = new Audio();
  audio.preload = "auto";
  let stream = null;
  let media = null;
  let chunks = [];
  let recorded = 0; // seconds recorded so far, over every segment
  let segmentStart = 0;
  let segments = 0;
  let ticking = null;
  let chosenSong = null;

  function say(message) {
    status.textContent = message;
  }

  function seconds() {
    return recorded + (media?.state === "recording" ? (performance.now() - segmentStart) / 1000 : 0);
  }

  function show() {
    const s = Math.min(MAX_SECONDS, seconds());
    bar.value = s;
    readout.textContent = `${s.toFixed(1)} s of ${MAX_SECONDS} s · ${segments} ${segments === 1 ? "part" : "parts"}`;
    done.disabled = segments === 0 || media?.state === "recording";
    if (s >= MAX_SECONDS && media?.state === "recording") pause();
  }

  async function open() {
    if (!navigator.mediaDevices?.getUserMedia || !window.MediaRecorder || !pickType()) {
      return unavailable("This browser cannot record video here. Upload a file instead.");
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        video: {
          facingMode: "user",
          width: { ideal: 720, max: 720 },
          height: { ideal: 1280, max: 1280 },
          frameRate: { ideal: 30, max: 30 },
        },
        audio: true,
      });
    } catch (err) {
      const why = err?.name === "NotAllowedError" ? "Camera access was refused" : "No camera was found";
      return unavailable(`${why}. Upload a file instead.`);
    }
    preview.srcObject = stream;
    await preview.play().catch(() => {});
    $(".record-panel").hidden = false;
    $("#record-open").hidden = true;
    hold.disabled = false;
    say("Hold the button to record; let go to pause.");
    show();
  }

  function unavailable(message) {
    $(".record-panel").hidden = true;
    $("#record-open").hidden = true;
    $(".record-unavailable").textContent = message;
    $(".record-unavailable").hidden = false;
  }

  function start() {
    if (!stream || seconds() >= MAX_SECONDS) return;
    if (!media) {
      chosenSong = songs().find((s) => s.id === songSelect.value) ?? null;
      songSelect.disabled = true;
      if (chosenSong) audio.src = chosenSong.audio_url;
      media = new MediaRecorder(stream, { mimeType: pickType(), videoBitsPerSecond: 2_500_000 });
      media.addEventListener("dataavailable", (e) => { if (e.data.size) chunks.push(e.data); });
      media.start(250);
    } else if (media.state === "paused") {
      media.resume();
    } else {
      return;
    }
    segmentStart = performance.now();
    segments += 1;
    if (chosenSong) {
      audio.currentTime = recorded; // the song is where the recording is
      audio.play().catch(() => {});
    }
    hold.setAttribute("aria-pressed", "true");
    say("Recording…");
    ticking = setInterval(show, 100);
    show();
  }

  function pause() {
    if (media?.state !== "recording") return;
    media.pause();
    audio.pause();
    recorded += (performance.now() - segmentStart) / 1000;
    clearInterval(ticking);
    hold.setAttribute("aria-pressed", "false");
    say(seconds() >= MAX_SECONDS ? "That is the longest a video can be." : "Paused. Hold to record the next part.");
    show();
  }

  async function finish() {
    if (!media || segments === 0) return;
    pause();
    const stopped = new Promise((resolve) => media.addEventListener("stop", resolve, { once: true }));
    media.stop();
    await stopped;
    for (const track of stream.getTracks()) track.stop();
    const type = media.mimeType || "video/webm";
    const file = new File(chunks, `recording-${Date.now()}.webm`, { type: type.split(";")[0] });
    say("Uploading your recording…");
    onRecorded(file, chosenSong);
  }

  $("#record-open").addEventListener("click", open);
  hold.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    try {
      hold.setPointerCapture(event.pointerId); // a finger sliding off still ends the part
    } catch {
      /* no such pointer (a synthetic event): nothing to capture */
    }
    start();
  });
  for (const end of ["pointerup", "pointercancel"]) hold.addEventListener(end, pause);
  // the keyboard: hold Space or Enter on the button
  hold.addEventListener("keydown", (event) => {
    if ((event.key === " " || event.key === "Enter") && !event.repeat) {
      event.preventDefault();
      start();
    }
  });
  hold.addEventListener("keyup", (event) => {
    if (event.key === " " || event.key === "Enter") pause();
  });
  done.addEventListener("click", finish);
  return { fillSongs(list) {
    songSelect.replaceChildren(new Option("No song", ""), ...list.map((s) => new Option(`${s.title} · ${s.artist}`, s.id)));
  } };
}
