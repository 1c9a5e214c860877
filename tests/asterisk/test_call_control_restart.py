"""Our server is killed (SIGKILL, a real process) while a caller is on hold and while the
agent consults another agent: the caller is not dropped, and after the restart the call is
resumed, or the consult completed, over the HTTP API."""
from __future__ import annotations

import asyncio

import aiohttp

from acd.store.db import Store
from tests.asterisk.acd_fixtures import WAIT, Caller, acd_config, after, kinds, mark  # noqa: F401
from tests.asterisk.calls import field, talk_entered
from tests.asterisk.control_fixtures import control_config, moh_started, moh_stopped  # noqa: F401
from tests.asterisk.phones import SoftPhone
from tests.asterisk.test_acd_restart import ServerProcess, dump, write_config
from tests.web_login import login, password_of


class Api:
    def __init__(self, cfg) -> None:
        self.base = f"http://{cfg.http.host}:{cfg.http.port}/api"
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT),
                                          cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.cfg = cfg
        self.user = None

    async def _as(self, agent: str):
        """Logged in as the agent the path names (call control is the agent's own); the
        session is in the database, so the restarted server knows it too."""
        if self.user is None or self.user.me["username"] != agent:
            self.http.cookie_jar.clear()
            self.user = await login(self.http, agent, password_of(self.cfg, agent),
                                    base=self.base.removesuffix("/api"))
        return self.user

    async def post(self, path: str, body: dict | None = None) -> dict:
        user = await self._as(path.split("/")[2])
        async with user.post(f"{self.base}{path}", json=body) as r:
            data = await r.json()
            assert r.status == 200, (path, r.status, data)
            return data

    async def get(self, path: str) -> dict:
        user = await self._as(path.split("/")[2])
        async with user.get(f"{self.base}{path}") as r:
            assert r.status == 200, (path, r.status)
            return await r.json()

    async def close(self) -> None:
        await self.http.close()


def phone(cfg, agent_id: str) -> SoftPhone:
    a = cfg.asterisk
    agent = next(x for x in cfg.agents if x.id == agent_id)
    return SoftPhone(agent_id, agent.password, a.sip_host, a.sip_port, answer="auto")


async def recorded(db: str, uniqueid: str, kind: str) -> None:
    """Wait until the server process has written ``kind`` to the call's record (its store
    writer works in the background; a kill loses what it has not written yet)."""
    store = Store(db)
    try:
        async def seen() -> None:
            while True:
                call = await store.get_call(uniqueid)
                if call is not None and kind in kinds(call):
                    return
                await asyncio.sleep(0.05)        # polling the database file, bounded below
        await asyncio.wait_for(seen(), WAIT)
    finally:
        await store.close()


async def test_killed_during_a_hold_the_caller_stays_and_is_resumed_after_the_restart(
        control_config, ami, tmp_path):
    cfg = control_config
    db = f"sqlite+aiosqlite:///{tmp_path / 'acd.db'}"
    config_path = tmp_path / "config.yaml"
    write_config(cfg, config_path, db, tmp_path / "data")
    alice = phone(cfg, "1001")
    first, second = ServerProcess(config_path), ServerProcess(config_path)
    api = Api(cfg)
    try:
        await alice.start()
        await first.start()
        await first.wait_log("runtime.rebuilt")
        await api.post("/agents/1001/login")
        m = mark(ami)
        caller = await Caller(ami, "7120").dial()
        assert await caller.bridged(m) == "1001"
        m = mark(ami)
        out = await api.post("/agents/1001/call/hold")
        assert out["control"]["state"] == "held"
        await moh_started(ami, caller, m)

        killed = mark(ami)
        await first.kill()
        await second.start()
        rebuilt = await second.wait_log("runtime.rebuilt")
        assert (rebuilt["agents"], rebuilt["held"]) == (1, 1)
        agent = await api.get("/agents/1001")
        assert (agent["state"], agent["control"]["state"], agent["call_id"]) == (
            "talking", "held", caller.uniqueid)
        assert not caller.hung_up_before(len(ami.events.events))
        assert not [e for e in ami.events.events[killed:] if e.name == "MusicOnHoldStop"]

        m = mark(ami)
        out = await api.post("/agents/1001/call/resume")
        assert out["control"]["state"] == "talking"
        await moh_stopped(ami, caller, m)
        assert await caller.bridged(m) == "1001"
        await caller.hangup()
        await second.wait_log("runtime.call_ended")
        await second.stop()
        assert first.errors() == [] and second.errors() == []
    finally:
        await api.close()
        await first.stop()
        await second.stop()
        await alice.stop()
        dump(("first", first), ("second", second))

    store = Store(db)
    try:
        call = await store.get_call(caller.uniqueid)
        k = kinds(call)
        assert call["end_reason"] == "caller_hangup" and k.count("ended") == 1
        assert k.index("hold") < k.index("restored") < k.index("resume") < k.index("ended")
        [leg] = call["legs"]
        assert leg["agent_id"] == "1001" and leg["hold_seconds"] > 0
    finally:
        await store.close()


