// docqa's web page: collections, uploads and their jobs, documents; asking lives in answer.js.
// Plain DOM code, no framework, no build step. Server text only ever goes into text nodes.
import { setupAsking } from "./answer.js";
import { ApiError, forgetKey, getJson, request, updateKeyButton, upload } from "./api.js";
import { $, el, enc, plural, showError, when } from "./dom.js";

const COLLECTION_STORAGE = "docqa.collection";
const NAME_RULE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const POLL_MS = 500;
const FINISHED = new Set(["done", "failed"]);
const MAX_JOBS_SHOWN = 20;

const state = {
  collection: null,     // the selected collection's name
  collections: [],      // collection objects from GET v1/collections
  documents: new Map(), // id -> document object of the selected collection
  polls: new Set(),     // ids of the jobs being polled
};

// ---- collections ----------------------------------------------------------------------------

async function loadCollections(select) {
  showError("collection", null);
  try {
    state.collections = (await getJson("v1/collections")).collections;
  } catch (err) {
    $("collection-info").textContent = "The collections could not be loaded.";
    showError("collection", err);
    return;
  }
  const names = state.collections.map((c) => c.name);
  const wanted = select || state.collection || localStorage.getItem(COLLECTION_STORAGE);
  const chosen = names.includes(wanted) ? wanted : (names[0] || wanted || "default");
  const options = names.includes(chosen) ? names : [...names, chosen];
  $("collection").replaceChildren(...options.map((name) => el("option", {
    value: name, text: names.includes(name) ? name : `${name} (new)` })));
  $("collection").value = chosen;
  await selectCollection(chosen);
}

async function selectCollection(name) {
  const changed = name !== state.collection;
  state.collection = name;
  localStorage.setItem(COLLECTION_STORAGE, name);
  showCollectionInfo();
  if (changed) $("jobs").replaceChildren();
  await Promise.all([loadDocuments(), loadJobs()]);
}

function showCollectionInfo() {
  const c = state.collections.find((x) => x.name === state.collection);
  $("delete-collection").hidden = !c;
  if (!c) {
    $("collection-info").textContent = `Collection “${state.collection}” does not exist yet: uploading files creates it.`;
    return;
  }
  const embedder = c.embedder ? ` · embedder ${c.embedder.name} (${c.embedder.dim} dimensions)` : "";
  $("collection-info").textContent = `${plural(c.documents, "document")} · ${plural(c.chunks, "chunk")}` +
    `${embedder} · updated ${when(c.updated_at)}`;
}

async function refreshCollection() {
  try {
    const c = await getJson(`v1/collections/${enc(state.collection)}`);
    const i = state.collections.findIndex((x) => x.name === c.name);
    if (i >= 0) state.collections[i] = c; else await loadCollections(c.name);
    showCollectionInfo();
  } catch (err) {
    if (err.status !== 404) showError("collection", err);
  }
}

async function createCollection(event) {
  event.preventDefault();
  showError("collection", null);
  const input = $("new-collection-name");
  const name = input.value.trim();
  if (!NAME_RULE.test(name)) {
    showError("collection", new ApiError(400, "invalid_collection_name", `“${name}” is not a valid collection name: ` +
      "use 1–64 letters, digits, dots, dashes or underscores, starting with a letter or digit."));
    input.focus();
    return;
  }
  try {
    await request("POST", "v1/collections", { json: { name } });
  } catch (err) {
    if (err.code !== "collection_exists") { showError("collection", err); return; }
  }
  input.value = "";
  await loadCollections(name);
  $("collection").focus();
}

async function deleteCollection() {
  const name = state.collection;
  if (!window.confirm(`Delete the collection “${name}” with all its documents? This cannot be undone.`)) return;
  showError("collection", null);
  try {
    await request("DELETE", `v1/collections/${enc(name)}`);
    state.collection = null;
    localStorage.removeItem(COLLECTION_STORAGE);
    await loadCollections();
  } catch (err) {
    showError("collection", err);
  }
}

// ---- uploads and jobs -----------------------------------------------------------------------

async function uploadFiles(event) {
  event.preventDefault();
  showError("upload", null);
  const files = [...$("files").files];
  if (!files.length) {
    showError("upload", new ApiError(400, "no_files", "Choose one or more files to upload first."));
    $("files").focus();
    return;
  }
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  const bar = $("upload-progress");
  bar.value = 0;
  bar.hidden = false;
  $("upload-button").disabled = true;
  const collection = state.collection;
  try {
    const { job } = await upload(`v1/collections/${enc(collection)}/documents`, form, (f) => { bar.value = f; });
    $("files").value = "";
    if (!state.collections.some((c) => c.name === collection)) await loadCollections(collection);
    showJob(job, true);
    pollJob(job.id);
  } catch (err) {
    showError("upload", err);
  } finally {
    bar.hidden = true;
    $("upload-button").disabled = false;
  }
}

async function loadJobs() {
  const collection = state.collection;
  try {
    const { jobs } = await getJson(`v1/jobs?collection=${enc(collection)}`);
    if (collection !== state.collection) return;
    for (const job of jobs.slice(0, 10).reverse()) {
      showJob(job, true);
      if (!FINISHED.has(job.status)) pollJob(job.id);
    }
  } catch (err) {
    if (err.status !== 404) showError("upload", err);
  }
  $("jobs-empty").hidden = $("jobs").children.length > 0;
}

