"""Measure 8: how long ``acd run`` takes to be ready, with 1,000 agents and their web users.

The real server (``python -m acd run --no-asterisk``, SQLite store, info logging as shipped,
JSON lines), in a process of its own, with Asterisk's side of AMI played by this process
(:class:`bench.memory.FakeAsteriskAmi`: it logs the server in and reports every agent's phone
as reachable). Three starts on one data folder and database:

* **first**: a new data folder and database: the schema is made and every web user's
  password is to be hashed (argon2, about 0.15 s each): the server is ready before, and hashes
  them behind (a user logs in meanwhile with the configured password: tried once); the
  measure waits until all are hashed;
* **second**: the same configuration again, nothing changed; once it is ready every agent
  logs in over the HTTP API;
* **restart**: the server stopped and started with every agent logged in: their states are
  taken up from the store.

*Ready* is the moment ``/api/health`` says ``ready`` (the ACD took up its state from Asterisk
and the store: agents' requests and the queue script are served), seen from outside, from the
moment the process was started. Where the time went comes from the server's own log
timestamps (:data:`PHASES`). The same is done with fewer agents (``small``) to show whether a
start grows with the number of agents.
"""
from __future__ import annotations

import asyncio
import json
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from acd import config as configmod
from acd.errors import UserError
from acd.tools.server_api import ServerApi, web_login
from bench import instance as inst
from bench.memory import FakeAsteriskAmi, _config as memory_config, _Server

#: (phase, the log event it ends with); each phase starts where the one before ended, the
#: first at the process's start. A phase whose event is missing is left out. An event with
#: ``took`` ends two: the phase before ends ``took`` seconds before it.
PHASES = (("interpreter and imports", "app.config_loaded"),
          ("configuration (YAML, secrets)", "app.config_loaded"),
          ("database schema", "app.migrated"),     # from the event loop's start
          ("web users (passwords)", "app.users_ready"),
          ("runtime, FastAGI, HTTP", "app.started"),
          ("AMI login", "ami.connected"),
          ("taking up the state (Asterisk, store)", "runtime.rebuilt"))
TARGET_SECONDS = 5.0
AMI_SECRET = "startup-bench-secret"


def config(run_dir: Path, agents: int, groups: int, ami_port: int, agi_port: int,
           http_port: int) -> Path:
    """The memory bench's configuration (``agents`` agents in ``groups`` groups), with a web
    admin and supervisor, info logging in JSON, and our AMI secret."""
    ids = [str(100000 + i) for i in range(agents)]
    path = memory_config(run_dir, ids, [], groups, ami_port, agi_port, http_port, 0)
    data = yaml.safe_load(path.read_text())
    data["ami"]["secret"] = AMI_SECRET
    data["logging"] = {"level": "info", "format": "json"}
    data["web"] = {"users": [{"username": "admin", "role": "admin"},
                             {"username": "sup", "role": "supervisor"}]}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    path.chmod(0o600)
    configmod.load(path, environ={})
    return path


def log_events(path: Path) -> list[tuple[float, str, dict[str, Any]]]:
    """(UNIX time, event, the line) of every JSON line of a server log with a timestamp."""
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
            at = datetime.fromisoformat(rec["timestamp"]).timestamp()
        except (ValueError, KeyError, TypeError):
            continue
        out.append((at, str(rec.get("event", "")), rec))
    return out


def phases(events: list[tuple[float, str, dict[str, Any]]], spawned: float) -> dict[str, float]:
    """Seconds of each of :data:`PHASES` from a start's log (``spawned``: the process's start)."""
    first: dict[str, tuple[float, dict[str, Any]]] = {}
    for at, event, rec in events:
        first.setdefault(event, (at, rec))
    out, since = {}, spawned
    for i, (name, event) in enumerate(PHASES):
        if event not in first:
            continue
        at, rec = first[event]
        if i + 1 < len(PHASES) and PHASES[i + 1][1] == event:
            at -= float(rec.get("took") or 0.0)     # the next phase is the event's own
        out[name] = round(max(0.0, at - since), 3)
        since = at
    return out


def counts(events: list[tuple[float, str, dict[str, Any]]]) -> dict[str, Any]:
    """What a start's log says it did: its lines (JSON, at info), the web users and those
    whose password argon2 had still to hash (``pending``: hashed behind, after the start),
    the agents taken up, and the hashing behind (how many, in how many seconds)."""
    def first(event: str) -> dict[str, Any]:
        return next((r for _, e, r in events if e == event), {})
    users, hashed = first("app.users_ready"), first("app.passwords_hashed")
    out = {"log_lines": len(events), "users": users.get("users"),
           "pending": users.get("pending"), "agents_taken_up": first("runtime.rebuilt").get("agents")}
    if hashed:
        out["hashed_behind"] = {"hashed": hashed.get("hashed"), "seconds": hashed.get("took")}
    return out


