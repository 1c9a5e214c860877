// The agent page: state switch, screen pop on ring, call bar, per-call workspace, recent calls.
import { api, append, clear, fmtDuration, fmtTime, h, liveSocket, loadSession, setText } from "/static/js/common.js";
import { askNotifications, liveAgain, onCall, phoneMoved, ring, setupPhone, stopRinging } from "/static/js/phone.js";

const S = {
  me: null, agentId: "", agent: null, offset: 0,           // offset: server clock - local clock (s)
  calls: new Map(),                                         // call_id -> workspace
  order: [], selected: null, recent: [], busy: false,
};

// --- the call bar: which action is possible in which call state ---------------------------
// A call's status on this page: ringing, talking, held, transfer_ringing, consult_ringing,
// consulting (the core's call-control states, acd/core/transfers.py), or ended.
export const ACTIONS = {
  "hold":             { path: "call/hold", when: ["talking"], why: "Only a call in conversation can be held." },
  "resume":           { path: "call/resume", when: ["held"], why: "Only a held call can be resumed." },
  "transfer":         { path: "call/transfer", when: ["talking", "held"], target: true, why: "Transfer needs a call in conversation or on hold." },
  "transfer-cancel":  { path: "call/transfer/cancel", when: ["transfer_ringing", "consult_ringing"], why: "No transfer or consultation is ringing." },
  "consult":          { path: "call/consult", when: ["talking", "held"], target: true, why: "Consult needs a call in conversation or on hold." },
  "consult-complete": { path: "call/consult/complete", when: ["consulting"], why: "No consultation is going on." },
  "consult-return":   { path: "call/consult/return", when: ["consult_ringing", "consulting"], why: "No consultation is going on." },
  "survey":           { path: "call/survey", when: ["talking", "held"], why: "Only a connected caller can be sent to the survey." },
  "rating-invite":    { path: "call/rating-invite", when: ["talking", "held"], why: "Only a connected caller can be invited to rate." },
  "recording-pause":  { path: "call/recording/pause", when: ["talking", "held"], why: "Only a connected call's recording can be paused." },
  "recording-resume": { path: "call/recording/resume", when: ["talking", "held"], why: "Only a connected call's recording can be resumed." },
  "hangup":           { path: "call/hangup", when: ["talking", "held"], why: "There is no connected call to hang up (finish the transfer or consultation first)." },
};
const ON_A_CALL = new Set(["ringing", "talking"]);

export function actionState(action, agentState, call, inputs) {
  // -> null when possible, else the reason why not
  if (action === "wrapup-end") return agentState === "wrapup" ? null : "Not in wrap-up.";
  if (action === "dial") {
    if (!agentState || agentState === "offline") return "Log in first.";
    if (ON_A_CALL.has(agentState) || agentState === "wrapup") return "Finish the current call first.";
    return inputs.number ? null : "Type the number to dial.";
  }
  const a = ACTIONS[action];
  if (!call || call.status === "ended") return "No call selected.";
  if (call.id !== (S.agent && S.agent.call_id)) return "That call is not on your phone now.";
  if (!a.when.includes(call.status)) return a.why;
  if (a.target && !inputs.target) return "Type the agent id or group first.";
  // The call's recording as the server last said (unknown until then: the server decides).
  const rec = call.recording;
  if (rec && rec.recording) {
    if (action === "recording-pause" && rec.paused) return "The recording is paused already.";
    if (action === "recording-resume" && !rec.paused) return "The recording is not paused.";
  }
  return null;
}

export function recordingText(call) {
  // What the page says of the selected call's recording: "" when none is known.
  const rec = call && call.status !== "ended" ? call.recording : null;
  if (!rec || !rec.recording) return "";
  if (rec.failed) return "Recording failed";
  return rec.paused ? "Recording paused" : "Recording";
}

// --- rendering ------------------------------------------------------------------------------
const $ = (id) => document.getElementById(id);
function serverNow() { return Date.now() / 1000 + S.offset; }

