"""Our server is killed (SIGKILL, a real process) while callers wait and while a call is
connected: nobody is dropped, the waiting callers are served in their original order after
the restart, and every call's record is whole."""
from __future__ import annotations

import asyncio
import ctypes
import json
import signal
import sys
from dataclasses import asdict, replace
from typing import Any

import aiohttp
import structlog
import yaml

from acd.store.db import Store
from tests.asterisk.acd_fixtures import (WAIT, Caller, Watch, acd_config,  # noqa: F401
                                         acd_server, after, agents, kinds, mark)
from tests.asterisk.calls import field, talk_entered
from tests.asterisk.phones import SoftPhone
from tests.conftest import BOTH_DATABASES, PROJECT
from tests.web_login import login, password_of


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def write_config(cfg, path, db_url: str, data_dir) -> None:
    data = _plain(asdict(cfg))
    for internal in ("source", "base_dir", "file_secrets"):     # filled in by load()
        data.pop(internal, None)
    data["data_dir"] = str(data_dir)
    data["database"]["url"] = db_url
    data["logging"] = {"level": "info", "format": "json"}
    path.write_text(yaml.safe_dump(data))
    path.chmod(0o600)          # it holds secrets: `acd run` refuses a world-readable one


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG


class ServerProcess:
    """``python -m acd -c CONFIG run --no-asterisk`` with its JSON log lines read as they come."""

    def __init__(self, config_path) -> None:
        self.config_path = config_path
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[dict[str, Any]] = []
        self._changed = asyncio.Condition()
        self._reader: asyncio.Task | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "acd", "-c", str(self.config_path), "run", "--no-asterisk",
            cwd=str(PROJECT), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            start_new_session=True, preexec_fn=_die_with_parent)
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.proc and self.proc.stderr
        while line := await self.proc.stderr.readline():
            text = line.decode(errors="replace").strip()
            if text.startswith("{"):
                try:
                    msg = json.loads(text)
                except ValueError:
                    continue
                async with self._changed:
                    self.lines.append(msg)
                    self._changed.notify_all()

    async def wait_log(self, event: str, timeout: float = WAIT) -> dict[str, Any]:
        async def _wait() -> dict[str, Any]:
            async with self._changed:
                while True:
                    for m in self.lines:
                        if m.get("event") == event:
                            return m
                    await self._changed.wait()
        try:
            return await asyncio.wait_for(_wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"server log has no {event} within {timeout}s; last: "
                                 f"{[m.get('event') for m in self.lines[-15:]]}") from None

    def errors(self) -> list[dict[str, Any]]:
        return [m for m in self.lines if m.get("level") in ("error", "critical")]

    async def kill(self) -> None:
        assert self.proc
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        await self._done()

    async def stop(self) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await self._done()

    async def _done(self) -> None:
        if self._reader:
            await asyncio.gather(self._reader, return_exceptions=True)


def dump(*servers) -> None:
    """In a ``finally`` after a failure: what the servers said (runtime, app, agi)."""
    if sys.exc_info()[0] is not None:
        for name, p in servers:
            for line in p.lines:
                if line.get("component") in ("runtime", "app", "agi"):
                    print(name, json.dumps(line))


