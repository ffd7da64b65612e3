// Create: closed captions typed against the timeline (from, to, words) or read from a WebVTT
// file, which the server checks (a file that is not WebVTT is refused, saying which line); the
// edit sends them as WebVTT, and the published video serves them as an HLS subtitles track.
import { api } from "./api.js";

const pad = (n, width = 2) => String(n).padStart(width, "0");

/** hh:mm:ss.ttt, as WebVTT writes times. */
export function vttTime(seconds) {
  const ms = Math.round(seconds * 1000);
  return `${pad(Math.floor(ms / 3600000))}:${pad(Math.floor(ms / 60000) % 60)}:${pad(Math.floor(ms / 1000) % 60)}.${pad(ms % 1000, 3)}`;
}

export function captionsEditor({ list, template, addButton, fileInput, errorBox, now = () => 0 }) {
  const rows = [];

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = !message;
  }

  function add(cue = {}) {
    const row = template.content.firstElementChild.cloneNode(true);
    const start = cue.start_s ?? Math.round(now() * 10) / 10;
    row.querySelector(".cue-start").value = String(start);
    row.querySelector(".cue-end").value = String(cue.end_s ?? Math.round((start + 2) * 10) / 10);
    row.querySelector(".cue-text").value = cue.text ?? "";
    const number = rows.length + 1;
    for (const input of row.querySelectorAll("input, textarea")) {
      const label = input.closest("label")?.querySelector("span")?.textContent ?? "";
      input.setAttribute("aria-label", `Caption ${number} ${label.toLowerCase()}`);
    }
    row.querySelector(".cue-remove").addEventListener("click", () => {
      rows.splice(rows.indexOf(row), 1);
      row.remove();
    });
    rows.push(row);
    list.append(row);
    return row;
  }

  function clear() {
    for (const row of rows.splice(0)) row.remove();
  }

  addButton.addEventListener("click", () => add().querySelector(".cue-text").focus());

  fileInput.addEventListener("change", async () => {
    const file = fileInput.files[0];
    fileInput.value = "";
    if (!file) return;
    showError("");
    try {
      const { cues } = await api("POST", "/api/v1/captions/check", { webvtt: await file.text() });
      clear();
      cues.forEach(add);
      if (!cues.length) showError("That file has no captions in it.");
    } catch (err) {
      showError(`${file.name}: ${err.message}`);
    }
  });

  return {
    add,
    clear,
    showError,
    /** The captions as the WebVTT the edit sends ("" for none). */
    webvtt() {
      const cues = rows
        .map((row) => ({
          start: Number(row.querySelector(".cue-start").value || 0),
          end: Number(row.querySelector(".cue-end").value || 0),
          text: row.querySelector(".cue-text").value.trim().replace(/\n\s*\n/g, "\n"),
        }))
        .filter((c) => c.text);
      if (!cues.length) return "";
      const blocks = cues.map((c) => `${vttTime(c.start)} --> ${vttTime(c.end)}\n${c.text.replace(/-->/g, "->")}`);
      return `WEBVTT\n\n${blocks.join("\n\n")}\n`;
    },
    /** The captions as cues (for a draft). */
    cues() {
      return rows.map((row) => ({
        start_s: Number(row.querySelector(".cue-start").value || 0),
        end_s: Number(row.querySelector(".cue-end").value || 0),
        text: row.querySelector(".cue-text").value,
      }));
    },
  };
}
