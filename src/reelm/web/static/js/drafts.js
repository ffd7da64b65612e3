// Profile, Drafts: delete a draft (after a confirmation in the page, not a dialog).
import { api, toast } from "./api.js";

for (const tile of document.querySelectorAll(".draft")) {
  const button = tile.querySelector(".draft-delete");
  button.addEventListener("click", async () => {
    if (button.dataset.armed !== "true") {
      button.dataset.armed = "true";
      button.lastChild.textContent = " Delete for good?";
      return;
    }
    button.disabled = true;
    try {
      await api("DELETE", `/api/v1/drafts/${encodeURIComponent(tile.dataset.draftId)}`);
      tile.remove();
      toast("Draft deleted");
    } catch (err) {
      toast(err.message);
      button.disabled = false;
    }
  });
}
