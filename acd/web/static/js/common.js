// Shared helpers for the pages. Text is only ever set with text nodes (textContent): nothing
// that comes from the server, and so nothing a caller controls, is parsed as HTML.

export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "on") { for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn); }
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "text") el.textContent = String(v);
    else if (k === "value") el.value = v;
    else if (k === "disabled" || k === "checked" || k === "selected") el[k] = Boolean(v);
    else if (k.startsWith("on")) throw new Error("use the on: {} property for handlers");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

export function setText(id, text) {
  const el = typeof id === "string" ? document.getElementById(id) : id;
  if (el) el.textContent = text === null || text === undefined ? "" : String(text);
  return el;
}

export const session = { csrf: "", user: null };

function toLogin() {
  const next = location.pathname + location.search;
  location.assign("/login?next=" + encodeURIComponent(next));
}

// fetch JSON; state-changing requests carry the session's CSRF token.
export async function api(method, path, body, { raw = false, contentType } = {}) {
  const headers = { "Accept": "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = session.csrf;
  let payload;
  if (body !== undefined) {
    if (contentType) { headers["Content-Type"] = contentType; payload = body; }
    else { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  }
  let r;
  try {
    r = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  } catch (e) {
    return { ok: false, status: 0, data: { error: "network", message: "The server cannot be reached." } };
  }
  if (r.status === 401 && !path.startsWith("/api/auth/login")) { toLogin(); }
  if (raw) return r;
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  return { ok: r.ok, status: r.status, data: data || {} };
}

export async function loadSession(role) {
  const r = await api("GET", "/api/auth/me");
  if (!r.ok) { toLogin(); throw new Error("not logged in"); }
  session.csrf = r.data.csrf;
  session.user = r.data;
  if (role && !role.includes(r.data.role)) { location.assign(r.data.home || "/"); throw new Error("wrong page"); }
  const who = document.getElementById("who");
  if (who) who.textContent = r.data.username + " (" + r.data.role + ")";
  const out = document.getElementById("logout");
  if (out) out.addEventListener("click", async () => {
    await api("POST", "/api/auth/logout");
    location.assign("/login");
  });
  return r.data;
}

export function fmtDuration(sec) {
  if (sec === null || sec === undefined || isNaN(sec)) return "–";
  sec = Math.max(0, Math.floor(sec));
  const h = Math.floor(sec / 3600), m = Math.floor((sec % 3600) / 60), s = sec % 60;
  const two = (n) => String(n).padStart(2, "0");
  return (h ? h + ":" + two(m) : String(m)) + ":" + two(s);
}

export function fmtPercent(x) {
  return x === null || x === undefined ? "–" : (x * 100).toFixed(1) + " %";
}

export function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? "" : d.toLocaleString();
}

// A WebSocket that reconnects (with a fresh snapshot from the server) after a reload, a
// network loss or a server restart. onStatus gets "connecting", "live" or "offline";
// onMessage(msg, send) may answer on the socket with send(object) (sent as JSON).
export function liveSocket(path, onMessage, onStatus) {
  let ws = null, delay = 500, stopped = false, opened = 0;
  function open() {
    onStatus("connecting");
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
    ws = new WebSocket(url);
    ws.onopen = () => { opened += 1; onStatus("live", opened); };
    ws.onmessage = (ev) => {
      delay = 500;    // served (a socket refused at once, 1008 too many open, keeps backing off)
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      const socket = ws;
      onMessage(msg, (obj) => { if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(obj)); });
    };
    ws.onclose = async () => {
      onStatus("offline");
      if (stopped) return;
      await api("GET", "/api/auth/me");           // an ended session goes to the login page
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 8000);
    };
  }
  open();
  return { close() { stopped = true; if (ws) ws.close(); } };
}
