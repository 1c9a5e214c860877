// The supervisor wall board: live queues and agents (WebSocket: the ACD core's board, then
// only its changes), today's figures and 15-minute intervals (from the call records), actions
// on agents, the skill groups' members (members.js). Text is only ever set as text: nothing a
// caller controls is parsed as HTML. The waiting callers' numbers come masked by the server
// (web.wallboard_caller_digits). /wallboard?tv=1: the big screen (large type, no controls).
import { api, append, clear, fmtDuration, fmtPercent, h, liveSocket, loadSession, setText } from "/static/js/common.js";
import { mountMembers } from "/static/js/members.js";

const SVG = "http://www.w3.org/2000/svg";
const B = { board: null, live: null, seq: 0, resyncing: false, offset: 0, loading: false,
  again: false, groupRows: new Map(), agentRows: new Map() };
const $ = (id) => document.getElementById(id);
const TV = new URLSearchParams(location.search).get("tv") === "1";
const limits = () => (B.board && B.board.thresholds) || {};
// Past a threshold: the longest wait over longest_wait_alert, the service level under target.
const waitAlert = (sec) => limits().longest_wait_alert > 0 && sec > limits().longest_wait_alert;
const slAlert = (sl) => sl !== null && sl !== undefined && typeof limits().service_level_target === "number"
  && sl < limits().service_level_target;
const PAUSES = ["break", "meeting", "busy"];

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

export function agentsByState(agents, noPhone) {
  // idle agents whose phone cannot take a call get none: counted apart from the idle ones
  const counts = { ...(agents || {}) };
  if (noPhone > 0 && counts.idle) counts.idle -= noPhone;
  const text = Object.entries(counts).filter(([, n]) => n > 0).map(([s, n]) => s + " " + n);
  if (noPhone > 0) text.push("idle without a usable phone " + noPhone);
  return text.join(", ") || "none";
}

// The live board (from the WebSocket): a snapshot as the socket opens, then only what changed
// ("delta": the groups, agents and waiting calls that changed, null for one gone), numbered
// (seq). A number that skips one means something was missed: the page asks for a snapshot.
function liveFrom(snap) {
  const live = { queues: new Map(), agents: new Map(), calls: new Map() };
  for (const [name, q] of Object.entries(snap.queues || {})) {
    const { calls, ...rest } = q;
    live.queues.set(name, rest);
    for (const c of calls || []) live.calls.set(c.call_id, withSince({ ...c, group: name }));
  }
  for (const [id, a] of Object.entries(snap.agents || {})) live.agents.set(id, a);
  return live;
}

// A waiting call's wait counts on from when the message came (``waited`` is as of then).
function withSince(c) {
  return { ...c, since: serverNow() - (c.waited || 0) };
}

function applyDelta(msg) {
  for (const kind of ["queues", "agents", "calls"]) {
    for (const [k, v] of Object.entries(msg[kind] || {})) {
      if (v === null) B.live[kind].delete(k);
      else B.live[kind].set(k, kind === "calls" ? withSince(v) : v);
    }
  }
  for (const name of Object.keys(msg.queues || {})) fillGroup(name);
  for (const id of Object.keys(msg.agents || {})) fillAgent(id);
  if (msg.calls) renderWaiting();
  if (msg.agents) renderPauses();
}

// Who is waiting, longest first: the number as the server masked it, the group, the place in
// its queue, the priority, ringing or waiting, and for how long.
function renderWaiting() {
  const body = clear($("waiting").tBodies[0]);
  const calls = B.live ? [...B.live.calls.values()] : [];
  calls.sort((a, b) => a.since - b.since);
  for (const c of calls) {
    const waited = serverNow() - c.since;
    body.append(h("tr", { dataset: { call: c.call_id }, class: waitAlert(waited) ? "alert" : null },
      h("td", { class: "caller" }, c.caller_number || "unknown"),
      h("td", {}, c.group || ""),
      h("td", { class: "num" }, c.position === undefined ? "" : c.position),
      h("td", { class: "num" }, c.priority === undefined ? "" : c.priority),
      h("td", {}, c.state || ""),
      h("td", { class: "num", dataset: { f: "waited", since: String(c.since) } }, fmtDuration(waited))));
  }
  setText("waiting-count", calls.length ? "(" + calls.length + ")" : "");
  $("waiting-none").hidden = calls.length > 0;
}

