// HTTP to docqa's API: JSON errors become ApiError; a 401 asks the person for an API key and retries.
import { $ } from "./dom.js";

const KEY_STORAGE = "docqa.apiKey";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

function errorOf(status, statusText, bodyText) {
  try {
    const e = JSON.parse(bodyText).error;
    if (e && e.message) return new ApiError(status, e.code || "error", e.message);
  } catch (_) { /* not JSON: a proxy's or server's error page */ }
  return new ApiError(status, "http_error", `The server answered ${status} ${statusText}. Try again; ` +
    "if it keeps happening, the server log has the details.");
}

// ---- the API key --------------------------------------------------------------------------------

// Session storage: the key lives as long as the tab, and no other site or tab can read it.
export const storedKey = () => sessionStorage.getItem(KEY_STORAGE);

export function forgetKey() {
  sessionStorage.removeItem(KEY_STORAGE);
  updateKeyButton();
}

export function updateKeyButton() {
  $("forget-key").hidden = storedKey() === null;
}

let keyPrompt = null; // one prompt shared by every request that got 401 while it is open

async function needKey(usedKey, reason) {
  if (storedKey() !== usedKey) return; // another request already got a new key: retry with it
  if (usedKey !== null) sessionStorage.removeItem(KEY_STORAGE); // refused, so it is of no use
  keyPrompt = keyPrompt || askForKey(reason).finally(() => { keyPrompt = null; });
  return keyPrompt;
}

function askForKey(reason) {
  const dialog = $("key-dialog");
  $("key-reason").textContent = reason;
  $("api-key").value = "";
  return new Promise((resolve, reject) => {
    const done = (key) => {
      $("key-form").removeEventListener("submit", onSubmit);
      $("key-cancel").removeEventListener("click", onCancel);
      dialog.removeEventListener("cancel", onCancel);
      if (dialog.open) dialog.close();
      updateKeyButton();
      if (key) resolve();
      else reject(new ApiError(401, "unauthorized", reason));
    };
    const onSubmit = (event) => {
      event.preventDefault();
      const key = $("api-key").value.trim();
      if (!key) {
        $("api-key").focus();
        return;
      }
      sessionStorage.setItem(KEY_STORAGE, key);
      done(key);
    };
    const onCancel = (event) => {
      event.preventDefault();
      done(null);
    };
    $("key-form").addEventListener("submit", onSubmit);
    $("key-cancel").addEventListener("click", onCancel);
    dialog.addEventListener("cancel", onCancel); // Escape
    dialog.showModal();
    $("api-key").focus();
  });
}

function authHeaders(key, extra = {}) {
  return key === null ? extra : { ...extra, Authorization: `Bearer ${key}` };
}

// ---- requests -----------------------------------------------------------------------------------

// fetch with the stored key: asks for a key on 401 and retries; throws ApiError on any other error.
// Paths are relative ("v1/..."), so the page also works behind a proxy that mounts docqa under a prefix.
export async function request(method, path, { json, signal } = {}) {
  for (;;) {
    const key = storedKey();
    const headers = authHeaders(key, json === undefined ? {} : { "Content-Type": "application/json" });
    let response;
    try {
      response = await fetch(path, { method, headers, signal, cache: "no-store",
        body: json === undefined ? undefined : JSON.stringify(json) });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError(0, "network", "Could not reach the docqa server. Check that it is running and try again.");
    }
    if (response.ok) return response;
    const error = errorOf(response.status, response.statusText, await response.text());
    if (response.status !== 401) throw error;
    await needKey(key, error.message);
  }
}

export const getJson = async (path) => (await request("GET", path)).json();

// A multipart upload; XMLHttpRequest rather than fetch because only it reports upload progress.
export async function upload(path, form, onProgress) {
  for (;;) {
    const key = storedKey();
    const { status, statusText, text } = await new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", path);
      for (const [name, value] of Object.entries(authHeaders(key))) xhr.setRequestHeader(name, value);
      xhr.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) onProgress(e.loaded / e.total);
      });
      xhr.addEventListener("load", () => resolve({ status: xhr.status, statusText: xhr.statusText, text: xhr.responseText }));
      xhr.addEventListener("error", () => reject(new ApiError(0, "network",
        "The upload did not reach the server: the connection was lost, or the files are larger than it accepts.")));
      xhr.send(form);
    });
    if (status >= 200 && status < 300) return JSON.parse(text);
    const error = errorOf(status, statusText, text);
    if (status !== 401) throw error;
    await needKey(key, error.message);
  }
}
