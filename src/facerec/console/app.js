// The console's shell: sign-in, navigation between pages (#hash routes), the language switch
// and the collection every page works on.

import { api, apiKey, ApiError, setApiKey } from "./api.js";
import { healthPage } from "./health.js";
import { LANGUAGES, language, setLanguage, t, translate } from "./i18n.js";
import { collectionsPage, enrollPage, modelsPage, personsPage } from "./pages.js";
import { errorMessage, h, message } from "./ui.js";
import { cameraPage, comparePage, photosPage, recognizePage } from "./vision.js";

const PAGES = {
  collections: collectionsPage,
  persons: personsPage,
  enroll: enrollPage,
  recognize: recognizePage,
  compare: comparePage,
  camera: cameraPage,
  photos: photosPage,
  models: modelsPage,
  health: healthPage,
};
const COLLECTION_KEY = "facerec.collection";

const view = document.getElementById("view");
const nav = document.getElementById("nav");
const collectionSelect = document.getElementById("collection");
const languageSelect = document.getElementById("lang");
const signOut = document.getElementById("sign-out");
const who = document.getElementById("who");
let leaveHandlers = [];
let signedIn = false;

const app = {
  collection: () => sessionStorage.getItem(COLLECTION_KEY) || "default",
  useCollection(name) {
    sessionStorage.setItem(COLLECTION_KEY, name);
    collectionSelect.value = name;
    show();
  },
  onLeave(handler) {
    leaveHandlers.push(handler);
  },
  async loadCollections() {
    let names = ["default"];
    try {
      names = (await api.collections()).collections.map((c) => c.name);
    } catch {
      // a key without the manage scope: only the current collection can be offered
    }
    if (!names.includes(app.collection())) names.push(app.collection());
    collectionSelect.replaceChildren(...names.map((name) => h("option", { value: name }, name)));
    collectionSelect.value = app.collection();
  },
};

function buildChrome() {
  nav.replaceChildren(
    ...Object.keys(PAGES).map((page) =>
      h("a", { href: `#${page}`, dataset: { page, i18n: `nav.${page}` } }, t(`nav.${page}`)),
    ),
  );
  languageSelect.replaceChildren(
    ...Object.entries(LANGUAGES).map(([code, name]) => h("option", { value: code }, name)),
  );
  languageSelect.value = language();
}

function signInPage() {
  const key = h("input", { type: "password", id: "key", name: "key", autocomplete: "off", placeholder: "fk_…" });
  const status = h("div", { class: "status" });
  const form = h(
    "form",
    { class: "stack signin", id: "signin-form" },
    h("label", {}, t("signin.key"), key),
    h("p", { class: "hint" }, t("signin.help")),
    h("div", { class: "inline" }, h("button", { type: "submit", class: "primary" }, t("signin.submit")), h("button", { type: "button", id: "without-key" }, t("signin.without_key"))),
  );
  async function attempt(value) {
    status.replaceChildren();
    setApiKey(value);
    try {
      await api.models(); // any key-checked route: 401 means the key is refused
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        setApiKey("");
        status.append(message("error", value ? t("signin.invalid") : t("signin.required")));
        return;
      }
      if (!(error instanceof ApiError && error.status === 403)) {
        status.append(errorMessage(error)); // the service is down or starting: try again later
        setApiKey("");
        return;
      }
    }
    signedIn = true;
    await enter();
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(key.value.trim());
  });
  form.querySelector("#without-key").addEventListener("click", () => attempt(""));
  view.replaceChildren(h("h2", {}, t("signin.title")), form, status);
  key.focus();
}

async function enter() {
  document.body.classList.add("signed-in");
  who.textContent = apiKey() ? `${t("app.signed_in")} (${apiKey().slice(0, 10)}…)` : t("app.no_key");
  await app.loadCollections();
  if (!location.hash || location.hash === "#signin") location.hash = "#recognize";
  else show();
}

function show() {
  for (const handler of leaveHandlers) handler();
  leaveHandlers = [];
  if (!signedIn) return signInPage();
  const page = location.hash.slice(1) in PAGES ? location.hash.slice(1) : "recognize";
  for (const link of nav.querySelectorAll("a")) {
    link.classList.toggle("active", link.dataset.page === page);
    if (link.dataset.page === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  view.dataset.page = page;
  Promise.resolve(PAGES[page](view, app)).catch((error) => view.append(errorMessage(error)));
}

function retranslate() {
  document.title = t("app.title");
  translate(document);
  who.textContent = !signedIn ? "" : apiKey() ? `${t("app.signed_in")} (${apiKey().slice(0, 10)}…)` : t("app.no_key");
  show(); // pages build their text when shown
}

languageSelect.addEventListener("change", () => {
  setLanguage(languageSelect.value);
  retranslate();
});
collectionSelect.addEventListener("change", () => app.useCollection(collectionSelect.value));
signOut.addEventListener("click", () => {
  setApiKey("");
  signedIn = false;
  document.body.classList.remove("signed-in");
  location.hash = "#signin";
  show();
});
window.addEventListener("hashchange", show);

setLanguage(language());
buildChrome();
translate(document);
document.title = t("app.title");
if (apiKey()) {
  // A key from earlier in this tab: check it is still accepted.
  api.models().then(
    () => ((signedIn = true), enter()),
    (error) => {
      signedIn = error instanceof ApiError && error.status === 403;
      if (!signedIn) setApiKey("");
      if (signedIn) enter();
      else show();
    },
  );
} else {
  show();
}