export function noCallsText(agent) {
  // Why an idle agent gets no calls now ("" when they can get one)
  if (!agent || agent.state !== "idle") return "";
  if (!agent.reachable) return "You will get no calls: your phone is not registered. Start your SIP phone (or check its password and server).";
  if (agent.phone_in_use) return "You will get no calls: your phone is busy with another call.";
  return "";
}

export function badgeState(agent, call) {
  // The agent's state as the badge shows it: "held" while their call is on hold (the ACD's
  // state is still talking: the call is theirs and the phone is in use).
  const state = (agent && agent.state) || "offline";
  return state === "talking" && call && call.status === "held" ? "held" : state;
}

function renderState() {
  const a = S.agent || {};
  const badge = $("agent-state");
  const shown = badgeState(a, a.call_id ? S.calls.get(a.call_id) : null);
  badge.textContent = shown;
  badge.className = "state-badge state-" + shown;
  setText("pending", a.pending ? a.pending + (a.pending_reason ? " (" + a.pending_reason + ")" : "") : "none");
  setText("reachable", !a.reachable ? "not reachable" : a.phone_in_use ? "registered, in use" : "registered");
  // Idle, but the phone cannot take a call: say so plainly (the badge alone says "idle").
  const noCalls = noCallsText(a);
  const warn = $("no-calls");
  warn.hidden = !noCalls;
  warn.textContent = noCalls;
  for (const b of document.querySelectorAll("#state-buttons button")) {
    b.classList.toggle("current", b.dataset.state === a.state);
  }
  // Ringing, on any phone: a banner, a sound, the tab's title, a notification
  const call = a.call_id ? S.calls.get(a.call_id) : null;
  if (a.state === "ringing") ring(call ? callerLabel(call) : "", call && ((call.pop && call.pop.group) || call.ring.group));
  else stopRinging();
  tick();
}

function tick() {
  const a = S.agent;
  setText("time-in-state", a && a.since ? fmtDuration(serverNow() - a.since) : "–");
}

function inputs() {
  return { target: $("target").value.trim(), number: $("dial-number").value.trim() };
}

function callerLabel(c) {
  return (c.pop && c.pop.caller_number) || c.ring.caller_number || "unknown";
}

// The transfer / consult picker: the other agents with their state, or the groups with
// callers waiting and agents free (a list under the box; typing still works).
async function loadTargets() {
  const r = await api("GET", "/api/agents/" + encodeURIComponent(S.agentId) + "/targets");
  if (!r.ok) return;
  const list = clear($("target-list"));
  if ($("target-kind").value === "group") {
    for (const g of r.data.groups) {
      list.append(h("option", { value: g.name, label: g.name + " · " + g.waiting + " waiting, " + g.free + " free" }));
    }
  } else {
    for (const a of r.data.agents) {
      list.append(h("option", { value: a.agent_id,
        label: a.name + " (" + a.agent_id + ") · " + a.state + (a.can_ring ? "" : a.state === "idle" ? ", phone cannot ring" : "") }));
    }
  }
}

// Only the actions the call's state allows are shown; one shown but not yet possible (a
// target to type first) is disabled and says why. Calling out, when the server has no
// outbound route, is not offered: the page says why instead.
const TYPED = { target: "x", number: "x" };
function renderBar() {
  const call = S.calls.get(S.selected);
  const state = S.agent && S.agent.state;
  let shown = 0;
  for (const b of document.querySelectorAll("#call-actions button, button[data-action=dial]")) {
    const why = actionState(b.dataset.action, state, call, inputs());
    b.disabled = why !== null || S.busy;
    b.title = why || "";
    if (b.dataset.action === "dial") continue;
    b.hidden = actionState(b.dataset.action, state, call, TYPED) !== null;
    if (!b.hidden) shown++;
  }
  $("no-actions").hidden = shown > 0;
  $("transfer-target").hidden = !["transfer", "consult"].some(
    (a) => actionState(a, state, call, TYPED) === null);
  const canDial = !S.agent || S.agent.can_dial !== false;
  $("dial-row").hidden = !canDial;
  $("dial-why").hidden = canDial;
  // the caller, not the call's internal id
  setText("call-status", call ? "Call with " + callerLabel(call) + ": " + call.status : "");
  const rec = recordingText(call);
  setText("recording-status", rec).classList.toggle("paused", rec === "Recording paused");
}