async def test_killed_during_a_consult_the_consult_is_completed_after_the_restart(
        control_config, ami, tmp_path):
    cfg = control_config
    db = f"sqlite+aiosqlite:///{tmp_path / 'acd.db'}"
    config_path = tmp_path / "config.yaml"
    write_config(cfg, config_path, db, tmp_path / "data")
    alice, bob = phone(cfg, "1001"), phone(cfg, "1002")
    first, second = ServerProcess(config_path), ServerProcess(config_path)
    api = Api(cfg)
    try:
        await alice.start()
        await bob.start()
        await first.start()
        await first.wait_log("runtime.rebuilt")
        await api.post("/agents/1001/login")
        await api.post("/agents/1002/login")
        m = mark(ami)
        caller = await Caller(ami, "7120").dial()
        assert await caller.bridged(m) == "1001"
        m = mark(ami)
        await api.post("/agents/1001/call/consult", {"to_agent": "1002"})
        await moh_started(ami, caller, m)
        bob_enter = await after(ami, m, lambda e: talk_entered(e)
                                and field(e, "Channel").startswith("PJSIP/1002-"),
                                "the consulted agent bridged")
        await after(ami, m, lambda e: talk_entered(e)
                    and field(e, "Channel").startswith("PJSIP/1001-")
                    and field(e, "BridgeUniqueid") == field(bob_enter, "BridgeUniqueid"),
                    "the agents talking")
        await recorded(db, caller.uniqueid, "consult_answered")

        await first.kill()
        await second.start()
        rebuilt = await second.wait_log("runtime.rebuilt")
        assert (rebuilt["agents"], rebuilt["held"]) == (2, 1)
        a1, a2 = await api.get("/agents/1001"), await api.get("/agents/1002")
        assert (a1["state"], a1["control"]["state"]) == ("talking", "consulting")
        assert a1["control"]["transfer"]["target_agent"] == "1002"
        assert (a2["state"], a2["call_id"]) == ("talking", caller.uniqueid)
        assert not caller.hung_up_before(len(ami.events.events))

        m = mark(ami)
        await api.post("/agents/1001/call/consult/complete")
        assert await caller.bridged(m) == "1002"
        await after(ami, m, lambda e: e.name == "Hangup"
                    and field(e, "Channel").startswith("PJSIP/1001-"), "1001 dropped")
        agent = await api.get("/agents/1001")
        assert agent["state"] in ("wrapup", "idle") and agent["call_id"] in (None,
                                                                             caller.uniqueid)
        await caller.hangup()
        await second.wait_log("runtime.call_ended")
        await second.stop()
        assert first.errors() == [] and second.errors() == []
    finally:
        await api.close()
        await first.stop()
        await second.stop()
        await alice.stop()
        await bob.stop()
        dump(("first", first), ("second", second))

    store = Store(db)
    try:
        call = await store.get_call(caller.uniqueid)
        k = kinds(call)
        assert call["end_reason"] == "caller_hangup" and k.count("ended") == 1
        assert k.index("consult_answered") < k.index("restored") < k.index("consult_completed")
        assert [(x["agent_id"], x["reason"]) for x in call["legs"]] == [
            ("1001", "transferred"), ("1002", "caller_hangup")]
    finally:
        await store.close()
