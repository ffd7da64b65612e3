// Settings: profile and privacy, sessions, download my data (with progress), account deletion.
import { api, toast } from "./api.js";

const $ = (selector) => document.querySelector(selector);

$("#profile-form")?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const status = form.querySelector(".form-status");
  try {
    await api("PATCH", "/api/v1/me/profile", {
      display_name: form.elements.display_name.value.trim(),
      bio: form.elements.bio.value,
    });
    status.textContent = "Saved.";
  } catch (err) {
    status.textContent = err.message;
  }
});

$("#private-toggle")?.addEventListener("change", async (event) => {
  const on = event.target.checked;
  const status = $(".privacy-status");
  try {
    await api("PATCH", "/api/v1/me/profile", { is_private: on });
    status.textContent = on ? "Your account is private." : "Your account is public.";
  } catch (err) {
    event.target.checked = !on;
    status.textContent = err.message;
  }
});

for (const button of document.querySelectorAll(".sessions .revoke")) {
  button.addEventListener("click", async () => {
    const row = button.closest("li");
    try {
      await api("DELETE", `/api/v1/sessions/${encodeURIComponent(row.dataset.sessionId)}`);
      row.remove();
      toast("Logged out of that device");
    } catch (err) {
      toast(err.message);
    }
  });
}

$("#logout")?.addEventListener("click", async () => {
  try {
    await api("DELETE", "/api/v1/sessions/current");
  } finally {
    location.assign("/");
  }
});

// download my data: built by the region's workers; this page follows the job until it is ready
// or failed (then says why and offers to try again), and picks it up again when reopened.

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const exportCard = $("#export");

async function followExport(id) {
  const button = $("#export-start");
  const status = $(".export-status");
  const error = $(".export-error");
  const bar = $("#export-bar");
  const step = $(".export-step");
  button.disabled = true;
  $(".export-ready").hidden = true;
  $(".export-progress").hidden = false;
  error.hidden = true;
  status.textContent = "";
  try {
    for (;;) {
      const job = await api("GET", `/api/v1/me/exports/${encodeURIComponent(id)}`);
      bar.value = job.progress ?? 0;
      step.textContent = job.state === "queued"
        ? "Waiting for your region's worker…"
        : job.error
          ? `Preparing your file: an attempt failed, trying again (${job.progress ?? 0}%)`
          : `Preparing your file (${job.progress ?? 0}%)`;
      if (job.state === "ready") {
        const link = $("#export-link");
        link.href = job.download_url;
        $(".export-expiry").textContent = `Link expires ${new Date(job.link_expires_at).toLocaleString()}`;
        $(".export-progress").hidden = true;
        $(".export-ready").hidden = false;
        status.textContent = "Your data file is ready.";
        button.textContent = "Request a new data file";
        break;
      }
      if (job.state === "failed") throw new Error(`Your data file could not be built: ${job.error}`);
      await sleep(700);
    }
  } catch (err) {
    $(".export-progress").hidden = true;
    error.textContent = err.message;
    error.hidden = false;
    button.textContent = "Try again";
  } finally {
    button.disabled = false;
  }
}

$("#export-start")?.addEventListener("click", async () => {
  try {
    const { id } = await api("POST", "/api/v1/me/exports");
    await followExport(id);
  } catch (err) {
    $(".export-error").textContent = err.message;
    $(".export-error").hidden = false;
  }
});

if (exportCard?.dataset.exportId && ["queued", "building"].includes(exportCard.dataset.exportState)) {
  followExport(exportCard.dataset.exportId);
}

// deletion with a 30-day grace period

const dialog = $("#delete-dialog");
$("#delete-start")?.addEventListener("click", () => dialog.showModal());
$("#delete-no")?.addEventListener("click", () => dialog.close());
$("#delete-yes")?.addEventListener("click", async () => {
  dialog.close();
  try {
    const r = await api("POST", "/api/v1/me/deletion");
    // the same words as the page renders on the server ("2 January 2027")
    $(".deletion-date").textContent = new Date(r.deletion_due_at).toLocaleDateString("en-GB", { day: "numeric", month: "long", year: "numeric", timeZone: "UTC" });
    $(".deletion-none").hidden = true;
    $(".deletion-pending").hidden = false;
    $(".delete-status").textContent = "Deletion scheduled.";
    // the dialog closed where the button was: bring the banner and its undo into view and focus
    $(".deletion-pending").scrollIntoView({ block: "center" });
    $("#delete-cancel").focus();
  } catch (err) {
    $(".delete-status").textContent = err.message;
  }
});
$("#delete-cancel")?.addEventListener("click", async () => {
  try {
    await api("DELETE", "/api/v1/me/deletion");
    $(".deletion-pending").hidden = true;
    $(".deletion-none").hidden = false;
    $(".delete-status").textContent = "Your account will not be deleted.";
  } catch (err) {
    $(".delete-status").textContent = err.message;
  }
});