// Agents on a break, in a meeting or busy: the reason they gave and for how long.
function renderPauses() {
  const list = clear($("pauses"));
  const rows = [];
  for (const [id, a] of Object.entries((B.board && B.board.agents) || {})) {
    const l = B.live ? (B.live.agents.get(id) || {}) : a;
    const state = l.state || a.state;
    if (!PAUSES.includes(state)) continue;
    const since = typeof l.since === "number" && l.since > 0 ? l.since : null;
    rows.push({ id, name: a.name || id, state, reason: l.reason || "", since });
  }
  rows.sort((x, y) => (x.since || 0) - (y.since || 0));
  for (const r of rows) {
    list.append(h("li", { dataset: { agent: r.id } },
      h("span", { class: "state-badge state-" + r.state }, r.state), " ",
      r.name + " (" + r.id + ")", " ",
      h("span", { class: "why" }, r.reason || "no reason given"), " ",
      h("span", { class: "num", dataset: { f: "paused", since: r.since === null ? "" : String(r.since) } },
        r.since === null ? "" : fmtDuration(serverNow() - r.since))));
  }
  $("pauses-none").hidden = rows.length > 0;
}

const serverNow = () => Date.now() / 1000 + B.offset;

// A group's live cells (waiting, longest wait, agents by state, callbacks): from the live
// board once it is there, else from today's figures.
function fillGroup(name) {
  const tr = B.groupRows.get(name), g = B.board && B.board.groups[name];
  if (!tr || !g) return;
  const q = (B.live && B.live.queues.get(name)) || {};
  const longest = q.longest_wait !== undefined ? q.longest_wait : g.longest_wait;
  const cell = (f) => tr.querySelector(`td[data-f="${f}"]`);
  setText(cell("waiting"), q.waiting !== undefined ? q.waiting : g.waiting);
  const wait = cell("longest_wait");
  wait.dataset.since = longest > 0 && q.longest_wait !== undefined ? String(serverNow() - longest) : "";
  setText(wait, fmtDuration(longest));
  wait.classList.toggle("alert", waitAlert(longest));
  setText(cell("agents"), agentsByState(q.agents || g.agents,
    q.idle_no_phone !== undefined ? q.idle_no_phone : g.idle_no_phone));
  setText(cell("callbacks_pending"), q.callbacks !== undefined ? q.callbacks : g.callbacks_pending);
}

function renderGroups() {
  const body = clear($("groups").tBodies[0]);
  B.groupRows = new Map();
  for (const [name, g] of Object.entries((B.board && B.board.groups) || {})) {
    const tr = h("tr", { dataset: { group: name } },
      h("td", {}, name),
      h("td", { class: "num", dataset: { f: "waiting" } }),
      h("td", { class: "num", dataset: { f: "longest_wait" } }),
      h("td", { dataset: { f: "agents" } }),
      h("td", { class: "num", dataset: { f: "offered" } }, g.offered),
      h("td", { class: "num", dataset: { f: "answered" } }, g.answered),
      h("td", { class: "num", dataset: { f: "abandoned" } }, g.abandoned),
      h("td", { class: "num wide", dataset: { f: "answer_rate" } }, fmtPercent(g.answer_rate)),
      h("td", { class: "num wide", dataset: { f: "abandon_rate" } }, fmtPercent(g.abandon_rate)),
      h("td", { class: "num" + (slAlert(g.service_level) ? " alert" : ""), dataset: { f: "service_level" },
        title: "target " + fmtPercent(limits().service_level_target) }, fmtPercent(g.service_level)),
      h("td", { class: "num", dataset: { f: "asa" } }, fmtDuration(g.asa)),
      h("td", { class: "num wide", dataset: { f: "aht" } }, fmtDuration(g.aht)),
      h("td", { class: "num wide", dataset: { f: "callbacks_pending" } }),
      h("td", { class: "num wide", dataset: { f: "satisfaction" } }, fmtPercent(g.satisfaction)),
      h("td", { class: "num wide", dataset: { f: "verified_share" } }, fmtPercent(g.verified_share)));
    B.groupRows.set(name, tr);
    body.append(tr);
    fillGroup(name);
  }
}

