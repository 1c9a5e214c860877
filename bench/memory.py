"""Measure 7: the memory of our server with 10,000 waiting callers and 5,000 agents.

Ten thousand real SIP calls do not fit on this machine, so the server's two peers are
played by this process, on loopback, speaking their real protocols:

* a small AMI server (Asterisk's side of AMI): it logs the server in, reports every agent's
  phone as reachable (``PJSIPShowContacts``), no channels, and answers every other action;
* 10,000 FastAGI sessions (Asterisk's side of FastAGI) of the ``queue`` script, one per
  caller, with the arguments the dialplan passes: they answer every command as Asterisk would;
  once the script sends the caller to the dialplan's wait (``ACD_NEXT``), the session ends and
  the caller waits "in Asterisk", as a real one does, with no session. The server runs with
  the default ``agi.max_sessions``: it never limits how many callers wait.

Callers enter a few at a time (``setup_window``), as callers arriving one after the other;
a burst of thousands at once makes the store's connection pool time out (SQLAlchemy's
``QueuePool limit of size 5 overflow 10 reached``, seen here) and the queue script fail, and
the dialplan then retries each a second later.

The server is the real one (``python -m acd run --no-asterisk``, SQLite store, HTTP API), in a
process of its own. The 5,000 agents are logged in and busy (so nobody is offered a call) the
way a restarted server finds them: in the store, taken up at start-up. (Logging 5,000 agents
in over the HTTP API takes minutes: each login builds the snapshot of every agent twice; the
time of one login is measured with a few more agents.) Its resident memory (``VmRSS``, and
the peak ``VmHWM``) is read from /proc with the agents, then with the 10,000 callers
waiting. The CPU it spends with them all waiting is noted too (nothing runs for a waiting
caller but the core's timers).
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from acd import config as configmod
from acd.asterisk import dialplan as dp
from acd.errors import UserError
from acd.tools.server_api import ServerApi, web_login
from acd.store.db import Store, migrate_async
from acd.web.auth import Auth, Passwords, users_from_config
from acd.web.webdb import WebDb
from bench import instance as inst
from bench.stats import summary


# --------------------------------------------------------------------------- fake AMI

class FakeAsteriskAmi:
    """Asterisk's side of AMI, as much as the server needs to start and take calls."""

    def __init__(self, username: str, secret: str, endpoints: list[str],
                 channels: dict[str, dict[str, str]] | None = None) -> None:
        self.username, self.secret = username, secret
        self.endpoints = endpoints
        # Channels waiting in [acd-queue]: name -> their headers and channel variables.
        self.channels = channels or {}
        self.port = 0
        self.actions: dict[str, int] = {}
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.transport.abort()

    @staticmethod
    def _msg(**fields: str) -> bytes:
        return "".join(f"{k}: {v}\r\n" for k, v in fields.items()).encode() + b"\r\n"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        try:
            while True:
                block = await reader.readuntil(b"\r\n\r\n")
                fields: dict[str, str] = {}
                for line in block.decode(errors="replace").split("\r\n"):
                    k, sep, v = line.partition(":")
                    if sep:
                        fields.setdefault(k.strip(), v.strip())
                self._answer(writer, fields)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:
            pass     # not re-raised: Python 3.11's start_server logs a cancelled callback task
        finally:
            self._writers.discard(writer)

    def _answer(self, w: asyncio.StreamWriter, f: dict[str, str]) -> None:
        action = f.get("Action", "").lower()
        aid = f.get("ActionID", "")
        self.actions[action] = self.actions.get(action, 0) + 1
        if action == "login":
            ok = f.get("Username") == self.username and f.get("Secret") == self.secret
            w.write(self._msg(Response="Success" if ok else "Error", ActionID=aid,
                              Message="Authentication accepted" if ok else "Authentication failed"))
        elif action == "coreshowchannels":
            w.write(self._msg(Response="Success", ActionID=aid, EventList="start",
                              Message="Channels will follow"))
            for name, c in self.channels.items():
                w.write(self._msg(Event="CoreShowChannel", ActionID=aid, Channel=name,
                                  Uniqueid=c["uniqueid"], Context=dp.QUEUE_CONTEXT, Extension="s",
                                  Priority="6", ChannelState="6", ChannelStateDesc="Up",
                                  CallerIDNum=c["number"], CallerIDName="Memory Bench",
                                  Application="AGI", BridgeId=""))
            w.write(self._msg(Event="CoreShowChannelsComplete", ActionID=aid,
                              EventList="Complete", ListItems=str(len(self.channels))))
        elif action == "pjsipshowcontacts":
            w.write(self._msg(Response="Success", ActionID=aid, EventList="start",
                              Message="A listing of Contacts follows"))
            for i, ep in enumerate(self.endpoints):
                w.write(self._msg(Event="ContactList", ActionID=aid, ObjectType="contact",
                                  ObjectName=f"{ep};@{i}", Aor=ep, Endpoint=ep,
                                  Uri=f"sip:{ep}@127.0.0.1:{20000 + i}", Status="Reachable"))
            w.write(self._msg(Event="ContactListComplete", ActionID=aid, EventList="Complete",
                              ListItems=str(len(self.endpoints))))
        elif action == "getvar":
            c = self.channels.get(f.get("Channel", ""), {})
            w.write(self._msg(Response="Success", ActionID=aid, Variable=f.get("Variable", ""),
                              Value=c.get("vars", {}).get(f.get("Variable", ""), "")))
        else:
            w.write(self._msg(Response="Success", ActionID=aid, Message="OK"))


