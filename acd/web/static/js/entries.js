// Agents, skill groups and web users on the admin page: created, changed and removed while the
// server runs (POST/PUT/DELETE /api/admin/{agents,groups,users}). Every change carries the
// version the page shows: one made meanwhile on another page is refused, reloaded and said
// so. New passwords are shown once, in a box that says so, and never again. Entries from
// config.yaml are marked: a later edit of the file wins for what it changes.
// Text is only ever set as text: nothing from the server is parsed as HTML.
import { api, clear, h } from "/static/js/common.js";
import { localPager } from "/static/js/pager.js";

const E = { msgs: {}, onChange: null, kind: "agents" };
const $ = (id) => document.getElementById(id);
const STRATEGIES = ["longest_idle", "round_robin", "fewest_calls", "skill_level", "random"];
// The group settings the page edits as fields (every other key of groups[] in config.yaml is
// kept as it is; the API takes them all).
const GROUP_FIELDS = [
  ["number", "text", "number"], ["strategy", "select", "strategy"],
  ["ring_timeout", "number", "ring timeout (s)"], ["wrapup_seconds", "number", "wrap-up (s)"],
  ["service_level_seconds", "number", "service level (s)"],
  ["service_level_target", "number", "service level target (0-1)"],
  ["max_wait", "number", "max wait (s, empty: none)"],
  ["max_queue_length", "number", "max queue length (empty: none)"],
  ["hours", "list", "hours (e.g. mon-fri 09:00-18:00; …)"], ["timezone", "text", "time zone"],
  ["record", "text", "record (none, all, or a share)"],
];

// Each panel has its message line: the answer shows where the button was.
function say(ok, text, kind = E.kind) {
  for (const el of Object.values(E.msgs)) { if (el) el.textContent = ""; }
  const el = E.msgs[kind] || E.msgs.agents;
  el.className = "msg " + (ok ? "ok" : "error");
  el.textContent = text;
}

function refused(r) {
  return (r.data.message || "Refused.") + (r.data.error ? " [" + r.data.error + "]" : "");
}

// Passwords the server made: shown once, with the warning that they are not shown again.
function showSecrets(what, secrets) {
  const box = clear($("entry-secrets"));
  (E.msgs[E.kind] || E.msgs.agents).after(box);     // under the answer, in its panel
  const names = Object.keys(secrets || {});
  if (!names.length) { box.hidden = true; return; }
  box.hidden = false;
  box.append(h("b", {}, "Passwords for " + what + " — shown this once: copy them now."),
    h("dl", {}, names.map((n) => [h("dt", {}, n.replace(/_/g, " ")),
      h("dd", {}, h("code", { class: "secret", dataset: { secret: n } }, secrets[n]))])),
    h("button", { type: "button", on: { click: () => { clear(box); box.hidden = true; } } }, "Done"));
}

async function send(method, path, body, okText, what) {
  E.kind = path.split("/")[3];          // /api/admin/<kind>...
  const r = await api(method, path, body);
  if (r.ok) {
    say(true, okText + (r.data.asterisk === "reloaded" ? " Asterisk has it now." :
      r.data.asterisk === "not_managed" ? " (Asterisk is not managed here: add the endpoint there.)" : ""));
    if (r.data.secrets) showSecrets(what, r.data.secrets);
  } else {
    say(false, refused(r) + (r.data.error === "admin.conflict" ? " The list was reloaded." : ""));
  }
  await load();
  if (E.onChange) E.onChange();
  return r;
}

const enc = encodeURIComponent;
const origin = (x) => h("span", { class: "origin muted", title: x.origin === "config.yaml" ?
  "from config.yaml: a later edit of the file wins" : "made on this page" }, x.origin || "");

// ---- agents