@BOTH_DATABASES
async def test_killed_server_drops_nobody_and_serves_in_the_original_order(
        acd_config, ami, tmp_path, db_url):
    cfg = acd_config
    db = db_url
    config_path = tmp_path / "config.yaml"
    write_config(cfg, config_path, db, tmp_path / "data")
    api = f"http://{cfg.http.host}:{cfg.http.port}/api"
    a = cfg.asterisk
    agent = next(x for x in cfg.agents if x.id == "1001")
    phone = SoftPhone("1001", agent.password, a.sip_host, a.sip_port, answer="auto")
    first = ServerProcess(config_path)
    second = ServerProcess(config_path)
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT),
                                 cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        await phone.start()
        await first.start()
        assert (await first.wait_log("runtime.rebuilt"))["agents"] == 0
        # a web session (kept in the database: the restarted server knows it too)
        admin = await login(http, "admin", password_of(cfg, "admin"), base=api.removesuffix("/api"))
        async with admin.post(f"{api}/agents/1001/login") as r:
            assert r.status == 200 and (await r.json())["state"] == "idle"

        m = mark(ami)
        talking = await Caller(ami, "7113").dial()
        assert await talking.bridged(m) == "1001"
        waiting = []
        for _ in range(3):
            c = await Caller(ami, "7113").dial()
            await c.queued(m)
            waiting.append(c)

        # Killed for real. The waiting callers wait in Asterisk, with no session of ours:
        # their music goes on untouched. The connected call goes on.
        killed = mark(ami)
        await first.kill()
        await second.start()
        rebuilt = await second.wait_log("runtime.rebuilt")
        assert (rebuilt["agents"], rebuilt["connected"], rebuilt["waiting"]) == (1, 1, 3)
        for c in waiting:
            assert not [e for e in ami.events.events[killed:] if e.name == "Newexten"
                        and field(e, "Channel") == c.channel], "the caller's wait was disturbed"
        async with http.get(f"{api}/agents/1001") as r:
            agent1001 = await r.json()
        assert (agent1001["state"], agent1001["call_id"]) == ("talking", talking.uniqueid)
        async with http.get(f"{api}/queues") as r:
            queue = (await r.json())["queues"]["restart"]
        assert [c["call_id"] for c in queue["calls"]] == [c.uniqueid for c in waiting]

        # Served one after the other, in the order they came.
        current = talking
        for c in waiting:
            m = mark(ami)
            await current.hangup()
            assert await c.bridged(m) == "1001"
            current = c
        await current.hangup()
        for c in [talking, *waiting]:
            enter = next(i for i, e in enumerate(ami.events.events)
                         if talk_entered(e) and field(e, "Channel") == c.channel)
            assert not c.hung_up_before(enter), f"{c.caller_num} was dropped"
        await second.stop()
        assert first.errors() == [] and second.errors() == []
    finally:
        await http.close()
        await first.stop()
        await second.stop()
        await phone.stop()
        dump(("first", first), ("second", second))

    store = Store(db)
    try:
        for c in [talking, *waiting]:
            call = await store.get_call(c.uniqueid)
            k = kinds(call)
            assert call["end_reason"] == "caller_hangup", (c.caller_num, k)
            assert k.count("ended") == 1 and k[-1] in ("ended", "wrapup", "wrapup_ended")
            assert k.index("queued") < k.index("restored")          # before and after the kill
            assert "answered" in k and call["answered_at"] is not None
            assert call["skill_group"] == "restart"
        for c in waiting:
            k = kinds(await store.get_call(c.uniqueid))
            assert k.index("restored") < k.index("offered") < k.index("answered")
        states = await store.agent_states("1001")
        assert (states[0]["state"], states[0]["previous"]) == ("idle", "offline")   # the login
        assert [s["state"] for s in states].count("talking") == 4
    finally:
        await store.close()


async def test_events_missed_while_the_ami_link_was_down_are_made_up(acd_server, agents, ami):
    srv = acd_server
    m = mark(ami)
    gone = await Caller(ami, "7113").dial()
    await gone.queued(m)
    stays = await Caller(ami, "7113").dial()
    await stays.queued(m)
    supervisor = Watch(srv.hub, "supervisor")
    try:
        down = asyncio.Event()
        srv.ami.on_connection(lambda up: None if up else down.set())
        srv.ami._proto.drop("test: link lost")          # our side of the AMI link goes
        await asyncio.wait_for(down.wait(), WAIT)
        with structlog.testing.capture_logs() as logs:
            await gone.hangup()                          # nobody tells the server
            # After the reconnect the runtime compares with Asterisk: the caller left.
            await supervisor.wait(lambda s: s["queues"]["restart"]["waiting"] == 1,
                                  what="the missed hangup made up")
        assert [(e["what"], e["call"]) for e in logs if e["event"] == "runtime.missed"] == [
            ("caller_hangup", gone.uniqueid)]
        assert srv.ami.connected
        await srv.runtime.quiesce()
        assert (await srv.store.get_call(gone.uniqueid))["end_reason"] == "abandoned"
        # The one still waiting is served.
        agents.login("1001")
        await agents.phone("1001", answer="auto")
        assert await stays.bridged(m) == "1001"
        await stays.hangup()
    finally:
        supervisor.close()