// An agent's live cells (state, pending state, time in state).
function fillAgent(id) {
  const tr = B.agentRows.get(id), a = B.board && B.board.agents[id];
  if (!tr || !a) return;
  const l = B.live ? (B.live.agents.get(id) || { state: "offline" }) : {};
  const state = l.state || a.state || "offline";
  const since = typeof l.since === "number" && l.since > 0 ? l.since : null;
  const pending = B.live ? l.pending : a.pending;
  const cell = (f) => tr.querySelector(`td[data-f="${f}"]`);
  const reason = B.live ? l.reason : a.reason;
  append(clear(cell("state")), [h("span", { class: "state-badge state-" + state }, state),
    reason && state !== "offline" ? h("span", { class: "reason" }, reason) : "",
    pending ? " → " + pending : ""]);
  const inState = cell("in_state");
  inState.dataset.since = since === null ? "" : String(since);
  // Offline since the start of time (never logged in): no time in state to show.
  setText(inState, fmtDuration(since !== null ? serverNow() - since
    : state === "offline" ? null : a.in_state_for));
  // Listen, whisper, barge: only while the agent is on a call.
  const onCall = !!(B.live ? l.call_id : a.call_id);
  for (const b of cell("monitor").querySelectorAll("button")) b.disabled = !onCall;
}

function renderAgents() {
  const body = clear($("agents").tBodies[0]);
  B.agentRows = new Map();
  for (const [id, a] of Object.entries((B.board && B.board.agents) || {})) {
    const pick = h("select", { "aria-label": "force state of " + id },
      ...["idle", "busy", "break", "meeting"].map((s) => h("option", { value: s }, s)));
    const why = h("input", { type: "text", class: "force-reason", maxlength: "100",
      placeholder: "reason", "aria-label": "reason for " + id });
    const tr = h("tr", { dataset: { agent: id } },
      h("td", {}, (a.name || id) + " (" + id + ")"),
      h("td", { dataset: { f: "state" } }),
      h("td", { class: "num", dataset: { f: "in_state" } }),
      h("td", { class: "num", dataset: { f: "calls_handled" } }, a.calls_handled),
      h("td", { class: "num", dataset: { f: "talk_time" } }, fmtDuration(a.talk_time)),
      h("td", { class: "num wide", dataset: { f: "wrapup_time" } }, fmtDuration(a.wrapup_time)),
      h("td", { class: "num wide", dataset: { f: "occupancy" } }, fmtPercent(a.occupancy)),
      h("td", { class: "ctl" }, pick, why,
        h("button", { type: "button", class: "force", on: { click: () => force(id, pick.value, why.value) } }, "Force"),
        h("button", { type: "button", class: "logout-agent", on: { click: () => logoutAgent(id) } }, "Log out")),
      h("td", { class: "ctl", dataset: { f: "monitor" } },
        ...["listen", "whisper", "barge"].map((mode) => h("button", {
          type: "button", class: "monitor-" + mode, title: mode + " on " + id + "'s call",
          on: { click: () => monitor(id, mode) } }, mode[0].toUpperCase() + mode.slice(1)))));
    B.agentRows.set(id, tr);
    body.append(tr);
    fillAgent(id);
  }
}

