// Sign-up and login: the forms post JSON to /api/v1 and go on to the page the visitor came from.
// Sign-up shows, as the country is chosen, which region and operator will hold the account, and
// every wrong field at once (each under its field, all listed at the top). Refused for age, the
// form is cleared and closed; the server remembers the refusal in this browser for a day.
import { api } from "./api.js";

function nextUrl() {
  const next = new URLSearchParams(location.search).get("next") ?? "/";
  return next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

function clearErrors(form) {
  form.querySelector(".form-error").hidden = true;
  for (const el of form.querySelectorAll(".field-error")) el.remove();
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

/** Show `errors` (field name → message; "" for the form as a whole): each under its field and
 * all of them, in form order, in the box at the top. */
function showErrors(form, errors) {
  const box = form.querySelector(".form-error");
  box.replaceChildren();
  const messages = [];
  for (const [name, message] of Object.entries(errors)) {
    const input = name ? form.elements.namedItem(name) : null;
    if (input instanceof Element) {
      input.setAttribute("aria-invalid", "true");
      const note = document.createElement("p");
      note.className = "field-error";
      note.id = `${name}-error`;
      note.textContent = message;
      input.closest("label").after(note);
      input.setAttribute("aria-errormessage", note.id);
    }
    messages.push(message);
  }
  if (messages.length === 1) {
    box.textContent = messages[0];
  } else {
    const list = document.createElement("ul");
    for (const message of messages) {
      const item = document.createElement("li");
      item.textContent = message;
      list.append(item);
    }
    box.append(list);
  }
  box.hidden = false;
  box.scrollIntoView({ block: "nearest" });
}

function refuseForAge(form, message) {
  // the age refusal sticks: the birth date is cleared and the form closed (and the server keeps
  // refusing this browser for a day)
  form.elements.namedItem("birth_date").value = "";
  form.hidden = true;
  const refusal = document.querySelector(".age-refusal");
  refusal.querySelector(".age-refusal-text").textContent = message;
  refusal.hidden = false;
}

function wireForm(form, toBody) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const missing = {};
    for (const el of form.querySelectorAll("[required]")) {
      if (el.value.trim()) continue;
      const label = el.closest("label")?.querySelector("span")?.textContent ?? "This field";
      missing[el.name] = `${label.trim()} is required.`;
    }
    if (Object.keys(missing).length) {
      showErrors(form, missing);
      form.elements.namedItem(Object.keys(missing)[0]).focus();
      return;
    }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const signed = await api("POST", form.dataset.endpoint, toBody(new FormData(form)));
      // an account whose deletion is scheduled opens on its settings: keep it, or let it go
      location.assign(signed?.account?.deletion_due_at ? "/settings#s-delete" : nextUrl());
    } catch (err) {
      button.disabled = false;
      const fields = Object.fromEntries(Object.entries(err.fields ?? {}).map(([k, v]) => [k, v.message]));
      const young = err.code === "age_refused" || err.fields?.birth_date?.code === "too_young";
      if (young && form.id === "signup-form") {
        refuseForAge(form, err.fields?.birth_date?.message ?? err.message);
        return;
      }
      showErrors(form, Object.keys(fields).length ? fields : { "": err.message });
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
