// Every page: copy-link buttons and the htmx defaults that keep the Content-Security-Policy happy.
import { copyLink } from "./api.js";

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy-url], .share-profile");
  if (!button) return;
  event.preventDefault();
  copyLink(button.dataset.copyUrl ?? button.dataset.url ?? location.pathname);
});
