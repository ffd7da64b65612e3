// The follow button of a profile: follow, unfollow, or withdraw a request (private accounts).
import { api, compact, toast } from "./api.js";

const LABELS = { active: "Following", pending: "Requested", none: "Follow" };

for (const button of document.querySelectorAll(".follow-btn")) {
  button.addEventListener("click", async () => {
    const handle = button.dataset.handle;
    const was = button.dataset.state;
    button.disabled = true;
    try {
      const method = was === "none" ? "POST" : "DELETE";
      const r = await api(method, `/api/v1/users/${encodeURIComponent(handle)}/follow`);
      button.dataset.state = r.state;
      button.textContent = LABELS[r.state];
      button.setAttribute("aria-pressed", String(r.state === "active"));
      button.classList.toggle("btn-primary", r.state === "none");
      button.classList.toggle("btn-secondary", r.state !== "none");
      const followers = document.querySelector(".followers-count");
      if (followers && (r.state === "active" || was === "active")) {
        const n = Number(followers.dataset.n ?? followers.textContent.replace(/\D/g, "")) + (r.state === "active" ? 1 : -1);
        followers.dataset.n = String(n);
        followers.textContent = compact(n);
      }
      if (r.state === "pending") toast(`Follow request sent to @${handle}`);
    } catch (err) {
      toast(err.message);
    } finally {
      button.disabled = false;
    }
  });
}