function agentRow(a) {
  const name = h("input", { value: a.name || "", maxlength: "80", "aria-label": "name of " + a.agent_id });
  const path = "/api/admin/agents/" + enc(a.agent_id);
  return h("tr", { dataset: { agent: a.agent_id } },
    h("td", {}, a.agent_id), h("td", {}, name), h("td", {}, origin(a)),
    h("td", {}, Object.entries(a.groups).map(([g, l]) => g + " (" + l + ")").join(", ")),
    h("td", {}, h("span", { class: "state-badge state-" + a.state }, a.state)),
    h("td", { class: "actions" },
      h("button", { type: "button", class: "save", on: { click: () => send("PUT", path,
        { version: a.version, name: name.value }, "Agent " + a.agent_id + " saved.") } }, "Save"),
      h("button", { type: "button", class: "new-sip", on: { click: () => send("PUT", path,
        { version: a.version, new_secrets: ["password"] }, "New SIP password for " + a.agent_id + ".",
        "agent " + a.agent_id) } }, "New SIP password"),
      h("button", { type: "button", class: "new-web", on: { click: () => send("PUT", path,
        { version: a.version, new_secrets: ["web_password"] }, "New web password for " + a.agent_id + ".",
        "agent " + a.agent_id) } }, "New web password"),
      h("button", { type: "button", class: "remove", on: { click: () => {
        if (confirm("Remove agent " + a.agent_id + "? Their memberships go too.")) {
          send("DELETE", path + "?version=" + enc(a.version), undefined, "Agent " + a.agent_id + " removed.");
        }
      } } }, "Remove")));
}

// ---- groups

function fieldInput(g, [key, kind, label]) {
  const v = g[key];
  if (kind === "select") {
    return h("select", { name: key, "aria-label": label },
      STRATEGIES.map((s) => h("option", { value: s, selected: s === v }, s)));
  }
  const text = v === null || v === undefined ? "" : kind === "list" ? v.join("; ") : String(v);
  return h("input", { name: key, value: text, "aria-label": label, placeholder: label,
    inputmode: kind === "number" ? "decimal" : null });
}

// The form's fields as the API takes them: numbers as numbers (a text that is none is sent as
// typed: the server refuses it with its id), empty optional numbers as null, lists split.
function fieldsOf(form) {
  const out = {};
  for (const [key, kind] of GROUP_FIELDS) {
    const el = form.querySelector("[name=" + key + "]");
    if (!el) continue;
    const raw = el.value.trim();
    if (kind === "number") out[key] = raw === "" ? null : (Number.isFinite(Number(raw)) ? Number(raw) : raw);
    else if (kind === "list") out[key] = raw ? raw.split(";").map((x) => x.trim()).filter(Boolean) : [];
    else out[key] = raw;
  }
  for (const k of ["ring_timeout", "wrapup_seconds", "service_level_seconds", "service_level_target"]) {
    if (out[k] === null) delete out[k];      // not optional: left as they are
  }
  return out;
}

// One line a person reads; the fields open below it.
function groupSummary(g) {
  return [g.number ? "number " + g.number : "no number", g.strategy,
    "ring " + g.ring_timeout + " s", "wrap-up " + g.wrapup_seconds + " s",
    "service level " + Math.round(g.service_level_target * 100) + " % in " + g.service_level_seconds + " s",
    g.max_wait !== null ? "max wait " + g.max_wait + " s" : null,
    (g.hours || []).length ? "hours " + g.hours.join(", ") : "always open",
    g.record !== "none" ? "recorded: " + g.record : null].filter(Boolean).join(" · ");
}

function groupRow(g) {
  const form = h("div", { class: "group-fields" }, GROUP_FIELDS.map((f) =>
    h("label", {}, h("span", { class: "muted" }, f[2]), fieldInput(g, f))));
  const path = "/api/admin/groups/" + enc(g.name);
  return h("tr", { dataset: { group: g.name } },
    h("td", {}, g.name), h("td", {}, origin(g)),
    h("td", {}, h("details", {}, h("summary", {}, groupSummary(g)), form)),
    h("td", { class: "actions" },
      h("button", { type: "button", class: "save", on: { click: () => send("PUT", path,
        { version: g.version, ...fieldsOf(form) }, "Group " + g.name + " saved: from its next call on.") } }, "Save"),
      h("button", { type: "button", class: "remove", on: { click: () => {
        if (confirm("Remove skill group " + g.name + "?")) {
          send("DELETE", path + "?version=" + enc(g.version), undefined, "Group " + g.name + " removed.");
        }
      } } }, "Remove")));
}

