// The history reports page: the figures per interval of a skill group, an agent or a dialled
// number (GET /api/reports/history), a chart of the keys shown summed per interval (inline SVG
// made with DOM calls), the intervals and the totals as tables, the definitions as the
// headers' tooltips, and the same report as CSV and XLSX. Text is only ever set as text: a
// dialled number, an agent's break reason, everything the server sends is set with textContent.
import { api, clear, fmtDuration, fmtPercent, h, loadSession, session, setText } from "/static/js/common.js";

const SVG = "http://www.w3.org/2000/svg";
const MAX_ROWS = 2000;               // rows drawn in the table; the downloads have them all
const NOUN = { group: "skill group", agent: "agent", number: "dialled number" };
const $ = (id) => document.getElementById(id);
const R = { seq: 0, runs: 0, keys: new Map(), report: null };

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const two = (n) => String(n).padStart(2, "0");
const isoDay = (d) => d.getFullYear() + "-" + two(d.getMonth() + 1) + "-" + two(d.getDate());
function daysFromToday(n) { const d = new Date(); d.setDate(d.getDate() + n); return isoDay(d); }

// --- the form ---------------------------------------------------------------------------------

const form = () => $("report-form");
const control = (name) => form().querySelector(`select[name="${name}"], input[name="${name}"]:not([disabled])`);

// The query of the form: only what is filled in (an empty key: all; no time zone: the server's).
function query() {
  const p = new URLSearchParams();
  for (const [k, v] of new FormData(form())) {
    const s = String(v).trim();
    if (s) p.set(k, s);
  }
  return p;
}

// The choices of "which": the skill groups (admins: the configured ones; supervisors: the
// live queues) or the agents; dialled numbers are typed (comma-separated).
async function keyOptions(dimension) {
  if (R.keys.has(dimension)) return R.keys.get(dimension);
  let r, list = [];
  if (dimension === "group" && session.user.role === "admin") {
    r = await api("GET", "/api/admin/groups");
    list = ((r.ok && r.data.groups) || []).map((g) => [g.name, g.name]);
  } else if (dimension === "group") {
    r = await api("GET", "/api/queues");
    list = Object.keys((r.ok && r.data.queues) || {}).map((n) => [n, n]);
  } else if (dimension === "agent") {
    r = await api("GET", "/api/agents");
    list = Object.entries((r.ok && r.data.agents) || {}).map(([id, a]) =>
      [id, a.name && a.name !== id ? a.name + " (" + id + ")" : id]);
  }
  list.sort((a, b) => a[1].localeCompare(b[1], undefined, { numeric: true }));
  if (!r || r.ok) R.keys.set(dimension, list);
  return list;
}

async function showDimension(dimension, key) {
  const typed = dimension === "number";
  const pick = $("key-pick").querySelector("select"), text = $("key-text").querySelector("input");
  $("key-pick").hidden = typed; pick.disabled = typed;
  $("key-text").hidden = !typed; text.disabled = !typed;
  if (typed) { text.value = key || ""; return; }
  clear(pick).append(h("option", { value: "" }, "all"));       // never the other list's key
  const list = await keyOptions(dimension);
  if (control("dimension").value !== dimension) return;          // changed again meanwhile
  clear(pick).append(h("option", { value: "" }, "all"),
    ...list.map(([value, label]) => h("option", { value }, label)));
  if (key && !list.some(([value]) => value === key)) pick.append(h("option", { value: key }, key));
  pick.value = key || "";
}

function fillForm(p) {
  control("since").value = p.get("since") || daysFromToday(-6);     // the last 7 days
  control("until").value = p.get("until") || daysFromToday(1);      // (until is not included)
  for (const name of ["by", "dimension"]) {
    const v = p.get(name), el = control(name);
    if (v && [...el.options].some((o) => o.value === v)) el.value = v;
  }
  control("tz").value = p.get("tz") || "";
  control("short_abandon").value = p.get("short_abandon") || "";
  return showDimension(control("dimension").value, p.get("key") || "");
}

