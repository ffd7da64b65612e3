// Sign-up and login: the forms post JSON to /api/v1 and go on to the page the visitor came from.
// Sign-up shows, as the country is chosen, which region and operator will hold the account.
import { api } from "./api.js";

function nextUrl() {
  const next = new URLSearchParams(location.search).get("next") ?? "/";
  return next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

function showError(form, message) {
  const box = form.querySelector(".form-error");
  box.textContent = message;
  box.hidden = false;
  box.scrollIntoView({ block: "nearest" });
}

function wireForm(form, toBody) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    form.querySelector(".form-error").hidden = true;
    const missing = [...form.querySelectorAll("[required]")].find((el) => !el.value.trim());
    if (missing) {
      const label = missing.closest("label")?.querySelector("span")?.textContent ?? "This field";
      showError(form, `${label.trim()} is required.`);
      missing.focus();
      return;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api("POST", form.dataset.endpoint, toBody(new FormData(form)));
      location.assign(nextUrl());
    } catch (err) {
      showError(form, err.message);
      button.disabled = false;
    }
  });
}

const login = document.getElementById("login-form");
if (login) {
  wireForm(login, (data) => ({ handle: data.get("handle").trim(), password: data.get("password") }));
}

const signup = document.getElementById("signup-form");
if (signup) {
  const homes = JSON.parse(document.getElementById("homes").textContent);
  const select = signup.querySelector("#jurisdiction");
  const note = signup.querySelector(".home-text");
  const chosen = new Set();

  const describe = () => {
    const home = homes[select.value];
    note.textContent = home
      ? `Your personal data will be stored in region ${home.region}, run by ${home.operator}, in ${home.location}.`
      : "Your personal data is kept in the data region of the country you live in.";
  };
  select.addEventListener("change", describe);
  const guess = (navigator.language ?? "").split("-")[1]?.toUpperCase();
  if (guess && homes[guess] && !select.value) select.value = guess;
  describe();

  // interests for a cold start, where the server offers them
  api("GET", "/api/v1/interests")
    .then((tags) => {
      const list = Array.isArray(tags) ? tags : tags?.items ?? [];
      if (!list.length) return;
      const box = signup.querySelector(".interest-chips");
      for (const entry of list.slice(0, 24)) {
        const tag = typeof entry === "string" ? entry : entry.tag ?? entry.name;
        if (!tag) continue;
        const chip = document.createElement("button");
        chip.type = "button";
        chip.className = "chip";
        chip.setAttribute("aria-pressed", "false");
        chip.textContent = `#${tag}`;
        chip.addEventListener("click", () => {
          const on = !chosen.has(tag);
          if (on && chosen.size >= 10) return;
          on ? chosen.add(tag) : chosen.delete(tag);
          chip.setAttribute("aria-pressed", String(on));
        });
        box.append(chip);
      }
      signup.querySelector(".interests").hidden = false;
    })
    .catch(() => {});

  wireForm(signup, (data) => {
    const body = {
      handle: data.get("handle").trim(),
      password: data.get("password"),
      email: data.get("email").trim(),
      birth_date: data.get("birth_date"),
      jurisdiction: data.get("jurisdiction"),
      display_name: data.get("display_name").trim(),
    };
    if (chosen.size) body.interests = [...chosen];
    return body;
  });
}
