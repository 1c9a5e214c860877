// The agent page as the phone (JsSIP over WebSocket to Asterisk, WebRTC audio), and the ring
// that no agent can miss, whatever their phone: a banner with the caller, a sound, the tab's
// title, a desktop notification where the agent allowed it.
import { api, clear, h, setText } from "/static/js/common.js";

const $ = (id) => document.getElementById(id);
const P = { pageId: (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2)), agentId: "", ua: null, session: null, kind: "sip", stream: null, meter: null,
            ringing: false, title: "", blink: null, notice: null, onChange: () => {} };

// --- the ring (any phone) ---------------------------------------------------------------
function ringTone() {
  // A ring-back style cadence (440 + 480 Hz, 2 s on, 4 s off) as a WAV made here: no file.
  const rate = 8000, on = 2 * rate, total = 6 * rate;
  const buf = new DataView(new ArrayBuffer(44 + total * 2));
  const str = (o, s) => { for (let i = 0; i < s.length; i++) buf.setUint8(o + i, s.charCodeAt(i)); };
  str(0, "RIFF"); buf.setUint32(4, 36 + total * 2, true); str(8, "WAVEfmt ");
  buf.setUint32(16, 16, true); buf.setUint16(20, 1, true); buf.setUint16(22, 1, true);
  buf.setUint32(24, rate, true); buf.setUint32(28, rate * 2, true); buf.setUint16(32, 2, true);
  buf.setUint16(34, 16, true); str(36, "data"); buf.setUint32(40, total * 2, true);
  for (let i = 0; i < on; i++) {
    const t = i / rate;
    buf.setInt16(44 + i * 2, 6000 * (Math.sin(2 * Math.PI * 440 * t) + Math.sin(2 * Math.PI * 480 * t)), true);
  }
  return URL.createObjectURL(new Blob([buf], { type: "audio/wav" }));
}

export function ring(caller, group) {
  // the ACD rings this agent (their SIP phone or this page): say so everywhere
  const banner = $("ring-banner");
  setText("ring-caller", caller || "unknown number");
  setText("ring-group", group ? "for " + group : "");
  const browser = P.kind === "browser";
  $("answer").hidden = $("decline").hidden = !browser;
  $("answer").disabled = !P.session || P.session.isEstablished();
  $("decline").disabled = !P.session;
  setText("ring-hint", browser ? (P.session ? "" : "connecting the call to this page…") : "Answer on your phone.");
  banner.hidden = false;
  const known = P.caller;
  P.caller = caller || "call";
  if (P.caller !== known) notify(caller, group);      // the caller is known (or better known)
  if (P.ringing) { if (document.title !== P.title) document.title = "☎ Ringing: " + P.caller; return; }
  P.ringing = true;
  const sound = $("ring-sound");
  if (!sound.src) sound.src = ringTone();
  sound.currentTime = 0;
  sound.play().catch(() => setText("ring-hint", "Click the page once so it may ring aloud."));
  P.title = document.title;
  let on = false;
  P.blink = setInterval(() => { on = !on; document.title = on ? "☎ Ringing: " + P.caller : P.title; }, 800);
  document.title = "☎ Ringing: " + P.caller;
}

function notify(caller, group) {
  // a desktop notification, if the agent allowed them (one at a time: the same tag replaces it)
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  try {
    const n = new Notification("Incoming call", { body: (caller || "unknown number") + (group ? " · " + group : ""), tag: "acd-ring", requireInteraction: true });
    n.onclick = () => { window.focus(); n.close(); };
    if (P.notice) P.notice.close();
    P.notice = n;
  } catch (e) { P.notice = null; }           // some browsers allow notifications only from a worker
}

export function stopRinging() {
  $("ring-banner").hidden = true;
  if (!P.ringing) return;
  P.ringing = false;
  P.caller = "";
  $("ring-sound").pause();
  clearInterval(P.blink);
  document.title = P.title;
  if (P.notice) { P.notice.close(); P.notice = null; }
}

export function askNotifications() {
  // asked on a click of the agent's (a permission prompt needs one)
  if ("Notification" in window && Notification.permission === "default") Notification.requestPermission();
}

