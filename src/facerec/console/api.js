// Calls to the service: the key (sessionStorage, this tab only) goes as X-API-Key on every call;
// every failure becomes an ApiError with the service's stable error code.

const KEY_STORAGE = "facerec.key";
const FACES = "/api/face-recognition";

export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

function headers(extra = {}) {
  const key = apiKey();
  return key ? { ...extra, "X-API-Key": key } : extra;
}

async function send(method, path, { json, form, query, text = false } = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const options = { method, headers: headers(), signal: AbortSignal.timeout(120000) };
  if (json !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(json);
  } else if (form) {
    const body = new FormData();
    for (const [name, value] of Object.entries(form)) {
      if (value !== undefined && value !== null && value !== "") body.append(name, value);
    }
    options.body = body;
  }
  let response;
  try {
    response = await fetch(url, options);
  } catch (error) {
    throw new ApiError(0, "network_error", String(error));
  }
  if (text && response.ok) return response.text();
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const error = body?.error || {};
    throw new ApiError(
      response.status,
      error.code || `http_${response.status}`,
      error.message || response.statusText,
      error.details || {},
    );
  }
  return body;
}

export const api = {
  ready: () => fetch("/ready", { signal: AbortSignal.timeout(10000) }).then((r) => r.json()),
  metrics: () => send("GET", "/metrics", { text: true }),
  models: () => send("GET", "/api/models"),
  collections: () => send("GET", `${FACES}/collections`),
  createCollection: (name, description) =>
    send("POST", `${FACES}/collections`, { json: { name, description } }),
  persons: (query) => send("GET", `${FACES}/persons`, { query }),
  renamePerson: (id, name) =>
    send("PATCH", `${FACES}/persons/${encodeURIComponent(id)}`, { json: { person_name: name } }),
  erasePerson: (id) => send("DELETE", `${FACES}/persons/${encodeURIComponent(id)}`),
  detect: (form) => send("POST", "/api/face-detection/detect-upload", { form }),
  addFace: (form) => send("POST", `${FACES}/add-face-upload`, { form }),
  recognizeAll: (form) => send("POST", `${FACES}/recognize-all-upload`, { form }),
  compare: (form) => send("POST", `${FACES}/compare-upload`, { form }),
  tagPhoto: (form) => send("POST", "/api/photos/upload", { form }),
  suggestions: (collection) => send("GET", "/api/photo-suggestions", { query: { collection } }),
  acceptSuggestion: (id, personName) =>
    send("POST", `/api/photo-suggestions/${encodeURIComponent(id)}/accept`, {
      json: { person_name: personName },
    }),
  dismissSuggestion: (id) =>
    send("POST", `/api/photo-suggestions/${encodeURIComponent(id)}/dismiss`),
};