// --- running a report -------------------------------------------------------------------------

function setMsg(text, ok) {
  const el = $("report-msg");
  el.className = "msg" + (ok === undefined ? "" : ok ? " ok" : " error");
  el.textContent = text;
}

async function run(ev) {
  if (ev) ev.preventDefault();
  const qs = query().toString();
  const seq = ++R.seq;
  document.body.dataset.report = "loading";
  setMsg("Running…");
  const r = await api("GET", "/api/reports/history?" + qs);
  if (seq !== R.seq) return;                       // a newer run has started
  history.replaceState(null, "", "/reports?" + qs);
  R.runs += 1;
  document.body.dataset.runs = String(R.runs);
  if (!r.ok) {
    R.report = null;
    for (const id of ["downloads", "chart-panel", "rows-panel", "totals-panel"]) $(id).hidden = true;
    setMsg((r.data.message || "The report failed (HTTP " + r.status + ").") +
      (r.data.error ? " [" + r.data.error + "]" : ""), false);
    document.body.dataset.report = "error";
    return;
  }
  setMsg("");
  R.report = r.data;
  render(r.data, qs);
  document.body.dataset.report = "ready";
}

function bound(iso) {           // a date, or a date and time when it is not midnight
  if (!iso) return "";
  return iso.slice(11, 19) === "00:00:00" ? iso.slice(0, 10) : iso.slice(0, 16).replace("T", " ");
}

function render(rep, qs) {
  const by = { "15m": "15 minutes", "30m": "30 minutes", "60m": "hour" }[rep.by] || rep.by;
  setText("report-what", "Per " + NOUN[rep.dimension] + " by " + by + ", " + bound(rep.since) +
    " until " + bound(rep.until) + " (not included), time zone " + rep.timezone +
    (rep.short_abandon ? ", short abandon " + rep.short_abandon + " s" : "") +
    (rep.complete === false ? ". Older calls are still being added to the reports: run it again in a minute." : ""));
  $("csv-link").href = "/api/reports/history.csv?" + qs;
  $("xlsx-link").href = "/api/reports/history.xlsx?" + qs;
  $("downloads").hidden = false;
  renderRows(rep);
  renderTotals(rep);
  renderChart(rep);
}

// --- the tables -------------------------------------------------------------------------------

const NUMERIC = new Set(["count", "seconds", "ratio"]);

// An interval's start as the report's local time (the API gives it with its offset).
function fmtInterval(iso, by) {
  if (!iso) return "";
  if (by === "month") return iso.slice(0, 7);
  if (by === "day" || by === "week") return iso.slice(0, 10);
  return iso.slice(0, 10) + " " + iso.slice(11, 16);
}

function fmtCell(kind, v, by) {
  if (kind === "time") return fmtInterval(v, by);
  if (kind === "seconds") return fmtDuration(v);
  if (kind === "ratio") return fmtPercent(v);
  if (v === null || v === undefined) return kind === "count" ? "–" : "";
  return String(v);
}

function headRow(cols, defs) {
  return h("tr", {}, cols.map((c) => h("th", {
    class: NUMERIC.has(c.kind) ? "num" : null, title: defs[c.key] || null, scope: "col",
    dataset: { f: c.key } }, c.label)));
}

function cell(col, row, by) {
  const attrs = { class: NUMERIC.has(col.kind) ? "num" : col.kind === "text" ? "caller-text" : null,
    dataset: { f: col.key } };
  if (col.kind === "time") attrs.title = row[col.key];          // with its UTC offset
  return h("td", attrs, fmtCell(col.kind, row[col.key], by));
}

function renderRows(rep) {
  const table = $("rows");
  clear(table.tHead).append(headRow(rep.columns, rep.definitions || {}));
  const body = clear(table.tBodies[0]);
  for (const row of rep.rows.slice(0, MAX_ROWS)) {
    body.append(h("tr", { dataset: { key: row.key, interval: row.interval } },
      rep.columns.map((c) => cell(c, row, rep.by))));
  }
  setText("rows-note", rep.rows.length > MAX_ROWS
    ? "The first " + MAX_ROWS + " of " + rep.rows.length + " rows; the CSV and the XLSX have them all."
    : rep.rows.length ? "" : "No intervals.");
  $("rows-panel").hidden = false;
}