// One chart a group: offered, answered and abandoned side by side per 15 minutes, the service
// level as a line. Each 15 minutes gets SLOT px (a day was once squeezed into 240 px), the
// newest end in view; on the big screen only the last TV_SLOTS, fitted to the panel.
const SLOT = 24, TV_SLOTS = 16;
function renderCharts() {
  const box = clear($("charts"));
  const intervals = (B.board && B.board.intervals) || {};
  let shown = 0;
  let groups = Object.entries(intervals);
  if (TV) {     // the big screen: the groups with calls in the hours shown (else the first two)
    const busy = groups.filter(([, all]) => all.slice(-TV_SLOTS).some((r) => r.offered > 0));
    groups = busy.length ? busy : groups.slice(0, 2);
  }
  for (const [name, all] of groups) {
    const rows = TV ? all.slice(-TV_SLOTS) : all;
    shown = Math.max(shown, rows.length);
    const n = Math.max(rows.length, 1), left = 34, H = 200, top = 12, bottom = 22;
    const W = left + n * SLOT + 8;
    const max = Math.max(1, ...rows.map((r) => r.offered));
    const y = (v) => H - bottom - (v / max) * (H - top - bottom);
    const chart = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img",
      "aria-label": "group " + name, ...(TV ? {} : { width: W, height: H }) });
    chart.append(svg("title", {}, "Group " + name + ": offered, answered, abandoned per 15 minutes"));
    for (const v of new Set([0, Math.round(max / 2), max])) {   // the scale: 0, half, the most
      chart.append(svg("line", { class: "grid", x1: left, x2: W - 4, y1: y(v), y2: y(v) }));
      chart.append(svg("text", { x: left - 4, y: y(v) + 4, "text-anchor": "end" }, v));
    }
    rows.forEach((r, i) => {
      const x = left + i * SLOT + 2, bw = (SLOT - 4) / 3;
      [["offered", r.offered], ["answered", r.answered], ["abandoned", r.abandoned]].forEach(([cls, v], k) => {
        if (!v) return;
        chart.append(svg("rect", { class: cls, x: x + k * bw, y: y(v), width: bw - 0.5, height: H - bottom - y(v) },
          svg("title", {}, cls + " " + v)));
      });
      const t = new Date(r.start * 1000);
      if (t.getMinutes() === 0) {                  // every hour
        chart.append(svg("text", { x, y: H - 6 }, String(t.getHours()).padStart(2, "0") + ":00"));
      }
    });
    const pts = rows.map((r, i) => r.service_level === null ? null
      : `${left + i * SLOT + SLOT / 2},${top + (1 - r.service_level) * (H - top - bottom)}`).filter(Boolean);
    if (pts.length) chart.append(svg("polyline", { class: "sl", points: pts.join(" ") }));
    const scroll = h("div", { class: "chart-scroll" }, chart);
    box.append(h("figure", { dataset: { group: name } }, h("figcaption", {}, name), scroll));
    scroll.scrollLeft = scroll.scrollWidth;      // the newest 15 minutes in view
  }
  setText("charts-span", TV ? "(the last " + (shown * 15 / 60) + " h)" : "");
}

function renderDefinitions() {
  const dl = clear($("definitions"));
  for (const [k, v] of Object.entries((B.board && B.board.definitions) || {})) {
    dl.append(h("dt", {}, k.replace(/_/g, " ")), h("dd", {}, v));
  }
}

function render() {
  if (!B.board) return;
  setText("day", "today since " + new Date(B.board.day_start).toLocaleString() + " (" + B.board.timezone + ")");
  renderGroups(); renderAgents(); renderCharts(); renderStore(); renderWaiting(); renderPauses();
}

// Records waiting to be written (the database locked or full): the calls go on, the records
// follow once the database takes them again.
function renderStore() {
  const w = B.board.store_writes, el = $("store-warn");
  el.hidden = !(w && w.degraded);
  if (w && w.degraded) el.textContent = w.pending + " records waiting for the database (oldest " + Math.round(w.oldest_seconds) + " s)";
}

async function loadBoard() {
  if (B.loading) { B.again = true; return; }
  B.loading = true;
  boardAt = Date.now();
  const r = await api("GET", "/api/stats/wallboard");
  B.loading = false;
  if (r.ok) {
    const first = !B.board;
    B.board = r.data;
    B.offset = r.data.now - Date.now() / 1000;
    if (first) renderDefinitions();
    render();
  }
  if (B.again) { B.again = false; loadBoard(); }
}

// Today's figures follow a live change: soon after one, at most every BOARD_GAP ms however
// often the board changes (a timer that gathers the changes, never one load per change).
const BOARD_GAP = 2000;
let boardSoon = null, boardAt = 0;
function boardAfterChange() {
  if (boardSoon) return;
  boardSoon = setTimeout(() => { boardSoon = null; loadBoard(); },
    Math.max(300, BOARD_GAP - (Date.now() - boardAt)));
}