# --------------------------------------------------------------------------- fake callers

class WaitingCaller:
    """Asterisk's side of one caller's FastAGI sessions of the queue script. Like the
    dialplan ([acd-queue]), a session that ends while the caller is still waiting (our server
    refused or failed it) is tried again a second later, keeping the channel's variables (and
    with them the caller's entry time)."""

    def __init__(self, n: int, port: int, group: str, window: asyncio.Semaphore,
                 entered: str | None = None) -> None:
        self.n, self.port, self.group = n, port, group
        self.window = window           # callers being set up at once
        self.uid = f"mem.{n}"
        self.channel = f"PJSIP/acd-caller-{n:08x}"
        self.number = f"5590{n:06d}"
        self.variables = {dp.GROUP: group, dp.PRIORITY: "0", dp.DID: "7801"}
        if entered is not None:        # already in the queue (Asterisk kept the variable)
            self.variables[dp.ENTERED] = entered
        self.entered = asyncio.Event()  # sent to the dialplan's wait: in the queue
        self.sessions = 0
        self._held = False

    async def run(self) -> None:
        await self.window.acquire()
        self._held = True
        try:
            while not self.entered.is_set():
                self.sessions += 1
                await self._session()
                if not self.entered.is_set():
                    await asyncio.sleep(1.0)    # the dialplan's retry (agi_retry_seconds)
        finally:
            self._release()

    def _release(self) -> None:
        if self._held:
            self._held = False
            self.window.release()

    async def _session(self) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return
        headers = {
            "agi_network": "yes", "agi_network_script": "queue",
            "agi_request": f"agi://127.0.0.1:{self.port}/queue",
            "agi_channel": self.channel, "agi_language": "en",
            "agi_type": "PJSIP", "agi_uniqueid": self.uid, "agi_version": "22.10.1",
            "agi_callerid": self.number, "agi_calleridname": "Memory Bench",
            "agi_context": dp.QUEUE_CONTEXT, "agi_extension": "s", "agi_priority": "6",
            "agi_enhanced": "0.0", "agi_accountcode": "", "agi_threadid": str(self.n),
            # The dialplan passes these as the script's arguments (dp.QUEUE_ARGS).
            **{f"agi_arg_{i}": self.variables.get(v, "")
               for i, v in enumerate(dp.QUEUE_ARGS, 1)}}
        writer.write("".join(f"{k}: {v}\n" for k, v in headers.items()).encode() + b"\n")
        try:
            while True:
                line = (await reader.readline()).decode(errors="replace").strip()
                if not line:
                    break
                cmd = line.upper()
                if cmd.startswith("WAIT FOR DIGIT"):
                    self.entered.set()
                    self._release()
                    await asyncio.sleep(_wait_seconds(line))   # as Asterisk: no key
                    writer.write(b"200 result=0\n")
                elif cmd.startswith("GET VARIABLE"):
                    value = self.variables.get(line.split()[2].strip('"'))
                    writer.write(b"200 result=0\n" if value is None
                                 else f"200 result=1 ({value})\n".encode())
                elif cmd.startswith("SET VARIABLE"):
                    parts = line.split(maxsplit=3)
                    if len(parts) == 4:
                        self.variables[parts[2].strip('"')] = parts[3].strip('"')
                    writer.write(b"200 result=1\n")
                    if self.variables.get(dp.NEXT) == dp.WAIT_TARGET:
                        self.entered.set()      # to the dialplan's wait: no session now
                        self._release()
                else:
                    writer.write(b"200 result=0\n")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def _wait_seconds(line: str) -> float:
    """The timeout of ``WAIT FOR DIGIT <ms>`` in seconds (-1, none: a minute)."""
    try:
        ms = int(line.split()[3])
    except (IndexError, ValueError):
        ms = -1
    return 60.0 if ms < 0 else ms / 1000


