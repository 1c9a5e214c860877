// The admin page: call records with filters and CSV, directory import, flows, agents, groups
// and users (entries.js), skill group members (members.js), audit.
import { showCall } from "/static/js/calldetail.js";
import { api, clear, fmtTime, h, loadSession } from "/static/js/common.js";
import { load as loadEntries, mountEntries } from "/static/js/entries.js";
import { mountMembers, reloadMembers } from "/static/js/members.js";
import { serverPager } from "/static/js/pager.js";

const $ = (id) => document.getElementById(id);
const REASONS = ["caller_hangup", "agent_hangup", "abandoned", "overflow", "closed", "no_agents",
  "callback_expired", "callback_failed", "ivr_hangup", "ivr_error", "refused", "ended_while_server_down"];

function msg(id, r, okText) {
  const el = $(id);
  el.className = "msg " + (r.ok ? "ok" : "error");
  el.textContent = r.ok ? okText : (r.data.message || "Refused.") + (r.data.error ? " [" + r.data.error + "]" : "");
}

function query() {
  const p = new URLSearchParams();
  for (const [k, v] of new FormData($("call-filter"))) if (String(v).trim()) p.set(k, String(v).trim());
  return p.toString();
}

// The calls, a page at a time (newest first); "Details" opens the call's record under it.
async function fetchCalls(offset, limit) {
  const q = query();
  $("csv-link").href = "/api/admin/calls.csv" + (q ? "?" + q : "");
  const r = await api("GET", "/api/admin/calls?" + (q ? q + "&" : "") + "limit=" + limit + "&offset=" + offset);
  msg("calls-msg", r, "");
  return r.ok ? r.data.calls : null;
}

function showCalls(calls) {
  const body = clear($("calls").tBodies[0]);
  for (const c of calls) {
    const detail = h("tr", { class: "call-detail", hidden: "" }, h("td", { colspan: "10" }));
    body.append(h("tr", { dataset: { call: c.uniqueid } }, h("td", {}, fmtTime(c.arrived_at)), h("td", {}, c.caller_number), h("td", {}, c.caller_name),
      h("td", {}, c.skill_group || ""), h("td", {}, c.agent_id || ""), h("td", {}, c.end_reason || "in progress"),
      h("td", {}, c.verification || ""), h("td", {}, (c.key_trail || []).map((k) => k.keys).join(" ")),
      h("td", { class: "recordings" }, h("button", { type: "button", dataset: { call: c.uniqueid },
        on: { click: (ev) => showRecordings(ev.currentTarget.parentElement, c.uniqueid) } }, "Recordings")),
      h("td", {}, h("button", { type: "button", class: "call-details", on: { click: () => {
        detail.hidden = !detail.hidden;
        if (!detail.hidden) showCall(detail.firstChild, c.uniqueid);
      } } }, "Details"))), detail);
  }
}

// A call's recordings, each with a player (the browser asks for ranges as it seeks) and a
// download link; every play and download is in the audit log.
async function showRecordings(cell, uniqueid) {
  const r = await api("GET", "/api/calls/" + encodeURIComponent(uniqueid) + "/recordings");
  clear(cell);
  if (!r.ok) { cell.append(h("span", { class: "msg error" }, (r.data.message || "Refused.") + " [" + (r.data.error || "") + "]")); return; }
  if (!r.data.recordings.length) { cell.append(h("span", { class: "muted" }, "none")); return; }
  for (const rec of r.data.recordings) {
    const src = "/api/recordings/" + rec.id + "/audio";
    const paused = (rec.paused || []).map(([a, b]) => a + "–" + (b === null ? "…" : b) + " s").join(", ");
    cell.append(h("div", { class: "recording", dataset: { recording: String(rec.id) } },
      "agent " + rec.agent_id + " · " + rec.status + (rec.seconds ? " · " + rec.seconds + " s" : "") +
        (paused ? " · paused " + paused : "") + (rec.error ? " · " + rec.error : ""),
      rec.status === "done" ? [" ", h("audio", { controls: "", preload: "none", src }), " ",
        h("a", { href: src + "?download=1" }, "download")] : []));
  }
}

async function importCsv() {
  const f = $("csv-file").files[0];
  if (!f) { msg("import-msg", { ok: false, data: { message: "Choose a CSV file." } }); return; }
  const r = await api("POST", "/api/admin/customers/import", await f.text(), { contentType: "text/csv" });
  msg("import-msg", r, r.ok ? "Imported: " + r.data.added + " added, " + r.data.updated + " updated." : "");
  loadAudit();
}

async function loadFlows() {
  const r = await api("GET", "/api/flows");
  showFlows(r);
}

function showFlows(r) {
  const box = clear($("flows"));
  if (!r.ok) { box.append("Flows: " + (r.data.message || "not available")); return; }
  box.append(h("div", { id: "flows-status" }, "Status: " + (r.data.status || "?") +
    (r.data.loaded_at ? " · loaded " + fmtTime(typeof r.data.loaded_at === "number" ? new Date(r.data.loaded_at * 1000).toISOString() : r.data.loaded_at) : "")));
  for (const f of r.data.flows || []) {
    box.append(h("div", { dataset: { flow: f.name } }, h("b", {}, f.name), " · ", f.file || "", " · version ", String(f.version || ""),
      (f.numbers || []).length ? " · numbers " + f.numbers.join(", ") : "", " · ",
      h("a", { href: "/api/flows/" + encodeURIComponent(f.name) + "/graph", target: "_blank", rel: "noopener" }, "picture")));
  }
  for (const e of r.data.errors || []) {
    box.append(h("div", { class: "msg error" }, (e.file || "") + (e.line ? ":" + e.line : "") + ": " + (e.message || "") + (e.id ? " [" + e.id + "]" : "")));
  }
  if (!(r.data.flows || []).length && !(r.data.errors || []).length) box.append("No flows.");
}

async function reloadFlows() {
  const r = await api("POST", "/api/flows/reload");
  msg("flows-msg", r, "Flows reloaded.");
  showFlows(r); loadAudit();
}

async function fetchAudit(offset, limit) {
  const r = await api("GET", "/api/admin/audit?limit=" + limit + "&offset=" + offset);
  return r.ok ? r.data.entries : null;
}

function showAudit(entries) {
  const body = clear($("audit").tBodies[0]);
  for (const e of entries) {
    body.append(h("tr", {}, h("td", {}, fmtTime(e.at)), h("td", {}, e.username + (e.role ? " (" + e.role + ")" : "")),
      h("td", {}, e.action), h("td", {}, e.target), h("td", { class: "num" }, e.status), h("td", {}, JSON.stringify(e.detail))));
  }
}

const calls = serverPager($("calls-pager"), fetchCalls, showCalls);
const audit = serverPager($("audit-pager"), fetchAudit, showAudit);
const loadCalls = () => calls.first();
const loadAudit = () => audit.first();

async function start() {
  await loadSession(["admin"]);
  const sel = document.querySelector("select[name=end_reason]");
  for (const r of REASONS) sel.append(h("option", { value: r }, r));
  $("call-filter").addEventListener("submit", (ev) => { ev.preventDefault(); loadCalls(); });
  $("import").addEventListener("click", importCsv);
  $("flows-reload").addEventListener("click", reloadFlows);
  await Promise.all([loadCalls(), loadFlows(), loadAudit(),
    mountEntries({ onChange: () => { reloadMembers(); loadAudit(); } }),
    mountMembers($("members"), $("members-msg"), { onChange: () => { loadEntries(); loadAudit(); } })]);
}

start();
