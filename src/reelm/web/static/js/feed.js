// Feeds: fills the vertical feed page by page from /api/v1 and hands each slide to the player.
// For You comes from /api/v1/feed/for-you; where that is not served (or not to this visitor),
// the page falls back to Following and to the videos of the trending sounds, newest first.
import { ApiError, ago, api, compact, hue, renderCaption, signedIn, toast } from "./api.js";
import { applyStates, move, showLicence, start, wire } from "./player.js";

const feed = document.getElementById("feed");
const template = document.getElementById("slide-template");
const seen = new Set();
const soundCache = new Map();

const licenceCache = new Map();
function licence(videoId) {
  if (!licenceCache.has(videoId)) {
    licenceCache.set(videoId, api("GET", `/api/v1/videos/${encodeURIComponent(videoId)}`).catch(() => null));
  }
  return licenceCache.get(videoId);
}

function sound(id) {
  if (!soundCache.has(id)) soundCache.set(id, api("GET", `/api/v1/sounds/${encodeURIComponent(id)}`).catch(() => null));
  return soundCache.get(id);
}

// sources: each returns { items: [{video, reason}], next: () => Promise<page> | null }

async function followingPage(cursor) {
  const q = new URLSearchParams({ limit: "8" });
  if (cursor) q.set("cursor", cursor);
  const page = await api("GET", `/api/v1/feed/following?${q}`);
  return { items: page.items, next: page.next_cursor ? () => followingPage(page.next_cursor) : null };
}

async function trendingPage() {
  const songs = await api("GET", "/api/v1/sounds/trending?limit=12");
  const pages = await Promise.all(
    songs.items.map((s) =>
      api("GET", `/api/v1/sounds/${encodeURIComponent(s.id)}/videos?limit=12`)
        .then((r) => r.page.items.map((item) => ({ ...item, reason: `Trending sound: ${s.title}` })))
        .catch(() => []),
    ),
  );
  const items = pages.flat().sort((a, b) => b.video.published_at.localeCompare(a.video.published_at));
  return { items, next: null };
}

async function fallbackPage() {
  // For You is not available here: what the viewer follows first, then what is trending
  if (signedIn()) {
    const first = await followingPage(null).catch(() => ({ items: [], next: null }));
    const chain = (page) => ({
      items: page.items,
      next: page.next ? () => page.next().then(chain) : () => trendingPage(),
    });
    return chain(first);
  }
  return trendingPage();
}

async function forYouPage(cursor) {
  const q = new URLSearchParams({ limit: "8" });
  if (cursor) q.set("cursor", cursor);
  try {
    const page = await api("GET", `/api/v1/feed/for-you?${q}`);
    return { items: page.items, next: page.next_cursor ? () => forYouPage(page.next_cursor) : null };
  } catch (err) {
    if (!cursor && err instanceof ApiError && [401, 404, 405].includes(err.status)) return fallbackPage();
    throw err;
  }
}

// slides ------------------------------------------------------------------------------------

