// The skill groups' members, moved while running (the wall board and the admin page): each
// group's members with their live state and skill level, a level changed, a member removed,
// an agent added. Every change carries the version of the group the page shows; a group
// changed meanwhile (by another page) is refused by the server, reloaded here and said so,
// never overwritten. Text is only ever set as text: nothing from the server is parsed as HTML.
import { api, clear, h } from "/static/js/common.js";

const MAX_LEVEL = 1000;
const STATE_EVERY = 3000;     // the agents' states are read again this often (ms)
const M = { root: null, msg: null, onChange: null, groups: new Map(), agents: new Map(),
  busy: new Set() };

const path = (group, agent) =>
  "/api/admin/groups/" + encodeURIComponent(group) + "/members/" + encodeURIComponent(agent);
const agentName = (id) => (M.agents.get(id) || {}).name || id;

function say(ok, text) {
  M.msg.className = "msg " + (ok ? "ok" : "error");
  M.msg.textContent = text;
}

function refused(r) {
  return (r.data.message || "Refused.") + (r.data.error ? " [" + r.data.error + "]" : "");
}

function stateBadge(id) {
  const a = M.agents.get(id) || {};
  const state = a.state || "offline";
  return [h("span", { class: "state-badge state-" + state }, state),
    a.pending ? " → " + a.pending : ""];
}

function levelInput(label, value) {
  return h("input", { type: "number", class: "level", min: "0", max: String(MAX_LEVEL),
    step: "1", required: "", value: String(value), "aria-label": label });
}

// A level as typed: a whole number, or the text itself (the server refuses it, with its id).
function levelOf(input) {
  const n = input.valueAsNumber;
  return Number.isInteger(n) ? n : input.value;
}

function memberRow(g, id, level) {
  const input = levelInput("skill level of " + id + " in " + g.name, level);
  input.addEventListener("change", () => change(g.name, id, levelOf(input)));
  return h("tr", { dataset: { agent: id } },
    h("td", {}, agentName(id)),
    h("td", {}, id),
    h("td", { dataset: { f: "state" } }, stateBadge(id)),
    h("td", {}, input),
    h("td", {}, h("button", { type: "button", class: "remove-member",
      title: "take " + id + " out of " + g.name, on: { click: () => change(g.name, id, null) } },
    "Remove")));
}

function addRow(g) {
  const outside = [...M.agents.keys()].filter((id) => !(id in g.members)).sort();
  if (!outside.length) return h("p", { class: "muted none" }, "Every agent is a member.");
  const pick = h("select", { class: "add-agent", "aria-label": "agent to add to " + g.name },
    ...outside.map((id) => h("option", { value: id }, agentName(id) + " (" + id + ")")));
  const level = levelInput("skill level for the agent added to " + g.name, 1);
  const add = h("button", { type: "button", class: "add-member",
    on: { click: () => change(g.name, pick.value, levelOf(level)) } }, "Add");
  return h("div", { class: "row add-row" },
    h("label", {}, "Add agent ", pick), h("label", {}, "level ", level), add);
}

function groupBox(g) {
  const live = g.live || {};
  const ids = Object.keys(g.members).sort();
  const facts = [g.number ? "number " + g.number : "", live.waiting ? live.waiting + " waiting" : ""]
    .filter(Boolean).join(" · ");
  return h("div", { class: "member-group", dataset: { group: g.name, version: g.members_version },
    role: "group", "aria-label": "skill group " + g.name },
  h("h3", {}, g.name, facts ? h("span", { class: "muted" }, " · " + facts) : null),
  ids.length
    ? h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Agent"), h("th", {}, "Id"),
      h("th", {}, "State"), h("th", {}, "Skill level"), h("th", {}))),
    h("tbody", {}, ...ids.map((id) => memberRow(g, id, g.members[id]))))
    : h("p", { class: "muted none" }, "No members."),
  addRow(g));
}

function redraw(name) {
  const g = M.groups.get(name);
  const old = M.root.querySelector(`.member-group[data-group="${CSS.escape(name)}"]`);
  if (g && old) old.replaceWith(groupBox(g));
}

function render() {
  clear(M.root);
  for (const g of M.groups.values()) M.root.append(groupBox(g));
}

// The groups and agents as the server has them now (the whole panel drawn again).
async function load() {
  const [groups, agents] = await Promise.all([api("GET", "/api/admin/groups"),
    api("GET", "/api/admin/agents")]);
  if (!groups.ok || !agents.ok) { say(false, refused(groups.ok ? agents : groups)); return false; }
  M.agents = new Map(agents.data.agents.map((a) => [a.agent_id, a]));
  M.groups = new Map(groups.data.groups.map((g) => [g.name, { ...g, members: g.members || {} }]));
  render();
  return true;
}

// level: a number (add the agent, or change their level), null (take them out).
async function change(group, agent, level) {
  const g = M.groups.get(group);
  if (!g || M.busy.has(group)) return;
  M.busy.add(group);
  const box = M.root.querySelector(`.member-group[data-group="${CSS.escape(group)}"]`);
  for (const el of box ? box.querySelectorAll("input, select, button") : []) el.disabled = true;
  const before = g.members[agent];
  const r = level === null
    ? await api("DELETE", path(group, agent) + "?version=" + encodeURIComponent(g.members_version))
    : await api("PUT", path(group, agent), { level, version: g.members_version });
  M.busy.delete(group);
  if (r.ok) {
    g.members = r.data.members || {};
    g.members_version = r.data.members_version;
    redraw(group);
    say(true, level === null ? agentName(agent) + " (" + agent + ") taken out of " + group + "."
      : before === undefined ? agentName(agent) + " (" + agent + ") added to " + group + " at level " + level + "."
        : agentName(agent) + " (" + agent + ") in " + group + ": level " + before + " → " + level + ".");
    if (M.onChange) M.onChange();
  } else if (r.status === 409 && r.data.error === "admin.conflict") {
    await load();
    say(false, group + " changed meanwhile: reloaded. Nothing was changed; look again and " +
      "try again. [admin.conflict]");
    if (M.onChange) M.onChange();
  } else {
    redraw(group);             // the level as it was
    say(false, refused(r));
  }
}

// The members' live states (and pending states), in place: inputs being edited stay as typed.
async function refreshStates() {
  if (document.hidden || !M.groups.size) return;
  const r = await api("GET", "/api/admin/agents");
  if (!r.ok) return;
  for (const a of r.data.agents) M.agents.set(a.agent_id, a);
  for (const td of M.root.querySelectorAll("tr[data-agent] td[data-f=state]")) {
    clear(td).append(...stateBadge(td.parentElement.dataset.agent));
  }
}

// The groups and agents read again (after agents or groups were made or removed elsewhere).
export async function reloadMembers() {
  if (M.root) await load();
}

// Mount the panel in root (messages in msg); onChange runs after each change the server
// took (or refused as changed meanwhile), e.g. to show other tables again.
export async function mountMembers(root, msg, { onChange } = {}) {
  M.root = root; M.msg = msg; M.onChange = onChange || null;
  const reload = document.getElementById("members-reload");
  if (reload) reload.addEventListener("click", async () => { if (await load()) say(true, "Reloaded."); });
  await load();
  setInterval(refreshStates, STATE_EVERY);
}