// --- the browser phone --------------------------------------------------------------------
function loadJsSIP() {
  if (window.JsSIP) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = "/vendor/jssip.js";
    s.onload = resolve;
    s.onerror = () => reject(new Error("JsSIP could not be loaded"));
    document.head.append(s);
  });
}

function status(text, cls) {
  const el = $("phone-status");
  el.textContent = text;
  el.className = cls || "muted";
}

function controls() {
  const live = Boolean(P.session && P.session.isEstablished());
  $("browser-controls").hidden = P.kind !== "browser";
  for (const b of document.querySelectorAll("#browser-controls button")) b.disabled = !live;
  const muted = live && P.session.isMuted().audio;
  $("mute").textContent = muted ? "Unmute" : "Mute";
  $("mute").setAttribute("aria-pressed", muted ? "true" : "false");
  P.onChange();
}

// The microphone and the speaker: the browser's devices (their names once the microphone
// was allowed), the choice kept in this browser. The microphone is taken at the next answer;
// the speaker at once (where the browser can send audio to a chosen output).
const MIC_KEY = "acd.mic", SPEAKER_KEY = "acd.speaker";

export async function listDevices() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
  const all = await navigator.mediaDevices.enumerateDevices();
  for (const [id, kind, key, none] of [["mic", "audioinput", MIC_KEY, "the browser's default"],
    ["speaker", "audiooutput", SPEAKER_KEY, "the browser's default"]]) {
    const sel = clear($(id));
    sel.append(h("option", { value: "" }, none));
    for (const d of all.filter((x) => x.kind === kind && x.deviceId && x.deviceId !== "default")) {
      sel.append(h("option", { value: d.deviceId }, d.label || kind));
    }
    sel.value = localStorage.getItem(key) || "";
    if (sel.value !== (localStorage.getItem(key) || "")) sel.value = "";
  }
  $("speaker").disabled = typeof $("remote-audio").setSinkId !== "function";
}

function micConstraint() {
  const id = $("mic").value;
  return id ? { deviceId: { exact: id } } : true;
}

async function useSpeaker() {
  const el = $("remote-audio");
  if (typeof el.setSinkId === "function") {
    try { await el.setSinkId($("speaker").value); } catch (e) { status("The speaker cannot be used: " + e.message, "msg error"); }
  }
}

// My level: an analyser on what the page sends (the chosen microphone).
function meterOwn(pc) {
  const sender = pc.getSenders().find((s) => s.track && s.track.kind === "audio");
  if (!sender) return;
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 2048;
  ctx.createMediaStreamSource(new MediaStream([sender.track])).connect(analyser);
  P.micMeter = { ctx, analyser };
  const data = new Float32Array(analyser.fftSize);
  const tick = () => {
    if (!P.micMeter || P.micMeter.analyser !== analyser) return;
    analyser.getFloatTimeDomainData(data);
    let sum = 0;
    for (const x of data) sum += x * x;
    $("mic-level").value = Math.min(1, Math.sqrt(sum / data.length) * 4);
    setTimeout(tick, 100);
  };
  tick();
}

function hearRemote(pc) {
  pc.addEventListener("track", (e) => {
    const stream = e.streams[0] || new MediaStream([e.track]);
    P.stream = stream;
    const el = $("remote-audio");
    el.srcObject = stream;
    el.play().catch(() => {});
    // the level meter: an analyser on what the caller sends
    const ctx = new AudioContext();
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 2048;
    ctx.createMediaStreamSource(stream).connect(analyser);
    P.meter = { ctx, analyser };
    const data = new Float32Array(analyser.fftSize);
    const tick = () => {
      if (!P.meter || P.meter.analyser !== analyser) return;
      analyser.getFloatTimeDomainData(data);
      let sum = 0;
      for (const x of data) sum += x * x;
      $("level").value = Math.min(1, Math.sqrt(sum / data.length) * 4);
      setTimeout(tick, 100);
    };
    tick();
  });
}

function endSession() {
  P.session = null;
  if (P.meter) { P.meter.ctx.close(); P.meter = null; }
  if (P.micMeter) { P.micMeter.ctx.close(); P.micMeter = null; }
  $("level").value = 0;
  $("mic-level").value = 0;
  controls();
  if (P.moved) { const msg = P.moved; P.moved = null; phoneMoved(msg); }
  if (P.again) { P.again = false; liveAgain(); }
}

