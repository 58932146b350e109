// Asking: the streamed answer with [n] markers, its sources, and the cited page with the quote highlighted.
import { ApiError, getJson, request } from "./api.js";
import { $, el, enc, pages, showError } from "./dom.js";

let context = null; // {collection(): name, document(id): document object or undefined}
let asking = null;  // AbortController of the question in flight
let shown = null;   // {citation, collection, opener, page} in the page panel
// Earlier turns in this collection, sent as `history` so that follow-ups ("and the second one?") work.
let conversation = { collection: null, turns: [] };
const MAX_TURNS = 20;  // the last 10 questions and answers

export function setupAsking(ctx) {
  context = ctx;
  $("ask").addEventListener("submit", ask);
  $("stop").addEventListener("click", () => asking && asking.abort());
  $("question").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("ask").requestSubmit();
  });
  $("page-close").addEventListener("click", () => $("page-panel").close());
  $("page-panel").addEventListener("close", () => shown && shown.opener && shown.opener.focus());
  $("page-prev").addEventListener("click", () => showPage(shown.page - 1, true));
  $("page-next").addEventListener("click", () => showPage(shown.page + 1, true));
  $("new-conversation").addEventListener("click", () => {
    newConversation(context.collection());
    $("question").focus();
  });
}

function newConversation(collection) {
  conversation = { collection, turns: [] };
  showConversation();
}

function showConversation() {
  const asked = conversation.turns.length / 2;
  $("conversation").hidden = asked === 0;
  $("turns").textContent = asked === 1 ? "1 earlier question" : `${asked} earlier questions`;
}

async function ask(event) {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question) {
    $("question").focus();
    return;
  }
  if (asking) asking.abort();
  if (conversation.collection !== context.collection()) newConversation(context.collection());
  const history = conversation.turns.slice(-MAX_TURNS);
  const controller = new AbortController();
  asking = controller;
  showError("ask", null);
  $("result").hidden = false;
  $("not-answered").hidden = true;
  $("citations-heading").hidden = true;
  $("citations").replaceChildren();
  $("answer").textContent = "Searching the documents…";
  $("answer").setAttribute("aria-busy", "true");
  $("stop").hidden = false;
  try {
    const response = await request("POST", "v1/ask", { signal: controller.signal,
      json: { question, collection: context.collection(), history, stream: true } });
    const streamed = (response.headers.get("Content-Type") || "").startsWith("text/event-stream");
    const body = streamed ? await readStream(response) : await response.json();
    showAnswer(body);
    if (conversation.collection === body.collection) {
      conversation.turns.push({ role: "user", content: question }, { role: "assistant", content: body.answer });
      showConversation();
    }
  } catch (err) {
    if (err.name === "AbortError") {
      if (asking === controller) $("answer").append(el("p", { class: "muted", text: "(stopped)" }));
    } else {
      $("result").hidden = true;
      showError("ask", err);
    }
  } finally {
    if (asking === controller) {
      asking = null;
      $("stop").hidden = true;
      $("answer").setAttribute("aria-busy", "false");
    }
  }
}

// Server-sent events: `event: delta` pieces of text, then one `event: done` (or `event: error`).
async function readStream(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
      let kind = "message";
      const data = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith("event:")) kind = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (!data.length) continue;
      const payload = JSON.parse(data.join("\n"));
      if (kind === "delta") {
        text += payload.text;
        $("answer").textContent = text;
      } else if (kind === "done") {
        return payload;
      } else if (kind === "error") {
        const e = payload.error || {};
        throw new ApiError(500, e.code || "error", e.message || "The answer failed part way; ask again.");
      }
    }
  }
  throw new ApiError(0, "stream_ended", "The answer stopped before it was complete (the connection was lost). Ask again.");
}

function showAnswer(body) {
  const citations = new Map(body.citations.map((c) => [c.n, c]));
  $("not-answered").hidden = body.answered !== false;
  const paragraphs = body.answer.split(/\n{2,}/).map((para) => {
    const p = el("p");
    // split with a capture group: even items are text, odd items the numbers inside [n]
    for (const [i, part] of para.split(/\[(\d{1,3})\]/).entries()) {
      const c = i % 2 === 1 ? citations.get(Number(part)) : null;
      if (i % 2 === 0) p.append(part);
      else if (!c) p.append(`[${part}]`);
      else {
        p.append(el("a", { href: `#cite-${c.n}`, class: "cite-ref", text: `[${c.n}]`,
          "aria-label": `Source ${c.n}: ${c.document}, ${pages(c)}`,
          onclick: (e) => {
            e.preventDefault();
            focusCitation(c.n);
          } }));
      }
    }
    return p;
  });
  $("answer").replaceChildren(...paragraphs);
  $("citations-heading").textContent = body.answered === false ? "Closest sources" : "Sources";
  $("citations-heading").hidden = body.citations.length === 0;
  $("citations").replaceChildren(...body.citations.map((c) => el("li", { id: `cite-${c.n}`, class: "citation", value: String(c.n) }, [
    el("button", { type: "button", class: "open-page link", text: `${c.document}, ${pages(c)}`,
      "aria-label": `Open ${c.document}, ${pages(c)}`, disabled: c.document_id == null,
      title: c.document_id == null ? "This source cannot be opened: upload the document again." : null,
      onclick: (e) => openCitation(c, e.currentTarget) }),
    el("blockquote", { class: "quote", text: c.quote }),
  ])));
}

