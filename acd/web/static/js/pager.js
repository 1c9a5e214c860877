// Pages of a long list: "Newer" and "Older" (or "Previous" and "Next") under a table, and
// which rows are shown. The server's lists take limit and offset; one row more than a page
// is asked for, so that "Older" is offered only when there is more. Lists the page already
// holds (agents, groups, users) are cut into pages here.

import { clear, h } from "/static/js/common.js";

export const PAGE = 25;

// A pager for a list the server pages: fetchPage(offset, limit) -> rows; show(rows) draws
// them; bar: the element the buttons go in. Returns { reload(), first() }.
export function serverPager(bar, fetchPage, show, { size = PAGE, newer = "Newer", older = "Older" } = {}) {
  let offset = 0;
  async function load() {
    const rows = await fetchPage(offset, size + 1);
    if (rows === null) return;                  // refused: the caller said why
    const more = rows.length > size;
    show(rows.slice(0, size));
    draw(bar, offset, Math.min(rows.length, size), more, () => { offset = Math.max(0, offset - size); load(); },
      () => { offset += size; load(); }, newer, older);
  }
  return { reload: load, first: () => { offset = 0; return load(); } };
}

// A pager over rows already here: show(rows) draws one page of them.
export function localPager(bar, show, { size = 50 } = {}) {
  let all = [], offset = 0;
  function load() {
    if (offset >= all.length) offset = Math.max(0, Math.floor((all.length - 1) / size) * size);
    show(all.slice(offset, offset + size));
    draw(bar, offset, Math.min(size, all.length - offset), offset + size < all.length,
      () => { offset = Math.max(0, offset - size); load(); }, () => { offset += size; load(); },
      "Previous", "Next", all.length);
  }
  return { set(rows) { all = rows; load(); } };
}

function draw(bar, offset, shown, more, back, forward, backText, forwardText, total) {
  clear(bar);
  if (!offset && !more) { bar.hidden = true; return; }
  bar.hidden = false;
  bar.append(
    h("button", { type: "button", class: "page-back", disabled: offset === 0, on: { click: back } }, backText),
    h("span", { class: "page-rows muted" }, shown ? (offset + 1) + "–" + (offset + shown) +
      (total !== undefined ? " of " + total : "") : "none"),
    h("button", { type: "button", class: "page-forward", disabled: !more, on: { click: forward } }, forwardText));
}
