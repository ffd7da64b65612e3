// The inbox: marks what it shows as read, and answers follow requests.
import { api, toast } from "./api.js";

const activity = document.querySelector(".activity");
if (activity && Number(activity.dataset.unread) > 0) {
  api("POST", "/api/v1/me/notifications/read").then(() => {
    for (const badge of document.querySelectorAll("nav .badge")) badge.remove();
  }).catch(() => {});
}

for (const row of document.querySelectorAll(".requests li")) {
  const handle = row.dataset.handle;
  for (const [selector, verb, message] of [[".approve", "approve", "approved"], [".decline", "decline", "declined"]]) {
    row.querySelector(selector).addEventListener("click", async () => {
      try {
        await api("POST", `/api/v1/me/follow-requests/${encodeURIComponent(handle)}/${verb}`);
        row.remove();
        toast(`@${handle}: request ${message}`);
      } catch (err) {
        toast(err.message);
      }
    });
  }
}