const LOOPBACK = /^(127\.|::1$)/;

export function onlyReachable(sdp, serverHost) {
  // The candidates this page offers Asterisk: UDP (Asterisk has no ICE-TCP), of the family of
  // Asterisk's media address, and loopback
  // only when Asterisk's media address is loopback (a page on the same machine; the machine's
  // other addresses are none of its business); otherwise none of the loopback or mDNS ones.
  const loop = LOOPBACK.test(serverHost || "");
  const v6 = (serverHost || "").includes(":");
  return sdp.split("\r\n").filter((line) => {
    if (!line.startsWith("a=candidate:")) return true;
    const f = line.split(" ");
    const addr = f[4] || "";
    if ((f[2] || "").toLowerCase() !== "udp" || addr.endsWith(".local")) return false;
    if (addr.includes(":") !== v6) return false;              // Asterisk's address family
    return loop ? LOOPBACK.test(addr) : !LOOPBACK.test(addr);
  }).join("\r\n");
}

function incoming(session) {
  if (P.session) { session.terminate({ status_code: 486 }); return; }   // one call at a time
  P.session = session;
  let serverHost = "";
  session.on("sdp", (e) => {
    if (e.originator === "remote") serverHost = ((/^c=IN IP[46] (\S+)/m.exec(e.sdp) || [])[1]) || "";
    else { e.sdp = onlyReachable(e.sdp, serverHost); P.sentSdp = e.sdp; }
  });
  if (session.connection) hearRemote(session.connection);
  else session.on("peerconnection", (e) => hearRemote(e.peerconnection));
  for (const ev of ["ended", "failed"]) session.on(ev, () => { if (P.session === session) endSession(); });
  session.on("confirmed", controls);
  session.on("accepted", () => {
    controls();
    if (session.connection) meterOwn(session.connection);
    listDevices().then(useSpeaker);       // the devices' names, now that the microphone is allowed
  });
  controls();
}

async function startBrowser() {
  const r = await api("POST", "/api/agents/" + encodeURIComponent(P.agentId) + "/phone", { phone: "browser", page: P.pageId });
  if (!r.ok) { status((r.data.message || "refused") + (r.data.error ? " [" + r.data.error + "]" : ""), "error"); return false; }
  status("connecting…");
  await loadJsSIP();
  const c = r.data;
  const ua = new window.JsSIP.UA({
    sockets: [new window.JsSIP.WebSocketInterface(c.ws_url)], uri: c.uri, password: c.password,
    authorization_user: c.username, display_name: c.display_name, register: true,
    session_timers: false, user_agent: "acd agent page",
  });
  P.ua = ua;
  ua.on("registered", () => { if (P.ua === ua) { P.refusals = 0; status("this browser is your phone", "ok"); } });
  ua.on("unregistered", () => { if (P.ua === ua) status("not registered", "error"); });
  ua.on("registrationFailed", (e) => { if (P.ua === ua) refused(ua, e.cause); });
  ua.on("disconnected", () => { if (P.ua === ua) status("connection to the server lost; retrying…", "error"); });
  ua.on("newRTCSession", (e) => { if (e.originator === "remote") incoming(e.session); });
  ua.start();
  listDevices();
  return true;
}

// Asterisk refused the password (the server issued another meanwhile, or Asterisk lost the
// one it had): the page asks the server for a new one, a few times with a growing pause, then
// says so and stops trying. JsSIP itself would not try again until its WebSocket reconnects.
const MAX_REFUSALS = 3;
function refused(ua, cause) {
  P.refusals = (P.refusals || 0) + 1;
  const again = cause === window.JsSIP.C.causes.AUTHENTICATION_ERROR && P.refusals <= MAX_REFUSALS;
  status("refused by the server: " + cause + (again ? "; asking for a new password…" : ""), "error");
  if (!again) return;
  setTimeout(() => {
    if (P.ua !== ua || P.kind !== "browser") return;       // chosen otherwise meanwhile
    if (P.session) { P.again = true; return; }              // after the call
    stopBrowser();
    choose("browser");
  }, 1000 * 2 ** (P.refusals - 1));
}

function stopBrowser() {
  if (P.session) { try { P.session.terminate(); } catch (e) { /* already gone */ } }
  if (P.ua) { P.ua.stop(); P.ua = null; }
  endSession();
}