// ---- users (supervisors and admins; agents log in as themselves)

function userRow(u) {
  const role = h("select", { "aria-label": "role of " + u.username },
    ["supervisor", "admin"].map((r) => h("option", { value: r, selected: r === u.role }, r)));
  const phone = h("input", { value: u.phone || "", maxlength: "40", placeholder: "phone (to listen)",
    "aria-label": "phone of " + u.username });
  const groups = h("input", { value: (u.groups || []).join(", "), maxlength: "400",
    placeholder: "all groups", class: "user-groups", "aria-label": "skill groups " + u.username + " manages" });
  const path = "/api/admin/users/" + enc(u.username);
  return h("tr", { dataset: { user: u.username } },
    h("td", {}, u.username), h("td", {}, role), h("td", {}, phone), h("td", {}, groups), h("td", {}, origin(u)),
    h("td", { class: "num" }, u.sessions),
    h("td", { class: "actions" },
      h("button", { type: "button", class: "save", on: { click: () => send("PUT", path,
        { version: u.version, role: role.value, phone: phone.value.trim(),
          groups: groups.value.split(",").map((x) => x.trim()).filter(Boolean) }, "User " + u.username + " saved.",
        "user " + u.username) } }, "Save"),
      h("button", { type: "button", class: "new-password", on: { click: () => send("PUT", path,
        { version: u.version, new_secrets: ["password"] }, "New password for " + u.username + ".",
        "user " + u.username) } }, "New password"),
      h("button", { type: "button", on: { click: async () => {
        const x = await api("POST", path + "/logout");
        say(x.ok, x.ok ? "Sessions of " + u.username + " ended." : refused(x), "users"); load();
      } } }, "End sessions"),
      h("button", { type: "button", class: "remove", on: { click: () => {
        if (confirm("Remove web user " + u.username + "? Their sessions end.")) {
          send("DELETE", path + "?version=" + enc(u.version), undefined, "User " + u.username + " removed.");
        }
      } } }, "Remove")));
}

const pagers = {};
function pagerOf(table, row) {
  if (!pagers[table]) {
    pagers[table] = localPager($(table + "-pager"), (rows) => clear($(table).tBodies[0]).append(...rows.map(row)));
  }
  return pagers[table];
}

export async function load() {
  const [a, g, u] = await Promise.all([api("GET", "/api/admin/agents"), api("GET", "/api/admin/groups"),
    api("GET", "/api/admin/users")]);
  pagerOf("agents", agentRow).set((a.ok && a.data.agents) || []);
  pagerOf("groups", groupRow).set((g.ok && g.data.groups) || []);
  pagerOf("users", userRow).set(((u.ok && u.data.users) || []).filter((x) => x.version));
}

function formBody(form) {
  const out = {};
  for (const [k, v] of new FormData(form)) if (String(v).trim()) out[k] = String(v).trim();
  return out;
}

export async function mountEntries({ onChange } = {}) {
  E.msgs = { agents: $("entries-msg"), groups: $("groups-msg"), users: $("users-msg") };
  E.onChange = onChange;
  $("add-agent").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = formBody(ev.currentTarget);
    const r = await send("POST", "/api/admin/agents", body, "Agent " + (body.id || "") + " created.",
      "agent " + (body.id || ""));
    if (r.ok) ev.target.reset();
  });
  $("add-group").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = formBody(ev.currentTarget);
    if (body.wrapup_seconds) body.wrapup_seconds = Number(body.wrapup_seconds);
    const r = await send("POST", "/api/admin/groups", body, "Group " + (body.name || "") + " created.");
    if (r.ok) ev.target.reset();
  });
  $("add-user").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = formBody(ev.currentTarget);
    const r = await send("POST", "/api/admin/users", body, "User " + (body.username || "") + " created.",
      "user " + (body.username || ""));
    if (r.ok) ev.target.reset();
  });
  const strategy = $("add-group").querySelector("select[name=strategy]");
  for (const s of STRATEGIES) strategy.append(h("option", { value: s }, s));
  await load();
}