function buildSlide({ video: v, reason }) {
  const slide = template.content.firstElementChild.cloneNode(true);
  Object.assign(slide.dataset, {
    videoId: v.id,
    hls: v.urls.hls,
    mp4: v.urls.mp4,
    creator: v.creator_handle,
    likes: String(v.like_count),
    comments: String(v.comment_count),
    shares: String(v.share_count),
    allowComments: String(v.allow_comments),
    duration: String(v.duration_s),
  });
  slide.setAttribute("aria-label", `Video by @${v.creator_handle}`);
  slide.querySelector("video").poster = v.urls.poster;
  const profile = `/@${encodeURIComponent(v.creator_handle)}`;
  const name = slide.querySelector(".creator-name");
  name.textContent = v.creator_handle;
  name.href = profile;
  slide.querySelector(".when").textContent = ` · ${ago(v.published_at)}`;
  renderCaption(slide.querySelector(".caption"), v.caption);
  slide.querySelector(".reason").textContent = reason ?? "";
  const avatar = slide.querySelector(".rail-avatar .avatar");
  avatar.textContent = (v.creator_handle[0] ?? "?").toUpperCase();
  avatar.classList.add(`hue-${hue(v.creator_handle)}`);
  const profileLink = slide.querySelector(".rail-profile");
  profileLink.href = profile;
  profileLink.setAttribute("aria-label", `@${v.creator_handle} profile`);
  slide.querySelector(".follow-plus").setAttribute("aria-label", `Follow @${v.creator_handle}`);
  slide.querySelector(".rail-btn.like .rail-count").textContent = compact(v.like_count);
  slide.querySelector(".rail-btn.comment .rail-count").textContent = compact(v.comment_count);
  slide.querySelector(".rail-btn.share .rail-count").textContent = compact(v.share_count);
  const line = slide.querySelector(".sound-line");
  const disc = slide.querySelector(".disc");
  const discCover = slide.querySelector(".disc-cover");
  discCover.className = `disc-cover hue-${hue(v.sound_id ?? v.creator_handle)}`;
  const showSound = (s) => {
    const href = `/sound/${encodeURIComponent(s.id)}`;
    line.href = href;
    disc.href = href;
    slide.querySelector(".sound-name").textContent = `${s.title} · ${s.artist}`;
    disc.setAttribute("aria-label", `Sound: ${s.title} by ${s.artist}`);
    if (s.cover_url) {
      const img = document.createElement("img");
      img.src = s.cover_url;
      img.alt = "";
      discCover.replaceChildren(img);
    }
  };
  if (v.muted_notice) slide.dataset.mutedNotice = v.muted_notice;
  if (v.urls?.captions) slide.dataset.captions = v.urls.captions;
  if (v.sound) {
    showSound(v.sound);
  } else if (v.sound_id) {
    // a list the server did not annotate: ask for this viewer's licence before any sound plays
    slide.dataset.licence = "checking";
    line.href = disc.href = `/sound/${encodeURIComponent(v.sound_id)}`;
    slide.querySelector(".sound-name").textContent = "Sound";
    licence(v.id).then(async (full) => {
      if (full) {
        if (full.muted_notice) slide.dataset.mutedNotice = full.muted_notice;
        if (full.sound) showSound(full.sound);
      } else {
        // not readable as a public video (followers only): trust only a worldwide licence
        const s = await sound(v.sound_id);
        if (s) showSound(s);
        if (!s?.worldwide) slide.dataset.mutedNotice = "This sound isn't available here, so the video plays without sound.";
      }
      delete slide.dataset.licence;
      showLicence(slide);
    });
  } else {
    line.href = profile;
    disc.href = profile;
    slide.querySelector(".sound-name").textContent = `Original sound · ${v.creator_handle}`;
    disc.setAttribute("aria-label", `Original sound by @${v.creator_handle}`);
  }
  return slide;
}

let nextPage = null;
let loading = false;

async function load(pageFn) {
  if (loading || !pageFn) return;
  loading = true;
  feed.setAttribute("aria-busy", "true");
  try {
    const page = await pageFn();
    nextPage = page.next;
    const fresh = page.items.filter((item) => !seen.has(item.video.id));
    const added = [];
    for (const item of fresh) {
      seen.add(item.video.id);
      const slide = buildSlide(item);
      feed.append(slide);
      wire(slide);
      added.push(slide);
    }
    applyStates(added);
    if (fresh.length === 0 && nextPage) {
      loading = false;
      return load(nextPage);
    }
  } catch (err) {
    toast(err.message);
  } finally {
    loading = false;
    feed.setAttribute("aria-busy", "false");
    feed.querySelector(".feed-loading")?.remove();
    const empty = document.querySelector(".feed-empty");
    if (empty) empty.hidden = feed.querySelector(".slide") !== null;
  }
}

function init() {
  const source = feed.dataset.source;
  start(feed);
  if (source === "single") {
    document.querySelector(".open-comments")?.addEventListener("click", () =>
      feed.querySelector(".slide .rail-btn.comment").click(),
    );
    return;
  }
  feed.addEventListener("slide:active", (event) => {
    const total = feed.querySelectorAll(".slide").length;
    if (event.detail.index >= total - 3) load(nextPage);
  });
  document.querySelector(".key-up")?.addEventListener("click", () => move(-1));
  document.querySelector(".key-down")?.addEventListener("click", () => move(1));
  if (source === "following") {
    if (!signedIn()) return load(async () => ({ items: [], next: null }));
    return load(() => followingPage(null));
  }
  return load(() => forYouPage(null));
}

// hls.js is a classic deferred script placed before this module: it has run by now
init();
