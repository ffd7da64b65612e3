// The comments drawer of a video: list (replies one level deep), post, reply, delete.
// Every comment is put on the page with textContent: a comment is text, whatever it contains.
import { api, ago, compact, hue, idempotencyKey, loginFirst, me, signedIn, toast } from "./api.js";

const drawer = document.getElementById("comments-drawer");
let current = null; // { videoId, creator, slide }
let replyTo = null; // { id, handle }

function countTargets() {
  return current?.slide ? [current.slide.querySelector(".rail-btn.comment .rail-count")] : [];
}

function title(n) {
  drawer.querySelector("#comments-title").textContent = `${compact(n)} ${Number(n) === 1 ? "comment" : "comments"}`;
}

function setCount(n) {
  title(n);
  for (const el of countTargets()) if (el) el.textContent = compact(n);
  if (current?.slide) current.slide.dataset.comments = String(n);
}

function commentNode(c) {
  const node = drawer.querySelector(".comment-template").content.firstElementChild.cloneNode(true);
  node.dataset.commentId = c.id;
  if (c.parent_id) node.classList.add("reply");
  const avatar = node.querySelector(".avatar");
  avatar.textContent = (c.author_handle[0] ?? "?").toUpperCase();
  avatar.classList.add(`hue-${hue(c.author_handle)}`);
  const author = node.querySelector(".comment-author");
  author.textContent = c.author_handle;
  author.href = `/@${encodeURIComponent(c.author_handle)}`;
  node.querySelector(".comment-text").textContent = c.text;
  node.querySelector(".comment-when").textContent = ago(c.created_at);
  node.querySelector(".comment-reply").addEventListener("click", () => startReply(c));
  const del = node.querySelector(".comment-delete");
  const mine = me() && (me() === c.author_handle.toLowerCase() || me() === current?.creator?.toLowerCase());
  if (mine) {
    del.hidden = false;
    del.addEventListener("click", () => removeComment(c, node));
  }
  return node;
}

function render(comments) {
  const list = drawer.querySelector(".comment-list");
  list.replaceChildren();
  const tops = comments.filter((c) => !c.parent_id);
  const replies = comments.filter((c) => c.parent_id).reverse(); // oldest reply first
  for (const top of tops) {
    list.append(commentNode(top));
    for (const r of replies) if (r.parent_id === top.id) list.append(commentNode(r));
  }
  drawer.querySelector(".comments-empty").hidden = comments.length > 0;
}

function startReply(c) {
  if (!signedIn()) return loginFirst();
  replyTo = { id: c.parent_id ?? c.id, handle: c.author_handle };
  const bar = drawer.querySelector(".replying");
  bar.querySelector(".replying-to").textContent = `Replying to @${c.author_handle}`;
  bar.hidden = false;
  drawer.querySelector("#comment-text").focus();
}

function cancelReply() {
  replyTo = null;
  drawer.querySelector(".replying").hidden = true;
}

async function removeComment(c, node) {
  try {
    await api("DELETE", `/api/v1/comments/${encodeURIComponent(c.id)}`);
    node.remove();
    const n = Math.max(0, Number(current.slide?.dataset.comments ?? 1) - 1);
    setCount(n);
    toast("Comment deleted");
  } catch (err) {
    toast(err.message);
  }
}

export async function openComments({ videoId, creator, slide, allowComments = true }) {
  if (!drawer) return;
  current = { videoId, creator, slide };
  cancelReply();
  drawer.querySelector(".comment-list").replaceChildren();
  drawer.querySelector(".comments-empty").hidden = true;
  drawer.querySelector(".comments-off").hidden = allowComments;
  drawer.querySelector(".comment-form").hidden = !allowComments;
  title(slide?.dataset.comments ?? 0);
  drawer.showModal();
  try {
    const comments = await api("GET", `/api/v1/videos/${encodeURIComponent(videoId)}/comments?limit=100`);
    if (current?.videoId === videoId) render(comments);
  } catch (err) {
    toast(err.message);
  }
}

if (drawer) {
  drawer.querySelector(".drawer-close").addEventListener("click", () => drawer.close());
  drawer.addEventListener("click", (event) => {
    if (event.target === drawer) drawer.close(); // a click on the backdrop
  });
  drawer.querySelector(".cancel-reply").addEventListener("click", cancelReply);
  drawer.querySelector(".comment-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!signedIn()) return loginFirst();
    const input = drawer.querySelector("#comment-text");
    const text = input.value.trim();
    if (!text || !current) return;
    const button = event.target.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const body = replyTo ? { text, parent_id: replyTo.id } : { text };
      const c = await api("POST", `/api/v1/videos/${encodeURIComponent(current.videoId)}/comments`, body, {
        idempotencyKey: idempotencyKey(),
        retries: 2,
      });
      const list = drawer.querySelector(".comment-list");
      const node = commentNode(c);
      const parent = c.parent_id && list.querySelector(`[data-comment-id="${CSS.escape(c.parent_id)}"]`);
      if (parent) {
        let after = parent;
        while (after.nextElementSibling?.classList.contains("reply")) after = after.nextElementSibling;
        after.after(node);
      } else {
        list.prepend(node);
      }
      drawer.querySelector(".comments-empty").hidden = true;
      setCount(Number(current.slide?.dataset.comments ?? 0) + 1);
      input.value = "";
      cancelReply();
    } catch (err) {
      toast(err.message);
    } finally {
      button.disabled = false;
    }
  });
}