async def _ready(api: ServerApi, spawned: float, server: _Server, timeout: float) -> float:
    """Seconds from ``spawned`` until /api/health says ready."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, body = await api.call("GET", "/api/health")
            if status == 200 and isinstance(body, dict) and body.get("ready"):
                return time.time() - spawned
        except UserError:
            pass                            # not listening yet
        if server.proc.poll() is not None:
            raise UserError("bench.startup", f"the server ended ({server.proc.returncode}) "
                                             "before it was ready: see its log")
        if time.monotonic() > deadline:
            raise UserError("bench.startup", f"not ready after {timeout:.0f} s")
        await asyncio.sleep(0.02)


async def _hashed_behind(api: ServerApi, log: Path, user: tuple[str, str],
                         timeout: float) -> dict[str, Any]:
    """A web user logs in while the passwords are hashed behind (pending: checked against
    the configured password); then wait until the server logs that all are hashed."""
    async with ServerApi(api.base_url) as other:
        status, _ = await other.call("POST", "/api/auth/login",
                                     {"username": user[0], "password": user[1]})
    deadline = time.monotonic() + timeout
    while b"app.passwords_hashed" not in log.read_bytes():
        if time.monotonic() > deadline:
            raise UserError("bench.startup", f"passwords not hashed after {timeout:.0f} s")
        await asyncio.sleep(0.5)
    return {"pending_login_status": status}


async def _login_all(api: ServerApi, ids: list[str], at_once: int = 8) -> int:
    await api.call("GET", "/api/agents")         # signed in once, before the logins at once
    sem = asyncio.Semaphore(at_once)

    async def one(a: str) -> None:
        async with sem:
            await inst.api_post(api, f"/api/agents/{a}/login")
    await asyncio.gather(*(one(a) for a in ids))
    _, body = await api.call("GET", "/api/agents")
    return sum(1 for a in ids if body["agents"][a]["state"] != "offline")


async def _start(name: str, path: Path, url: str, run_dir: Path, cfg: Any, http_port: int,
                 timeout: float, then: Any = None) -> dict[str, Any]:
    """One start of the server: seconds to ready, its phases, then ``then(api)``, stopped."""
    log = run_dir / f"server-{name}.log"
    log.write_bytes(b"")
    spawned = time.time()
    server = _Server(path, url, log)
    out: dict[str, Any] = {}
    try:
        async with ServerApi(f"http://127.0.0.1:{http_port}", web_login(cfg)) as api:
            out["seconds"] = round(await _ready(api, spawned, server, timeout), 3)
            out["rss_bytes"] = server.rss().get("VmRSS")
            if then is not None:
                out.update(await then(api))
    finally:
        server.stop()
    events = log_events(log)
    out["phases"] = phases(events, spawned)
    # The server's own part: all but starting Python and importing its libraries.
    out["server_seconds"] = round(sum(v for k, v in out["phases"].items()
                                      if k != PHASES[0][0]), 3)
    out.update(counts(events))
    return out


async def one_size(agents: int, groups: int, run_dir: Path, say: Any, http_port: int,
                   agi_port: int, timeout: float) -> dict[str, Any]:
    """The three starts (first, second, restart) with ``agents`` agents."""
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    db = run_dir / "startup.db"
    url = f"sqlite+aiosqlite:///{db}"
    ids = [str(100000 + i) for i in range(agents)]
    ami = FakeAsteriskAmi("acd", AMI_SECRET, ids)
    await ami.start()
    out: dict[str, Any] = {"agents": agents, "groups": groups}
    try:
        path = config(run_dir, agents, groups, ami.port, agi_port, http_port)
        cfg, _ = configmod.with_secrets(configmod.load(path, environ={}))
        out["web_users"] = agents + len(cfg.web.users)

        agent = cfg.agents[0]

        async def hashed(api: ServerApi) -> dict[str, Any]:
            return await _hashed_behind(api, run_dir / "server-first.log",
                                        (agent.id, agent.web_password), timeout)

        async def log_in(api: ServerApi) -> dict[str, Any]:
            t0 = time.monotonic()
            n = await _login_all(api, ids)
            return {"logged_in": n, "login_seconds": round(time.monotonic() - t0, 1)}

        async def check(api: ServerApi) -> dict[str, Any]:
            _, body = await api.call("GET", "/api/agents")
            return {"logged_in": sum(1 for a in ids if body["agents"][a]["state"] != "offline")}

        for name, then in (("first", hashed), ("second", log_in), ("restart", check)):
            r = await _start(name, path, url, run_dir, cfg, http_port, timeout, then)
            out[name] = r
            say(f"  {agents} agents, {name} start: ready in {r['seconds']} s ("
                + ", ".join(f"{k} {v}" for k, v in r["phases"].items()) + ")"
                + (f"; {r['logged_in']} agents logged in" if "logged_in" in r else ""))
    finally:
        await ami.stop()
    return out


async def measure(agents: int = 1000, small: int = 100, groups: int = 50,
                  run_dir: Path = inst.RUN_DIR / "startup", http_port: int = 28092,
                  agi_port: int = 24585, say: Any = print, timeout: float = 900.0
                  ) -> dict[str, Any]:
    """:func:`one_size` with ``agents`` and with ``small`` agents (0: not)."""
    out: dict[str, Any] = {"target_seconds": TARGET_SECONDS, "sizes": {}}
    for n in ([small] if small else []) + [agents]:
        out["sizes"][str(n)] = await one_size(n, min(groups, n), run_dir / str(n), say,
                                              http_port, agi_port, timeout)
    out["agents"] = agents
    return out