function timeText(map) {
  return Object.entries(map || {}).sort((a, b) => b[1] - a[1])
    .map(([name, secs]) => name + " " + fmtDuration(secs)).join(", ");
}

function renderTotals(rep) {
  const totals = rep.totals || [];
  // the columns the totals have (the staffing figures are per interval only)
  const cols = rep.columns.filter((c) => c.kind !== "time" && (c.key === "key" || totals.some((t) => c.key in t)));
  const extra = rep.dimension === "agent"
    ? [{ key: "states", label: "Time in states" }, { key: "break_reasons", label: "Break reasons" }] : [];
  const table = $("totals");
  const head = headRow(cols, rep.definitions || {});
  head.append(...extra.map((c) => h("th", { scope: "col", dataset: { f: c.key } }, c.label)));
  clear(table.tHead).append(head);
  const body = clear(table.tBodies[0]);
  for (const t of totals) {
    body.append(h("tr", { dataset: { key: t.key } }, cols.map((c) => cell(c, t, rep.by)),
      extra.map((c) => h("td", { class: "caller-text", dataset: { f: c.key } }, timeText(t[c.key])))));
  }
  $("totals-panel").hidden = false;
}

// --- the chart: the keys shown, summed per interval ------------------------------------------

function perInterval(rows) {
  const out = new Map();
  for (const r of rows) {
    let s = out.get(r.start);
    if (!s) { s = { start: r.start, interval: r.interval, n: {}, states: {} }; out.set(r.start, s); }
    for (const [k, v] of Object.entries(r)) if (typeof v === "number") s.n[k] = (s.n[k] || 0) + v;
    for (const [k, v] of Object.entries(r.states || {})) s.states[k] = (s.states[k] || 0) + v;
  }
  return [...out.values()].sort((a, b) => a.start - b.start);
}

const ratio = (a, b) => (b > 0 ? a / b : null);

// What is drawn: two bars and a line (a share, 0-100 %) per interval.
function series(rep) {
  if (rep.dimension === "agent") {
    return { bars: [["handled", "calls handled", (s) => s.n.calls_handled || 0]],
      line: ["occupancy", "occupancy", (s) => ratio((s.states.talking || 0) + (s.states.wrapup || 0),
        ["idle", "ringing", "talking", "wrapup"].reduce((a, k) => a + (s.states[k] || 0), 0))] };
  }
  return { bars: [["offered", "offered", (s) => s.n.offered || 0], ["answered", "answered", (s) => s.n.answered || 0]],
    line: ["sl", "service level", (s) => ratio(s.n.answered_within_sl || 0, (s.n.offered || 0) - (s.n.short_abandoned || 0))] };
}