function renderTabs() {
  const tabs = clear($("call-tabs"));
  for (const id of S.order) {
    const c = S.calls.get(id);
    const label = callerLabel(c);
    tabs.append(h("button", { type: "button", role: "tab", "aria-selected": id === S.selected ? "true" : "false",
      dataset: { call: id }, on: { click: () => select(id) } }, h("bdi", { class: "caller-text" }, label), " · ", c.status));
  }
}

function dd(id, ...children) { append(clear($(id)), children); }

function renderPop() {
  const c = S.calls.get(S.selected);
  $("pop").hidden = !c;
  $("pop-empty").hidden = Boolean(c);
  renderPanels(c);
  if (!c) return;
  const p = c.pop || {};
  const r = c.ring || {};
  dd("pop-number", p.caller_number || r.caller_number || "unknown");
  dd("pop-name", p.caller_name || "");
  const reg = p.region;
  dd("pop-region", reg ? [reg.province, reg.city === reg.province ? "" : reg.city].filter(Boolean).join(" ") +
     (reg.carrier ? " · " + reg.carrier : "") : (c.pop ? "unknown" : "…"));
  dd("pop-time", fmtTime(p.arrived_at) || "");
  dd("pop-group", p.group || r.group || "");
  const keys = p.key_trail || (r.key_trail || []).map((k) => ({ node: "", keys: k }));
  dd("pop-keys", keys.length ? keys.map((k, i) => h("span", { class: "key" }, (i ? " → " : ""), k.node ? k.node + ": " : "", k.keys)) : "none");
  const ver = p.verification || r.verification;
  dd("pop-verification", ver ? ver + (p.verification_method ? " (" + p.verification_method + ")" : "") : "not checked");
  const cust = p.customer;
  dd("pop-customer", cust ? [cust.name || "", " · ", cust.customer_id, cust.id_number ? " · ID " + cust.id_number : ""] : (c.pop ? "not in the directory" : "…"));
  const body = clear($("pop-earlier").tBodies[0]);
  for (const e of p.earlier_calls || []) {
    body.append(h("tr", {}, h("td", {}, fmtTime(e.arrived_at)), h("td", {}, e.skill_group || ""),
      h("td", {}, e.agent_id || ""), h("td", {}, e.end_reason || ""), h("td", {}, (e.notes || []).join(" / "))));
  }
  if (!(p.earlier_calls || []).length) body.append(h("tr", {}, h("td", { colspan: "5", class: "muted" }, "none")));
}

