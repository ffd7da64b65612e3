// Shared by the page scripts: JSON calls to /api/v1 with the page's CSRF token, errors with the
// server's own message, a toast, and the few formatters the server's templates also have.

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

export class ApiError extends Error {
  constructor(status, code, message, fields = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.fields = fields; // field name → { code, message }, when a form had several wrong fields
  }
}

/** A fresh Idempotency-Key: one per thing the user means to create, reused by its retries. */
export function idempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

/** fetch + JSON; throws ApiError carrying the server's message (what the user should read).
 *  With `idempotencyKey`, the request is sent with that key and tried again (up to `retries`
 *  times) after a 503 (waiting its Retry-After) or a lost connection: the server answers a
 *  repeated key with the first result, so a retry never creates anything twice. */
export async function api(method, url, body, { keepalive = false, idempotencyKey = null, retries = 0 } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrf();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  for (let attempt = 0; ; attempt += 1) {
    let res;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "same-origin",
        keepalive,
      });
    } catch {
      if (idempotencyKey && attempt < retries) {
        await sleep(1000);
        continue;
      }
      throw new ApiError(0, "network", "No connection. Check your network and try again.");
    }
    if (res.status === 503 && idempotencyKey && attempt < retries) {
      const wait = Math.min(10, Number(res.headers.get("Retry-After")) || 1);
      await sleep(wait * 1000);
      continue;
    }
    if (res.status === 204) return null;
    const data = await res.json().catch(() => null);
    if (!res.ok) {
      const err = data?.error ?? {};
      throw new ApiError(res.status, err.code ?? "http_error", err.message ?? `Request failed (${res.status}).`, err.fields ?? {});
    }
    return data;
  }
}

export const csrfToken = csrf;
export const signedIn = () => Boolean(document.body.dataset.user);
export const me = () => document.body.dataset.user || null;

let toastTimer;
export function toast(message) {
  const el = document.getElementById("toast");
  if (!el) return;
  el.textContent = message;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 2600);
}

/** Send a signed-out visitor to log in, then back here. */
export function loginFirst() {
  location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
}

export function compact(n) {
  const v = Number(n) || 0;
  for (const [limit, suffix] of [[1e9, "B"], [1e6, "M"], [1e3, "K"]]) {
    if (v >= limit) return `${(v / limit).toFixed(1).replace(/\.0$/, "")}${suffix}`;
  }
  return String(Math.trunc(v));
}

export function ago(iso) {
  if (!iso) return "";
  const when = new Date(/[zZ]|[+-]\d\d:\d\d$/.test(iso) ? iso : `${iso}Z`);
  const s = (Date.now() - when.getTime()) / 1000;
  if (s < 60) return "now";
  for (const [size, unit] of [[604800, "w"], [86400, "d"], [3600, "h"], [60, "m"]]) {
    if (s >= size && (unit !== "w" || s < 8 * 604800)) return `${Math.floor(s / size)}${unit}`;
  }
  return when.toISOString().slice(0, 10);
}

/** The same 12-way colour the server's `hue` filter picks for a handle. */
export function hue(seed) {
  let h = 0;
  for (const ch of seed ?? "") h = (Math.imul(h, 31) + ch.codePointAt(0)) >>> 0;
  return h % 12;
}

const TOKENS = /(?<![\w#])#(\w{1,100})|(?<![\w@])@([A-Za-z0-9_.]{3,24})/gu;

/** Fill `el` with a caption: text nodes for the user's words, links for #tags and @mentions.
 *  Never innerHTML: whatever the caption holds stays text. */
export function renderCaption(el, text) {
  el.replaceChildren();
  let last = 0;
  for (const m of (text ?? "").matchAll(TOKENS)) {
    el.append(document.createTextNode(text.slice(last, m.index)));
    const a = document.createElement("a");
    if (m[1]) {
      a.className = "tag";
      a.href = `/tag/${encodeURIComponent(m[1].toLowerCase())}`;
      a.textContent = `#${m[1]}`;
    } else {
      a.className = "mention";
      a.href = `/@${encodeURIComponent(m[2].toLowerCase().replace(/^\.+|\.+$/g, ""))}`;
      a.textContent = `@${m[2]}`;
    }
    el.append(a);
    last = m.index + m[0].length;
  }
  el.append(document.createTextNode((text ?? "").slice(last)));
}

export async function copyLink(path) {
  const url = new URL(path, location.origin).href;
  try {
    await navigator.clipboard.writeText(url);
    toast("Link copied");
  } catch {
    toast(url);
  }
  return url;
}

/** An icon from the sprite, as the server's `icon` macro draws it. */
export function icon(name) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "icon");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const use = document.createElementNS("http://www.w3.org/2000/svg", "use");
  use.setAttribute("href", `/static/icons.svg#${name}`);
  svg.append(use);
  return svg;
}

export const reducedMotion = () => window.matchMedia("(prefers-reduced-motion: reduce)").matches;