function niceMax(v) {
  if (v <= 1) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function axisLabel(iso, by, oneDay) {
  if (by === "month") return iso.slice(0, 7);
  if (by === "day" || by === "week") return iso.slice(5, 10);
  return oneDay ? iso.slice(11, 16) : iso.slice(5, 10) + " " + iso.slice(11, 16);
}

function renderChart(rep) {
  const slots = perInterval(rep.rows);
  const { bars, line } = series(rep);
  const keys = [...new Set(rep.rows.map((r) => r.key))];
  setText("chart-title", (keys.length === 1 ? NOUN[rep.dimension] + " " + keys[0]
    : keys.length ? "all " + keys.length + " " + NOUN[rep.dimension] + "s shown, summed" : "no " + NOUN[rep.dimension]) + " per interval");
  clear($("chart-legend")).append(...bars.map(([cls, label]) => h("span", {}, h("i", { class: "lg-" + cls }), label)),
    h("span", {}, h("i", { class: "lg-sl" }), line[1] + " (right axis)"));
  $("chart-panel").hidden = false;
  drawChart(slots, bars, line, rep.by);
}

function drawChart(slots, bars, line, by) {
  const box = clear($("chart"));
  const W = Math.max(300, box.clientWidth || 900), H = 240;
  const left = 40, right = 44, top = 12, bottom = 30;
  const pw = W - left - right, ph = H - top - bottom;
  const n = Math.max(slots.length, 1), bw = pw / n;
  const max = niceMax(Math.max(0, ...slots.flatMap((s) => bars.map(([, , f]) => f(s)))));
  const y = (v) => top + ph - (v / max) * ph;
  const yr = (v) => top + ph - v * ph;
  const chart = svg("svg", { class: "report-chart", width: W, height: H, viewBox: `0 0 ${W} ${H}`,
    role: "img", "aria-label": bars.map((b) => b[1]).join(", ") + " and " + line[1] + " per interval" });
  for (const f of [0, 0.5, 1]) {
    chart.append(svg("line", { class: "grid", x1: left, x2: W - right, y1: yr(f), y2: yr(f) }),
      svg("text", { x: left - 4, y: yr(f) + 4, "text-anchor": "end" }, String(Math.round(max * f * 10) / 10)),
      svg("text", { x: W - right + 4, y: yr(f) + 4 }, Math.round(f * 100) + " %"));
  }
  const oneDay = slots.length > 0 && slots[0].interval.slice(0, 10) === slots[slots.length - 1].interval.slice(0, 10);
  const every = Math.max(1, Math.ceil(n / Math.max(2, Math.floor(pw / 70))));
  const gap = bw > 6 ? bw * 0.15 : 0, barW = Math.max((bw - 2 * gap) / bars.length, 0.5);
  const points = [];
  slots.forEach((s, i) => {
    const x = left + i * bw;
    const share = line[2](s);
    const g = svg("g", { class: "slot" }, svg("title", {}, fmtInterval(s.interval, by) + ": " +
      bars.map(([, label, f]) => label + " " + f(s)).join(", ") + ", " + line[1] + " " + fmtPercent(share)));
    g.append(svg("rect", { class: "hover", x, y: top, width: Math.max(bw, 0.5), height: ph }));
    bars.forEach(([cls, , f], j) => {
      const v = f(s);
      if (v > 0) g.append(svg("rect", { class: cls, x: x + gap + j * barW, y: y(v), width: barW, height: top + ph - y(v) }));
    });
    chart.append(g);
    points.push(share === null ? null : [x + bw / 2, yr(share)]);
    if (i % every === 0) chart.append(svg("text", { x: x + bw / 2, y: H - bottom + 14, "text-anchor": "middle" }, axisLabel(s.interval, by, oneDay)));
  });
  let d = "", pen = false;
  for (const p of points) {
    if (p === null) { pen = false; continue; }
    d += (pen ? " L" : " M") + p[0].toFixed(1) + " " + p[1].toFixed(1);
    pen = true;
  }
  if (d) chart.append(svg("path", { class: "sl", d: d.trim() }));
  if (n <= 120) for (const p of points) if (p) chart.append(svg("circle", { class: "sl-point", cx: p[0].toFixed(1), cy: p[1].toFixed(1), r: 2.5 }));
  box.append(chart);
}

// --- start ------------------------------------------------------------------------------------

async function start() {
  const me = await loadSession(["supervisor", "admin"]);
  $("admin-link").hidden = me.role !== "admin";
  const p = new URLSearchParams(location.search);
  await fillForm(p);
  form().addEventListener("submit", run);
  control("dimension").addEventListener("change", () => showDimension(control("dimension").value, ""));
  let resized = null;
  window.addEventListener("resize", () => {
    clearTimeout(resized);
    resized = setTimeout(() => { if (R.report) renderChart(R.report); }, 150);
  });
  run();                  // the report of the address, or of the last 7 days per skill group
}

start();