async function choose(kind) {
  P.kind = kind;
  $("phone-kind").value = kind;
  if (kind === "browser") {
    if (!P.ua && !(await startBrowser())) { P.kind = "sip"; $("phone-kind").value = "sip"; }
  } else if (P.ua) {
    stopBrowser();               // and the server takes the page's SIP password back
    await api("POST", "/api/agents/" + encodeURIComponent(P.agentId) + "/phone", { phone: "sip", page: P.pageId });
    status("");
  }
  controls();
}

// The page's live link is back (a network blip, or the server restarted: a restarted server
// has forgotten the passwords it issued). If the server no longer knows this page as the
// agent's phone, the page takes it again: a new password, and JsSIP registers with it. A
// call on the page goes on; this waits until it ends.
// One at a time: the live link can come back twice in a row (a second restart), and two
// takes at once would leave two user agents, one with a password the server replaced.
export function liveAgain() {
  if (P.kind !== "browser" || !P.ua) return Promise.resolve();
  if (P.session) { P.again = true; return Promise.resolve(); }
  if (!P.retaking) P.retaking = retake().finally(() => { P.retaking = null; });
  return P.retaking;
}

async function retake() {
  const r = await api("GET", "/api/agents/" + encodeURIComponent(P.agentId) + "/phone");
  if (!r.ok || r.data.phone === "browser" || P.session || !P.ua) return;
  stopBrowser();
  status("taking the phone again…");
  await choose("browser");
}

export function phoneMoved(msg) {
  // the server says which of the agent's pages is the phone now: if another, this one stops
  if (msg.page === P.pageId || !P.ua) return;
  if (P.session) {                 // never drop the call this page carries: after it
    P.moved = msg;
    status("another tab or window is your phone after this call", "error");
    return;
  }
  stopBrowser();
  P.kind = "sip";
  $("phone-kind").value = "sip";
  status(msg.phone === "browser" ? "another tab or window is your phone now" : "your SIP phone is your phone again", "error");
  controls();
}

export function onCall() {
  // a call on this page, or the ACD says the agent has one: closing the page would drop it
  return Boolean(P.session);
}

export function answer() {
  if (!P.session || P.session.isEstablished()) return;
  P.session.answer({ mediaConstraints: { audio: micConstraint(), video: false },
    pcConfig: { iceServers: [] } });
  $("answer").disabled = true;
}

export async function setupPhone(agentId, onChange) {
  P.agentId = agentId;
  P.onChange = onChange || P.onChange;
  window.acdPhone = P;                      // for a look from the browser's console
  $("answer").addEventListener("click", answer);
  $("decline").addEventListener("click", () => { if (P.session) P.session.terminate({ status_code: 486 }); });
  $("mute").addEventListener("click", () => {
    if (!P.session) return;
    if (P.session.isMuted().audio) P.session.unmute({ audio: true }); else P.session.mute({ audio: true });
    controls();
  });
  for (const b of document.querySelectorAll("#keypad button")) {
    b.addEventListener("click", () => { if (P.session) P.session.sendDTMF(b.dataset.key, { transportType: "RFC2833" }); });
  }
  $("phone-kind").addEventListener("change", () => choose($("phone-kind").value));
  $("mic").addEventListener("change", () => localStorage.setItem(MIC_KEY, $("mic").value));
  if (navigator.mediaDevices) navigator.mediaDevices.addEventListener("devicechange", listDevices);
  $("speaker").addEventListener("change", () => {
    localStorage.setItem(SPEAKER_KEY, $("speaker").value);
    useSpeaker();
  });
  // The page goes: unregister, but never hang up a call (no BYE): its WebSocket closes with
  // the page, Asterisk drops the contact, and the ACD takes the caller back to the queue.
  window.addEventListener("pagehide", () => { if (P.ua && !P.session) P.ua.stop(); });
  const r = await api("GET", "/api/agents/" + encodeURIComponent(agentId) + "/phone");
  if (!r.ok) return;
  $("phone-kind").querySelector("option[value=browser]").disabled = !r.data.browser_available;
  await choose(r.data.browser_available && (r.data.phone === "browser" || r.data.default === "browser") ? "browser" : "sip");
}