function focusCitation(n) {
  const item = $(`cite-${n}`);
  item.scrollIntoView({ block: "nearest", behavior: "smooth" });
  item.querySelector("button").focus();
}

// ---- the cited page -----------------------------------------------------------------------------

const escapeRegExp = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
// The quote as a pattern that accepts any run of whitespace where the quote has one.
const loosePattern = (s) => s.trim().split(/\s+/).map(escapeRegExp).join("\\s+");

// [start, end) ranges of `text` to highlight: the whole quote, else each of its sentences found
// (a quote can run across a page break, and only its part on this page is there).
export function quoteRanges(text, quote) {
  const whole = new RegExp(loosePattern(quote)).exec(text);
  if (whole) return [[whole.index, whole.index + whole[0].length]];
  const ranges = [];
  for (const sentence of quote.split(/(?<=[.!?。！？])\s+/)) {
    if (sentence.trim().length < 12) continue;
    const m = new RegExp(loosePattern(sentence)).exec(text);
    if (m) ranges.push([m.index, m.index + m[0].length]);
  }
  return ranges.sort((a, b) => a[0] - b[0]);
}

async function openCitation(c, opener) {
  shown = { citation: c, collection: context.collection(), opener, page: c.page_start };
  $("page-document").textContent = c.document;
  $("page-number").textContent = pages(c);
  $("page-quote").textContent = c.quote;
  $("page-quote").hidden = true;
  $("page-note").hidden = true;
  $("page-text").replaceChildren();
  if (!$("page-panel").open) $("page-panel").showModal();
  $("page-close").focus();
  // The quote is on one of the cited pages, usually the first: show the first page that has it.
  for (let n = c.page_start; n <= Math.min(c.page_end, c.page_start + 20); n += 1) {
    if ((await showPage(n, n === c.page_start)) !== null) return;
  }
}

// Shows page n when `render` or when the quote is on it. Returns true when the quote was found on
// it, null when not (or the page has no text), false when the page could not be fetched.
async function showPage(n, render) {
  const c = shown.citation;
  const opened = shown;
  showError("page", null);
  let page = null;
  try {
    page = await getJson(`v1/collections/${enc(shown.collection)}/documents/${enc(c.document_id)}/pages/${n}`);
  } catch (err) {
    if (err.status !== 404) {
      showError("page", err);
      return false;
    }
  }
  if (shown !== opened) return false; // another citation was opened meanwhile
  const ranges = page ? quoteRanges(page.text, c.quote) : [];
  if (!render && !ranges.length) return null;
  shown.page = n;
  $("page-number").textContent = `page ${n}`;
  const doc = context.document(c.document_id);
  $("page-prev").disabled = n <= 1;
  $("page-next").disabled = Boolean(doc) && n >= doc.pages;
  $("page-nav").hidden = Boolean(doc) && doc.pages <= 1;
  const note = $("page-note");
  note.hidden = true;
  $("page-quote").hidden = true;
  if (!page) {
    note.textContent = `Page ${n} has no text (a scanned image, or an empty page).`;
    note.hidden = false;
    $("page-text").replaceChildren();
    return null;
  }
  const nodes = [];
  let at = 0;
  for (const [start, end] of ranges) {
    if (start < at) continue;
    nodes.push(page.text.slice(at, start), el("mark", { text: page.text.slice(start, end) }));
    at = end;
  }
  nodes.push(page.text.slice(at));
  $("page-text").replaceChildren(...nodes);
  const mark = $("page-text").querySelector("mark");
  if (mark) mark.scrollIntoView({ block: "center" });
  else if (n >= c.page_start && n <= c.page_end) {
    note.textContent = "The quoted passage (below) is not on this page word for word; it may continue on the next page.";
    note.hidden = false;
    $("page-quote").hidden = false;
  }
  return ranges.length ? true : null;
}
