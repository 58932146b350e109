// DOM helpers shared by the page's modules. Server text only ever goes into text nodes.

export const $ = (id) => document.getElementById(id);

// An element with attributes, `text` (its textContent), `class`, `on<event>` listeners and children.
export function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// Shows an error in the `<where>-error` box of a section; `null` hides it.
export function showError(where, err) {
  const box = $(`${where}-error`);
  if (!err) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  // API errors carry the server's message (it names the fix); anything else is a bug in the page.
  box.textContent = err.name === "ApiError" ? err.message
    : `Something went wrong in the page: ${err.message}. Reload the page and try again.`;
  box.hidden = false;
}

export const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
export const pages = (c) => (c.page_start === c.page_end ? `p. ${c.page_start}` : `pp. ${c.page_start}–${c.page_end}`);
export const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
export const enc = encodeURIComponent;