async function pollJob(id) {
  if (state.polls.has(id)) return;
  state.polls.add(id);
  let failures = 0;
  try {
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS * Math.min(2 ** failures, 16)));
      let job;
      try {
        job = await getJson(`v1/jobs/${enc(id)}`);
        failures = 0;
      } catch (err) {
        if (err.status === 404 || err.status === 401) throw err;
        failures += 1; // a restarting server or a dropped connection: keep polling, slower
        continue;
      }
      showJob(job, false);
      if (FINISHED.has(job.status)) {
        if (job.collection === state.collection) await Promise.all([loadDocuments(), refreshCollection()]);
        return;
      }
    }
  } catch (err) {
    showError("upload", err);
  } finally {
    state.polls.delete(id);
  }
}

function jobSummary(job) {
  const p = job.progress || {};
  const counts = `${plural(p.pages || 0, "page")}, ${plural(p.chunks || 0, "chunk")}`;
  if (job.status === "queued") return "Queued";
  if (job.status === "running") return `Running: file ${Math.min((p.files_done || 0) + 1, p.files_total || 1)} of ${p.files_total || job.files.length}, ${counts} so far`;
  if (job.status === "failed") return `Failed: ${job.error ? job.error.message : "the job could not run."}`;
  const r = job.report;
  if (!r) return `Done: ${counts}`;
  const parts = ["added", "updated", "unchanged", "skipped", "failed"].filter((k) => r[k]).map((k) => `${r[k]} ${k}`);
  return `Done: ${parts.join(", ") || "nothing to do"}; ${plural(r.pages || 0, "page")}, ${plural(r.chunks || 0, "chunk")}`;
}

function fileLine(f) {
  const detail = f.status === "skipped" || f.status === "failed" ? f.reason
    : `${plural(f.pages, "page")}, ${plural(f.chunks, "chunk")}`;
  const extra = [];
  if (f.empty_pages && f.empty_pages.length) extra.push(`no text on page${f.empty_pages.length === 1 ? "" : "s"} ${f.empty_pages.join(", ")}`);
  for (const w of f.warnings || []) extra.push(w);
  return el("li", { class: `file file-${f.status}`, "data-status": f.status }, [
    el("span", { class: "file-name", text: f.name }),
    el("span", { class: "badge", text: f.status }),
    el("span", { class: "file-detail", text: [detail, ...extra].filter(Boolean).join("; ") }),
  ]);
}

function showJob(job, prepend) {
  if (job.collection !== state.collection) return;
  const p = job.progress || {};
  const node = el("li", { id: `job-${job.id}`, class: `job job-${job.status}`, "data-status": job.status }, [
    el("p", { class: "job-head" }, [
      el("span", { class: "badge", text: job.status }),
      el("span", { class: "job-files", text: job.files.join(", ") }),
    ]),
    el("p", { class: "job-summary", text: jobSummary(job) }),
  ]);
  if (!FINISHED.has(job.status)) {
    node.append(el("progress", { max: String(p.files_total || job.files.length || 1), value: String(p.files_done || 0),
      "aria-label": `Files done for ${job.files.join(", ")}` }));
  }
  if (job.report && job.report.file_reports) node.append(el("ul", { class: "files" }, job.report.file_reports.map(fileLine)));
  if (job.created_at) node.append(el("p", { class: "muted small", text: `Uploaded ${when(job.created_at)}` }));
  const old = $(`job-${job.id}`);
  // Screen readers hear when a job changes state, not every progress tick.
  if (old && old.dataset.status !== job.status) $("announce").textContent = `${job.files.join(", ")}: ${jobSummary(job)}`;
  if (old) old.replaceWith(node);
  else if (prepend) $("jobs").prepend(node);
  else $("jobs").append(node);
  while ($("jobs").children.length > MAX_JOBS_SHOWN) $("jobs").lastElementChild.remove();
  $("jobs-empty").hidden = true;
}

// ---- documents ------------------------------------------------------------------------------

async function loadDocuments() {
  const collection = state.collection;
  showError("documents", null);
  let documents = [];
  try {
    if (state.collections.some((c) => c.name === collection)) {
      documents = (await getJson(`v1/collections/${enc(collection)}/documents`)).documents;
    }
  } catch (err) {
    if (err.code !== "collection_not_found") showError("documents", err);
  }
  if (collection !== state.collection) return;
  state.documents = new Map(documents.map((d) => [d.id, d]));
  $("documents").replaceChildren(...documents.map((d) => el("li", { class: "document", "data-id": String(d.id) }, [
    el("span", { class: "doc-name", text: d.name }),
    el("span", { class: "muted small", text: `${plural(d.pages, "page")} · ${plural(d.chunks, "chunk")} · added ${when(d.ingested_at)}` }),
    el("button", { type: "button", class: "danger small", text: "Delete", "aria-label": `Delete ${d.name}`,
      onclick: () => deleteDocument(d) }),
  ])));
  $("documents-empty").hidden = documents.length > 0;
}

async function deleteDocument(doc) {
  if (!window.confirm(`Delete “${doc.name}” from ${state.collection}? Answers will no longer cite it.`)) return;
  showError("documents", null);
  try {
    await request("DELETE", `v1/collections/${enc(state.collection)}/documents/${enc(doc.id)}`);
  } catch (err) {
    showError("documents", err);
  }
  await Promise.all([loadDocuments(), refreshCollection()]);
}

// ---- wiring -------------------------------------------------------------------------------------

function start() {
  updateKeyButton();
  $("collection").addEventListener("change", (e) => selectCollection(e.target.value));
  $("refresh").addEventListener("click", () => loadCollections());
  $("new-collection").addEventListener("submit", createCollection);
  $("delete-collection").addEventListener("click", deleteCollection);
  $("upload").addEventListener("submit", uploadFiles);
  $("forget-key").addEventListener("click", forgetKey);
  setupAsking({ collection: () => state.collection, document: (id) => state.documents.get(id) });
  loadCollections();
}

start(); // a module script runs after the document is parsed