function onMessage(msg, send) {
  if (msg.type === "snapshot") {
    B.live = liveFrom(msg);
    B.seq = msg.seq;
    B.resyncing = false;
    for (const name of B.groupRows.keys()) fillGroup(name);
    for (const id of B.agentRows.keys()) fillAgent(id);
    renderWaiting(); renderPauses();
    boardAfterChange();
  } else if (msg.type === "delta" && B.live) {
    if (msg.seq <= B.seq) return;            // already in the snapshot
    if (msg.seq !== B.seq + 1) {             // one missed: the whole board again
      if (!B.resyncing) { B.resyncing = true; send({ type: "resync" }); }
      return;
    }
    B.seq = msg.seq;
    applyDelta(msg);
    boardAfterChange();
  }
}

async function force(agent, state, reason) {
  const base = "/api/agents/" + encodeURIComponent(agent);
  // the supervisor's reason when given; the agent's page and the records show it
  const r = await api("POST", base + "/state", { state, reason: reason.trim() || "set by supervisor" });
  msg(r, "State of " + agent + " set to " + state + (r.ok && r.data.pending ? " (pending: after the call)" : "") + ".");
}

// Listen, whisper or barge from the supervisor's own phone (it rings; answer it).
async function monitor(agent, mode) {
  const r = await api("POST", "/api/monitor", { agent, mode });
  msg(r, "Your phone rings: answer it to " + mode + " on " + agent + "'s call.");
  showMonitor(r.ok ? r.data : undefined);
}

async function monitorMode(mode) {
  const r = await api("POST", "/api/monitor/mode", { mode });
  msg(r, "Now " + mode + ".");
  showMonitor(r.ok ? r.data : undefined);
}

async function monitorStop() {
  const r = await api("DELETE", "/api/monitor");
  msg(r, "Monitoring stopped.");
  showMonitor(r.ok ? null : undefined);
}

// The monitoring bar: what is monitored and how (null: nothing; undefined: ask the server).
async function showMonitor(m) {
  if (m === undefined) {
    const r = await api("GET", "/api/monitor");
    m = r.ok ? r.data.monitoring : null;
  }
  const bar = $("monitor-bar");
  bar.hidden = !m;
  if (!m) return;
  setText("monitor-what", "Monitoring " + m.agent_id + "'s call (" + m.mode + ")" + (m.answered ? "" : ": answer your phone"));
  for (const b of bar.querySelectorAll("button[data-mode]")) b.disabled = b.dataset.mode === m.mode;
}

async function logoutAgent(agent) {
  const r = await api("POST", "/api/agents/" + encodeURIComponent(agent) + "/logout");
  msg(r, agent + " logged out.");
}

function msg(r, okText) {
  const el = $("action-msg");
  el.className = "msg " + (r.ok ? "ok" : "error");
  el.textContent = r.ok ? okText : (r.data.message || "Refused.") + (r.data.error ? " [" + r.data.error + "]" : "");
  loadBoard();
}

async function start() {
  if (TV) document.body.classList.add("tv");
  await loadSession(["supervisor", "admin"]);
  if (!TV) mountMembers($("members"), $("members-msg"), { onChange: boardAfterChange });
  await loadBoard();
  liveSocket("/api/supervisor/ws", onMessage, (st, opened) => {
    const el = $("conn"); el.textContent = st; el.className = "status " + st;
    if (opened) el.dataset.opened = String(opened);      // how often it (re)connected
  });
  setInterval(() => {         // times in state and longest waits count on between changes
    for (const td of document.querySelectorAll('td[data-f="in_state"], td[data-f="longest_wait"], td[data-f="waited"], span[data-f="paused"]')) {
      const since = parseFloat(td.dataset.since);
      if (isNaN(since)) continue;
      td.textContent = fmtDuration(serverNow() - since);
      if (td.dataset.f === "longest_wait") td.classList.toggle("alert", waitAlert(serverNow() - since));
      if (td.dataset.f === "waited") td.parentElement.classList.toggle("alert", waitAlert(serverNow() - since));
    }
  }, 1000);
  setInterval(loadBoard, 15000);
  if (TV) return;           // no controls on the big screen
  for (const b of $("monitor-bar").querySelectorAll("button[data-mode]")) {
    b.addEventListener("click", () => monitorMode(b.dataset.mode));
  }
  $("monitor-stop").addEventListener("click", monitorStop);
  showMonitor();
  setInterval(() => { if (!$("monitor-bar").hidden) showMonitor(); }, 3000);  // ended by itself?
}

start();