function renderPanels(c) {
  const list = clear($("side-panel-list"));
  const panels = (c && c.pop && c.pop.side_panels) || [];
  if (!panels.length) { list.append(c ? "No business pages for this caller." : "Shown with a call."); return; }
  for (const p of panels) {
    if (!/^https?:\/\//.test(p.url)) continue;
    list.append(h("div", { class: "side-panel" },
      h("div", { class: "row" }, h("b", {}, p.title), h("a", { href: p.url, target: "_blank", rel: "noopener noreferrer" }, "open")),
      h("iframe", { src: p.url, title: p.title, referrerpolicy: "no-referrer", loading: "lazy" })));
  }
}

function renderWorkspace() {
  const c = S.calls.get(S.selected);
  $("ws-note").disabled = !c;
  $("ws-lookup").disabled = !c;
  $("ws-note").value = c ? c.note : "";
  $("ws-lookup").value = c ? c.lookupQ : "";
  const out = clear($("ws-lookup-result"));
  if (c && c.lookup) out.append(c.lookup);
}

function saveWorkspace() {
  const c = S.calls.get(S.selected);
  if (!c) return;
  c.note = $("ws-note").value;
  c.lookupQ = $("ws-lookup").value;
}

function select(id) {
  saveWorkspace();
  S.selected = id;
  renderAll();
}

function renderAll() { renderState(); renderTabs(); renderPop(); renderWorkspace(); renderBar(); }

function renderRecent() {
  const body = clear($("recent").tBodies[0]);
  for (const c of S.recent) {
    const note = h("input", { value: c.note || "", maxlength: "2000", "aria-label": "note", dataset: { note: c.uniqueid } });
    body.append(h("tr", { dataset: { call: c.uniqueid } },
      h("td", {}, fmtTime(c.arrived_at)), h("td", { class: "number caller-text" }, c.caller_number || ""),
      h("td", { class: "name caller-text" }, c.caller_name || ""), h("td", {}, c.skill_group || ""), h("td", { class: "end" }, c.end_reason || "in progress"),
      h("td", {}, note, h("button", { type: "button", on: { click: () => saveNote(c.uniqueid, note.value) } }, "Save")),
      h("td", {}, h("button", { type: "button", class: "hide", title: "Takes the call off this list; its record stays.", on: { click: () => hideCall(c.uniqueid) } }, "Hide from list"))));
  }
  if (!S.recent.length) body.append(h("tr", {}, h("td", { colspan: "7", class: "muted" }, "No calls yet.")));
}

// --- server calls ---------------------------------------------------------------------------
const base = () => "/api/agents/" + encodeURIComponent(S.agentId) + "/";

function show(id, r, okText) {
  const el = $(id);
  el.className = "msg " + (r.ok ? "ok" : "error");
  el.textContent = r.ok ? (okText || "") : (r.data.message || "Refused.") + (r.data.error ? " [" + r.data.error + "]" : "");
}

async function setState(state) {
  const reason = $("state-reason").value.trim();
  let r;
  const cur = S.agent && S.agent.state;
  if (state === "offline") r = await api("POST", base() + "logout");
  else {
    if (!cur || cur === "offline") {
      r = await api("POST", base() + "login");
      if (!r.ok || state === "idle") { show("state-msg", r); if (r.ok) S.agent = { ...S.agent, ...r.data }; renderAll(); return; }
    }
    r = await api("POST", base() + "state", { state, reason });
  }
  show("state-msg", r, r.ok && r.data.pending ? "Pending: " + r.data.pending + " after this call." : "");
  if (r.ok) { S.agent = { ...S.agent, ...r.data }; renderAll(); }
}

async function act(action) {
  const call = S.calls.get(S.selected);
  const inp = inputs();
  let body;
  if (action === "transfer" || action === "consult") {
    body = $("target-kind").value === "group" ? { to_group: inp.target } : { to_agent: inp.target };
  }
  if (action === "dial") body = { number: inp.number };
  const path = action === "wrapup-end" ? "wrapup/end" : action === "dial" ? "call/dial" : ACTIONS[action].path;
  S.busy = true; renderBar();
  const r = await api("POST", base() + path, body);
  S.busy = false;
  show("call-msg", r, r.ok ? action + ": done" : "");
  if (r.ok && r.data && r.data.agent_id) applyAgentView(r.data);
  if (r.ok && call && action.startsWith("recording-")) call.recording = r.data;   // {recording, paused, failed}
  renderAll();
}

async function fetchPop(id, tries = 0) {
  const r = await api("GET", base() + "pop/" + encodeURIComponent(id));
  const c = S.calls.get(id);
  if (!c || !r.ok) return;
  // The call's record may not be written yet (the server queues its writes while the database
  // is busy): without it the pop has the live facts only, so it asks again while the call is on.
  if (!r.data.arrived_at && c.status !== "ended" && tries < 10) {
    setTimeout(() => fetchPop(id, tries + 1), 1000);
    if (c.pop) return;
  }
  c.pop = r.data;
  if (id === S.selected) { renderPop(); renderTabs(); }
}

async function loadRecent(expect) {
  for (let i = 0; i < 8; i++) {
    const r = await api("GET", base() + "recent");
    if (r.ok) {
      S.recent = r.data.calls || [];
      renderRecent();
      if (!expect || S.recent.some((c) => c.uniqueid === expect && c.end_reason)) return true;
    }
    await new Promise((res) => setTimeout(res, 1000));
  }
  return false;
}

async function saveNote(uid, text) {
  const r = await api("PUT", base() + "recent/" + encodeURIComponent(uid) + "/note", { text });
  show("recent-msg", r, "Note saved.");
}

async function hideCall(uid) {
  const r = await api("DELETE", base() + "recent/" + encodeURIComponent(uid));
  show("recent-msg", r, "Taken off the list.");
  if (r.ok) { S.recent = r.data.calls || []; renderRecent(); }
}

async function lookup() {
  const c = S.calls.get(S.selected);
  if (!c) return;
  c.lookupQ = $("ws-lookup").value.trim();
  const r = await api("GET", base() + "directory?q=" + encodeURIComponent(c.lookupQ));
  const cust = r.ok ? r.data.customer : null;
  c.lookup = r.ok ? (cust ? [cust.name || "", " · ", cust.customer_id, cust.phone ? " · " + cust.phone : ""].join("") : "not found")
                  : (r.data.message || "lookup failed");
  renderWorkspace();
}

// --- live events ----------------------------------------------------------------------------
function ensureCall(id, ring, status) {
  let c = S.calls.get(id);
  if (!c) {
    c = { id, ring: ring || {}, pop: null, status, note: "", lookupQ: "", lookup: "" };
    S.calls.set(id, c);
    S.order.push(id);
    // ended calls beyond the newest five leave the list
    const ended = S.order.filter((x) => S.calls.get(x).status === "ended");
    while (ended.length > 5) { const old = ended.shift(); S.calls.delete(old); S.order = S.order.filter((x) => x !== old); }
    fetchPop(id);
  } else if (ring) { c.ring = ring; }
  if (status) c.status = status;
  return c;
}

function statusOf(view) {
  // the call's status from an agent snapshot (GET /api/agents/{id}, a call-control answer):
  // an agent neither ringing nor talking (in wrap-up after a transfer, say) has no live call
  if (view.state !== "ringing" && view.state !== "talking") return "ended";
  const ctl = view.control;
  if (ctl && !ctl.outbound && ctl.state) return ctl.state;
  return view.state;
}

function applyAgentView(view) {
  // the truth from the server: the agent's state and their current call
  S.agent = { ...(S.agent || {}), ...view };
  for (const c of S.calls.values()) if (c.status !== "ended" && c.id !== view.call_id) c.status = "ended";
  if (view.call_id) {
    const call = view.call || {};
    const c = ensureCall(view.call_id, S.calls.has(view.call_id) ? null :
      { caller_number: call.caller_number || (view.control && view.control.number) || "", group: call.group,
        key_trail: call.key_trail, verification: call.verification }, statusOf(view));
    if (view.recording !== undefined) c.recording = view.recording;
    if (!S.selected || !S.calls.has(S.selected) || S.calls.get(S.selected).status === "ended") S.selected = c.id;
  }
}

async function refreshAgent() {
  const r = await api("GET", "/api/agents/" + encodeURIComponent(S.agentId));
  if (r.ok) { applyAgentView(r.data); renderAll(); }
}

function onTransfer(c, msg) {
  if (msg.event === "started" || msg.event === "ringing") {
    if (!c.status.endsWith("_ringing") && c.status !== "consulting") c.before = c.status;
    c.status = msg.kind + "_ringing";
  } else if (msg.event === "answered") {
    if (msg.kind === "consult") c.status = "consulting";
  } else if (msg.event === "completed") {
    c.status = msg.target_agent === S.agentId ? "talking" : "ended";
  } else if (msg.event === "cancelled" || msg.event === "failed") {
    c.status = c.before || "talking";
  }
  const el = $("call-msg");
  el.className = "msg " + (msg.event === "failed" ? "error" : "ok");
  el.textContent = msg.kind + " " + msg.event + (msg.target_agent ? " (agent " + msg.target_agent + ")" : "") +
    (msg.target_group ? " (group " + msg.target_group + ")" : "") + (msg.cause ? ": " + msg.cause : "");
}

function onMessage(msg) {
  if (msg.type === "snapshot") {
    if (msg.agent && typeof msg.agent.since === "number" && typeof msg.agent.in_state_for === "number") {
      S.offset = msg.agent.since + msg.agent.in_state_for - Date.now() / 1000;
    }
    setText("agent-name", (msg.agent.name || S.agentId) + " (" + S.agentId + ")");
    applyAgentView(msg.agent);
    renderAll();
    return;
  }
  if (msg.type === "state") {
    S.agent = { ...(S.agent || {}), state: msg.state, reason: msg.reason, since: msg.since, pending: msg.pending,
      pending_reason: msg.pending_reason, reachable: msg.reachable, phone_in_use: msg.phone_in_use,
      call_id: msg.call_id };
    renderAll();
    return;
  }
  if (msg.type === "phone") { phoneMoved(msg); return; }
  if (msg.type === "ring") {
    saveWorkspace();
    ensureCall(msg.call_id, msg, "ringing");
    S.selected = msg.call_id;
    renderAll();
    return;
  }
  const c = msg.call_id ? S.calls.get(msg.call_id) : null;
  if (msg.type === "answered" && msg.call_id) { ensureCall(msg.call_id, null, "talking"); renderAll(); refreshAgent(); return; }
  if (msg.type === "ended" && c) {
    c.status = "ended";
    renderAll();
    loadRecent(msg.call_id).then(() => {
      if (c.note && !(S.recent.find((r) => r.uniqueid === c.id) || {}).note) saveNote(c.id, c.note).then(() => loadRecent());
    });
    return;
  }
  if (msg.type === "hold" && c) { c.status = msg.held ? "held" : "talking"; renderAll(); return; }
  if (msg.type === "transfer" && c) { onTransfer(c, msg); renderAll(); refreshAgent(); return; }
  if (msg.type === "outbound" && msg.call_id) { refreshAgent(); return; }
  if (msg.type === "rating_invited" && c) { setText("call-msg", "The caller will be asked to rate the call."); return; }
}

// --- start ----------------------------------------------------------------------------------
async function start() {
  S.me = await loadSession(["agent"]);
  S.agentId = S.me.agent_id;
  setText("agent-name", S.agentId);
  for (const b of document.querySelectorAll("#state-buttons button")) b.addEventListener("click", () => { askNotifications(); setState(b.dataset.state); });
  // Closing or reloading the page while it carries a call (the browser phone): the browser
  // asks first (with a SIP phone the call goes on, and the page comes back with it)
  window.addEventListener("beforeunload", (e) => {
    if (onCall()) { e.preventDefault(); e.returnValue = ""; }
  });
  for (const b of document.querySelectorAll("button[data-action]")) b.addEventListener("click", () => act(b.dataset.action));
  for (const id of ["target", "dial-number"]) $(id).addEventListener("input", renderBar);
  $("target").addEventListener("focus", loadTargets);
  $("target-kind").addEventListener("change", loadTargets);
  $("ws-note").addEventListener("input", saveWorkspace);
  $("ws-lookup").addEventListener("input", saveWorkspace);
  $("ws-lookup-go").addEventListener("click", lookup);
  renderAll();
  liveSocket(base() + "ws", onMessage, (st, opened) => {
    const el = $("conn"); el.textContent = st; el.className = "status " + st;
    if (opened) el.dataset.opened = String(opened);      // how often it (re)connected
    if (st === "live" && opened > 1) liveAgain();          // the server may have restarted
  });
  loadRecent();
  setInterval(tick, 1000);
  await setupPhone(S.agentId, renderAll);
}

start();
