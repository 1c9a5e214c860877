// One call's record on the admin page: its timeline (every event with its time), the legs
// (each agent's part: talk, hold, wrap-up), the key trail (every key the caller pressed, at
// which node), from GET /api/calls/{uniqueid}. Text only: a caller's name or keys are data.
import { api, clear, fmtDuration, fmtTime, h } from "/static/js/common.js";

function detailText(d) {
  if (d === null || d === undefined || d === "") return "";
  if (typeof d !== "object") return String(d);
  return Object.entries(d).map(([k, v]) => k + ": " + (typeof v === "object" ? JSON.stringify(v) : v)).join(", ");
}

function table(cls, head, rows) {
  return h("table", { class: cls }, h("thead", {}, h("tr", {}, head.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows));
}

export async function showCall(cell, uniqueid) {
  const r = await api("GET", "/api/calls/" + encodeURIComponent(uniqueid));
  clear(cell);
  if (!r.ok) {
    cell.append(h("p", { class: "msg error" }, (r.data.message || "Refused.") + " [" + (r.data.error || "") + "]"));
    return;
  }
  const c = r.data;
  cell.append(
    h("p", {}, h("b", {}, c.caller_number || "unknown"), c.caller_name ? " (" + c.caller_name + ")" : "",
      " · dialled " + (c.did || "?"), " · ", c.skill_group || "no group", " · ", c.end_reason || "in progress",
      c.rating !== null && c.rating !== undefined ? " · rated " + c.rating : "",
      c.verification ? " · " + c.verification + (c.verification_method ? " (" + c.verification_method + ")" : "") : ""),
    h("h4", {}, "Timeline"),
    table("call-timeline", ["When", "What", "Detail"], (c.events || []).map((e) =>
      h("tr", {}, h("td", {}, fmtTime(e.at)), h("td", {}, e.kind), h("td", {}, detailText(e.detail))))),
    h("h4", {}, "Legs"),
    (c.legs || []).length ? table("call-legs", ["Agent", "Role", "From", "To", "Talk", "Hold", "Wrap-up", "End"],
      c.legs.map((l) => h("tr", {}, h("td", {}, l.agent_id), h("td", {}, l.role), h("td", {}, fmtTime(l.started_at)),
        h("td", {}, fmtTime(l.ended_at)), h("td", {}, fmtDuration(l.talk_seconds)),
        h("td", {}, fmtDuration(l.hold_seconds)), h("td", {}, fmtDuration(l.wrapup_seconds)),
        h("td", {}, l.reason || "")))) : h("p", { class: "muted" }, "No agent took part."),
    h("h4", {}, "Key trail"),
    (c.key_trail || []).length ? table("call-keys", ["When", "Node", "Keys"], c.key_trail.map((k) =>
      h("tr", {}, h("td", {}, fmtTime(k.at)), h("td", {}, k.node), h("td", {}, h("code", {}, k.keys)))))
      : h("p", { class: "muted" }, "No keys pressed."));
}