# --------------------------------------------------------------------------- the measure

#: Every agent's web password here (see _config).
WEB_PASSWORD = "memory-bench-agent-web"

def _config(run_dir: Path, ids: list[str], extra: list[str], groups: int, ami_port: int,
            agi_port: int, http_port: int, callers: int) -> Path:
    """``ids`` are the groups' members; ``extra`` agents are in no group."""
    data = {
        "data_dir": str(run_dir / "data"),
        "asterisk": {"instance": "benchmem"},
        "ami": {"port": ami_port, "secret": "memory-bench-secret", "ping_interval": 10,
                "ping_timeout": 10},
        "agi": {"port": agi_port},           # the default max_sessions: not a limit here
        "http": {"port": http_port},
        "logging": {"level": "warning", "format": "json"},
        # One web password for every agent: its argon2 hash is made once, by the bench, into
        # the store (see _web_users_on_record), and the server's start finds every user's
        # password unchanged. Left to the server, 5,050 different passwords would take 800 s
        # of argon2 (0.16 s each) behind the start, counted as the waiting callers' CPU.
        "agents": [{"id": a, "name": f"Mem {a}", "web_password": WEB_PASSWORD}
                   for a in ids + extra],
        "groups": [{"name": f"g{g}", "members": {a: 1 for a in ids[g::groups]}}
                   for g in range(groups)],
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    path.chmod(0o600)          # it holds secrets: `acd run` refuses a world-readable one
    configmod.load(path, environ={})          # the same checks the server makes
    return path


async def _agents_on_record(url: str, agents: list[str]) -> None:
    """The agents' state history as a running server leaves it (logged in, then busy), so
    that our server takes all of them up at start-up, as after a restart."""
    await migrate_async(url)
    store = Store(url)
    try:
        at = datetime.now(timezone.utc)
        for a in agents:
            await store.agent_state(a, "idle", reason="login", at=at, previous="offline")
            await store.agent_state(a, "busy", reason="", at=at, previous="idle")
    finally:
        await store.close()


class _OneHash(Passwords):
    """argon2 once per password: every agent of this bench has the same one."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, str] = {}

    def hash(self, password: str) -> str:
        if password not in self._made:
            self._made[password] = super().hash(password)
        return self._made[password]


async def _web_users_on_record(url: str, cfg: Any) -> None:
    """The web users as a server that ran before leaves them: hashed, with the checks that
    tell the next start they are unchanged (the server's own code, one argon2 hash)."""
    store = Store(url)
    try:
        auth = Auth.from_config(WebDb(store), cfg, passwords=_OneHash())
        await auth.sync_users(users_from_config(cfg))
    finally:
        await store.close()


class _Server:
    """``python -m acd run --no-asterisk`` on a config and database of the memory bench."""

    def __init__(self, path: Path, url: str, log: Path) -> None:
        env = {**os.environ, "ACD_DATABASE__URL": url}
        with open(log, "ab") as f:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "acd", "-c", str(path), "run", "--no-asterisk"],
                cwd=str(inst.PROJECT), env=env, stdin=subprocess.DEVNULL, stdout=f,
                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=inst.die_with_parent)

    def rss(self) -> dict[str, int]:
        return inst.rss_bytes(self.proc.pid)

    def cpu(self) -> float:
        return inst.cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def _waiting(api: ServerApi) -> int:
    status, body = await api.call("GET", "/api/queues")
    if status != 200:
        raise UserError("bench.memory", f"GET /api/queues: {status} {str(body)[:200]}")
    return sum(q["waiting"] for q in body["queues"].values())


