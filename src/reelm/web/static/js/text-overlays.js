// Create: up to five texts on the video, each with a bundled font, a colour, a size, a place
// (drag it on the preview, or the Across/Down sliders) and a start and end time. The preview
// shows them over the server-rendered frame with the same fonts, sizes and outline as the
// transcode draws, for the time the preview is at.
export const MAX_TEXTS = 5;
const REFERENCE_WIDTH = 720; // sizes are pixels on the 720 px wide frame, as the server takes them

/** The outline the server draws: dark around light text, light around dark text. */
function outlineColour(hex) {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  return 0.2126 * r + 0.7152 * g + 0.0722 * b > 140 ? "rgba(0,0,0,.8)" : "rgba(255,255,255,.8)";
}

export function textOverlays({ list, template, layer, addButton, onChange = () => {} }) {
  const items = [];
  let now = 0;

  function frameWidth() {
    return layer.getBoundingClientRect().width || REFERENCE_WIDTH / 2;
  }

  function paint(item) {
    const { row, shown } = item;
    const value = row.querySelector(".text-value").value;
    const colour = row.querySelector(".text-color").value;
    const size = Number(row.querySelector(".text-size").value);
    const px = (size * frameWidth()) / REFERENCE_WIDTH;
    shown.textContent = value.trim() || " ";
    shown.style.fontFamily = `"reelm-${row.querySelector(".text-font").value}", sans-serif`;
    shown.style.color = colour;
    shown.style.fontSize = `${px}px`;
    shown.style.webkitTextStroke = `${Math.max(1, Math.round(px / 14)) * 2}px ${outlineColour(colour)}`;
    shown.style.left = `${row.querySelector(".text-x").value}%`;
    shown.style.top = `${row.querySelector(".text-y").value}%`;
    const start = Number(row.querySelector(".text-start").value || 0);
    const endValue = row.querySelector(".text-end").value;
    const end = endValue === "" ? Infinity : Number(endValue);
    shown.hidden = !value.trim() || now < start || now >= end;
  }

  function paintAll() {
    items.forEach(paint);
    addButton.disabled = items.length >= MAX_TEXTS;
  }

  function drag(item) {
    const { shown, row } = item;
    shown.addEventListener("pointerdown", (event) => {
      event.preventDefault();
      shown.setPointerCapture(event.pointerId);
      shown.classList.add("is-dragging");
      const box = layer.getBoundingClientRect();
      const move = (e) => {
        const x = Math.min(100, Math.max(0, ((e.clientX - box.left) / box.width) * 100));
        const y = Math.min(100, Math.max(0, ((e.clientY - box.top) / box.height) * 100));
        row.querySelector(".text-x").value = String(Math.round(x));
        row.querySelector(".text-y").value = String(Math.round(y));
        paint(item);
      };
      const up = () => {
        shown.classList.remove("is-dragging");
        shown.removeEventListener("pointermove", move);
        shown.removeEventListener("pointerup", up);
        onChange();
      };
      shown.addEventListener("pointermove", move);
      shown.addEventListener("pointerup", up);
    });
  }

  function add(initial = {}) {
    if (items.length >= MAX_TEXTS) return null;
    const row = template.content.firstElementChild.cloneNode(true);
    const number = items.length + 1;
    const set = (selector, value) => {
      if (value !== undefined && value !== null) row.querySelector(selector).value = String(value);
    };
    set(".text-value", initial.text);
    set(".text-font", initial.font);
    set(".text-color", initial.color);
    set(".text-size", initial.size);
    set(".text-x", initial.x !== undefined ? Math.round(initial.x * 100) : undefined);
    set(".text-y", initial.y !== undefined ? Math.round(initial.y * 100) : undefined);
    set(".text-start", initial.start_s ?? (Math.round(now * 10) / 10));
    set(".text-end", initial.end_s);
    for (const input of row.querySelectorAll("input, select, textarea")) {
      const label = input.closest("label")?.querySelector("span")?.textContent ?? "";
      input.setAttribute("aria-label", `Text ${number} ${label.toLowerCase()}`);
    }
    const shown = document.createElement("span");
    shown.className = "text-overlay";
    layer.append(shown);
    const item = { row, shown };
    items.push(item);
    row.addEventListener("input", () => {
      paint(item);
      onChange();
    });
    row.querySelector(".text-remove").addEventListener("click", () => {
      items.splice(items.indexOf(item), 1);
      row.remove();
      shown.remove();
      paintAll();
      onChange();
    });
    drag(item);
    list.append(row);
    paintAll();
    return row;
  }

  addButton.addEventListener("click", () => {
    const row = add();
    row?.querySelector(".text-value").focus();
    onChange();
  });
  window.addEventListener("resize", paintAll);

  return {
    add,
    /** Show the texts that are on screen at `seconds` of the edited video. */
    at(seconds) {
      now = seconds;
      paintAll();
    },
    /** The texts as the edit sends them (empty ones left out). */
    value() {
      return items
        .map(({ row }) => {
          const end = row.querySelector(".text-end").value;
          return {
            text: row.querySelector(".text-value").value.trim(),
            font: row.querySelector(".text-font").value,
            color: row.querySelector(".text-color").value,
            size: Number(row.querySelector(".text-size").value),
            x: Number(row.querySelector(".text-x").value) / 100,
            y: Number(row.querySelector(".text-y").value) / 100,
            start_s: Number(row.querySelector(".text-start").value || 0),
            end_s: end === "" ? null : Number(end),
          };
        })
        .filter((t) => t.text);
    },
    clear() {
      for (const { row, shown } of items.splice(0)) {
        row.remove();
        shown.remove();
      }
      paintAll();
    },
  };
}
