// Play a song's preview on its sound page (one player for the page).
const audio = new Audio();
audio.preload = "none";

for (const button of document.querySelectorAll(".sound-play")) {
  button.addEventListener("click", () => {
    const playing = button.getAttribute("aria-pressed") === "true";
    if (playing) {
      audio.pause();
    } else {
      if (audio.src !== new URL(button.dataset.audio, location.href).href) audio.src = button.dataset.audio;
      audio.play().catch(() => button.setAttribute("aria-pressed", "false"));
    }
    button.setAttribute("aria-pressed", String(!playing));
  });
  audio.addEventListener("pause", () => button.setAttribute("aria-pressed", "false"));
  audio.addEventListener("ended", () => button.setAttribute("aria-pressed", "false"));
}