async def _stop_callers(tasks: list[asyncio.Task]) -> None:
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def measure(agents: int = 5000, callers: int = 10_000, groups: int = 100,
                  run_dir: Path = inst.RUN_DIR / "memory", agi_port: int = 24583,
                  http_port: int = 28090, say: Any = print, arrival_seconds: float = 60.0,
                  setup_window: int = 20, api_logins: int = 50,
                  timeout: float = 900.0) -> dict[str, Any]:
    """Two runs of the server, each with ``agents`` logged in and busy (from the store):

    A. new callers arrive (as many as enter in ``arrival_seconds``; the queue sizes are sampled
       every 5 s), and ``api_logins`` more agents log in over the HTTP API, timed;
    B. a restart with ``callers`` callers waiting in Asterisk: the server takes them up from
       Asterisk's channels (as after a restart), their queue scripts come back, and the
       memory is read once all of them are polling for keys.

    ``setup_window``: how many callers may be entering at once (their queue script starting)."""
    ids = [str(100000 + i) for i in range(agents)]
    extra = [str(900000 + i) for i in range(api_logins)]
    out: dict[str, Any] = {"agents": agents, "callers": callers, "groups": groups}
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "server.log").write_bytes(b"")
    db = run_dir / "memory.db"
    url = f"sqlite+aiosqlite:///{db}"

    async def fresh_db() -> None:
        for p in (db, db.with_suffix(".db-wal"), db.with_suffix(".db-shm")):
            p.unlink(missing_ok=True)
        await _agents_on_record(url, ids)
        await _web_users_on_record(url, cfg)

    # ---------------------------------------------------------------- A: arrivals
    ami = FakeAsteriskAmi("acd", "memory-bench-secret", ids + extra)
    await ami.start()
    path = _config(run_dir, ids, extra, groups, ami.port, agi_port, http_port, callers)
    cfg, _ = configmod.with_secrets(configmod.load(path, environ={}))
    t0 = time.monotonic()
    await fresh_db()
    out["records_seconds"] = round(time.monotonic() - t0, 1)
    server = _Server(path, url, run_dir / "server.log")
    tasks: list[asyncio.Task] = []
    try:
        async with ServerApi(f"http://127.0.0.1:{http_port}", web_login(cfg)) as api:
            t0 = time.monotonic()
            await inst.wait_ready(api, timeout=300)
            await inst.api_post(api, f"/api/agents/{extra[0]}/login", timeout=600)
            out["start_seconds"] = round(time.monotonic() - t0, 1)
            out["with_agents"] = server.rss()
            say(f"  started, {agents} agents taken up from the store (logged in, busy): "
                f"{out['with_agents']['VmRSS'] / 2**20:.0f} MiB")
            logins = []
            for a in extra[1:]:
                t1 = time.monotonic()
                await inst.api_post(api, f"/api/agents/{a}/login")
                logins.append(time.monotonic() - t1)
            out["api_login_ms"] = summary(logins, 1000, 2)
            _, body = await api.call("GET", "/api/agents")
            snap = body["agents"]
            out["agents_busy"] = sum(1 for a in ids if snap[a]["state"] == "busy")
            out["agents_reachable"] = sum(1 for a in ids if snap[a]["reachable"])
            window = asyncio.Semaphore(setup_window)
            loop = asyncio.get_running_loop()
            tasks = [loop.create_task(WaitingCaller(n, agi_port, f"g{n % groups}", window).run())
                     for n in range(callers)]
            t1 = time.monotonic()
            ramp = []
            while time.monotonic() - t1 < arrival_seconds:
                await asyncio.sleep(5.0)             # sampling the queue sizes
                ramp.append((round(time.monotonic() - t1, 1), await _waiting(api)))
            out["arrivals"] = {"seconds": arrival_seconds, "waiting": ramp,
                               "callers_per_second": round(ramp[-1][1] / ramp[-1][0], 1)
                               if ramp else None}
            say(f"  new callers entering the queue: {ramp[-1][1] if ramp else 0} in "
                f"{arrival_seconds:.0f} s ({out['arrivals']['callers_per_second']}/s)")
            # The steady state, in the same process as the figure with the agents alone:
            # every caller waiting (in Asterisk, no session of ours), nothing else going on.
            cpu0, w0 = server.cpu(), time.monotonic()
            await asyncio.sleep(10.0)
            out["steady_cpu_share"] = round((server.cpu() - cpu0) / (time.monotonic() - w0), 3)
            out["with_callers"] = server.rss()
            out["waiting"] = await _waiting(api)
            if out["waiting"]:
                out["per_caller_bytes"] = round(
                    (out["with_callers"]["VmRSS"] - out["with_agents"]["VmRSS"]) / out["waiting"])
            say(f"  {out['waiting']} callers waiting: {out['with_callers']['VmRSS'] / 2**20:.0f} "
                f"MiB, {out.get('per_caller_bytes', 0) / 1024:.1f} KiB each; our server used "
                f"{out['steady_cpu_share'] * 100:.1f}% of a core while they waited")
    finally:
        await _stop_callers(tasks)
        server.stop()
        await ami.stop()

    # ---------------------------------------------------------------- B: a restart
    calls = [WaitingCaller(n, agi_port, f"g{n % groups}", asyncio.Semaphore(setup_window),
                           entered=f"{time.time() - callers + n:.6f}") for n in range(callers)]
    window = asyncio.Semaphore(setup_window)
    for c in calls:
        c.window = window
    channels = {c.channel: {"uniqueid": c.uid, "number": c.number, "vars": dict(c.variables)}
                for c in calls}
    ami = FakeAsteriskAmi("acd", "memory-bench-secret", ids + extra, channels)
    await ami.start()
    path = _config(run_dir, ids, extra, groups, ami.port, agi_port, http_port, callers)
    await fresh_db()
    server = _Server(path, url, run_dir / "server.log")
    tasks = []
    try:
        async with ServerApi(f"http://127.0.0.1:{http_port}", web_login(cfg)) as api:
            t0 = time.monotonic()
            await inst.wait_ready(api, timeout=300)
            await inst.api_post(api, f"/api/agents/{extra[0]}/login", timeout=900)
            out["restart_seconds"] = round(time.monotonic() - t0, 1)
            out["restored"] = server.rss()
            out["restored_waiting"] = await _waiting(api)
            say(f"  restarted with {out['restored_waiting']} callers waiting in Asterisk, taken "
                f"up in {out['restart_seconds']} s: {out['restored']['VmRSS'] / 2**20:.0f} MiB")
            loop = asyncio.get_running_loop()
            t1 = time.monotonic()
            tasks = [loop.create_task(c.run()) for c in calls]
            deadline = time.monotonic() + timeout
            for c in calls:
                left = deadline - time.monotonic()
                try:
                    await asyncio.wait_for(c.entered.wait(), max(left, 0.01))
                except asyncio.TimeoutError:
                    raise UserError("bench.memory", f"only {sum(x.entered.is_set() for x in calls)}"
                                                    f" of {callers} queue scripts back after "
                                                    f"{timeout:.0f} s") from None
            out["sessions_seconds"] = round(time.monotonic() - t1, 1)
            cpu0, w0 = server.cpu(), time.monotonic()
            await asyncio.sleep(10.0)                # just after the restart's catching up
            out["restart_cpu_share"] = round((server.cpu() - cpu0) / (time.monotonic() - w0), 3)
            out["restart_with_callers"] = server.rss()
            out["restart_waiting"] = await _waiting(api)
            out["sessions"] = sum(c.sessions for c in calls)
            say(f"  after the restart, {out['restart_waiting']} callers waiting: "
                f"{out['restart_with_callers']['VmRSS'] / 2**20:.0f} MiB (peak "
                f"{out['restart_with_callers']['VmHWM'] / 2**20:.0f} MiB); our server used "
                f"{out['restart_cpu_share'] * 100:.0f}% of a core in the 10 s after")
    finally:
        await _stop_callers(tasks)
        server.stop()
        await ami.stop()
    out["ami_actions"] = dict(ami.actions)
    return out
