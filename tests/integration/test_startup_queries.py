"""A start of the real server does as many store statements with 200 agents as with 10: no
query, argon2 run or write per agent on the way to ready (target 8 of the performance issue).

The real :class:`acd.app.Server` (SQLite store, the runtime, FastAGI, HTTP) with Asterisk's
side of AMI played by :class:`tests.integration.fake_ami.FakeAmi` (no channels, every agent's
phone reachable). Every SQL statement is counted with SQLAlchemy's ``before_cursor_execute``
from the start until the runtime is ready and the store writer has written what it was
given. Three starts per size: the first (the schema made, the web users written; their
passwords are hashed behind, not counted), the second (nothing changed; then every agent logs
in and some take a break), and a restart that takes those states up from the store.
"""
from __future__ import annotations

import asyncio
import random
import re
from dataclasses import replace
from datetime import datetime, timezone

import pytest
import yaml
from argon2 import PasswordHasher
from sqlalchemy import event
from sqlalchemy.engine import Engine

from acd import config as configmod
from acd.app import Server
from acd.web import auth as authmod
from tests.integration.fake_ami import FakeAmi

IN_LIST = re.compile(r"\((?:\?, )+\?\)")
WAIT = 60.0            # ends a stuck test; never measures speed
SECRET = "fake-ami-secret-startup"


def _play_asterisk(ami: FakeAmi, agents: list[str]) -> None:
    """Asterisk with no channels and every agent's phone reachable."""
    def status(conn, msg):  # noqa: ANN001
        conn.send({"Response": "Success", "ActionID": msg["ActionID"],
                   "CoreStartupDate": "2026-11-21", "CoreStartupTime": "08:00:00"})

    def channels(conn, msg):  # noqa: ANN001
        aid = msg["ActionID"]
        conn.send({"Response": "Success", "ActionID": aid, "EventList": "start"})
        conn.send({"Event": "CoreShowChannelsComplete", "ActionID": aid,
                   "EventList": "Complete", "ListItems": "0"})

    def contacts(conn, msg):  # noqa: ANN001
        aid = msg["ActionID"]
        conn.send({"Response": "Success", "ActionID": aid, "EventList": "start"})
        for a in agents:
            uri = f"sip:{a}@127.0.0.1:5999"
            conn.send({"Event": "ContactList", "ActionID": aid, "ObjectType": "contact",
                       "ObjectName": f"{a}/{uri}", "Endpoint": a, "Aor": a, "Uri": uri,
                       "Status": "Reachable"})
        conn.send({"Event": "ContactListComplete", "ActionID": aid, "EventList": "Complete",
                   "ListItems": str(len(agents))})

    ami.on("CoreStatus", status)
    ami.on("CoreShowChannels", channels)
    ami.on("PJSIPShowContacts", contacts)


def _config(tmp_path, agents: list[str], ami_port: int) -> configmod.Config:
    (tmp_path / "flows").mkdir(parents=True, exist_ok=True)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "data_dir": "data",
        "ami": {"port": ami_port, "secret": SECRET},
        "agents": [{"id": a, "name": f"Agent {a}"} for a in agents],
        "groups": [{"name": f"g{g}", "members": {a: 1 for a in agents[g::5]},
                    "wrapup_seconds": 600} for g in range(5)],
        "flows": {"dir": "flows", "watch_seconds": 0},
        "web": {"users": [{"username": "admin", "role": "admin"},
                          {"username": "sup", "role": "supervisor"}]}}))
    path.chmod(0o600)
    cfg, _ = configmod.with_secrets(configmod.load(path, environ={}))
    return replace(cfg, agi=replace(cfg.agi, port=0), http=replace(cfg.http, port=0))


class Statements:
    """SQL statements sent to the database while counting (every engine of the process)."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.on = False

    def __call__(self, _conn, _cursor, statement, _params, _context, _many) -> None:  # noqa: ANN001
        if self.on:     # an IN list's length is no other statement
            self.texts.append(IN_LIST.sub("(?...)", " ".join(statement.split()))[:160])


async def _start(cfg: configmod.Config, counter: Statements) -> tuple[Server, list[str]]:
    """A start, counted until the runtime is ready and the writer has written its backlog."""
    counter.texts.clear()
    counter.on = True
    srv = Server(cfg, rng=random.Random(7))
    try:
        await srv.start()
        await asyncio.wait_for(srv.runtime.ready.wait(), WAIT)
        assert await srv.runtime.writer.flush(WAIT)
    finally:
        counter.on = False
    return srv, list(counter.texts)


async def _three_starts(tmp_path, n: int, counter: Statements,
                        monkeypatch) -> dict[str, list[str]]:
    agents = [str(3000 + i) for i in range(n)]
    ami = await FakeAmi(secret=SECRET).start()
    _play_asterisk(ami, agents)
    cfg = _config(tmp_path, agents, ami.port)
    hashing = []

    async def behind(self):  # noqa: ANN001  (hashed by the test, not counted)
        hashing.append(self)
    monkeypatch.setattr(Server, "_hash_passwords", behind)
    counts = {}
    try:
        srv, counts["first"] = await _start(cfg, counter)
        assert srv.web_ctx.auth.synced == {"users": n + 2, "pending": n + 2}
        assert await srv.web_ctx.auth.hash_pending() == n + 2
        await srv.stop()

        srv, counts["second"] = await _start(cfg, counter)
        assert srv.web_ctx.auth.synced == {"users": n + 2, "pending": 0}
        for a in agents:
            srv.runtime.login(a)
        for a in agents[::3]:
            srv.runtime.set_state(a, "break", "coffee")
        await srv.runtime.quiesce()
        assert await srv.runtime.writer.flush(WAIT)
        await _calls_then_wrapup(srv.store, agents[1::3])
        await srv.stop()

        srv, counts["restart"] = await _start(cfg, counter)
        try:
            states = {a: srv.runtime.agent(a)["state"] for a in agents}
            assert states == {a: ("break", "wrapup", "idle")[i % 3]
                              for i, a in enumerate(agents)}
        finally:
            await srv.stop()
    finally:
        await ami.stop()
    assert len(hashing) == 1            # only the first start had passwords to hash
    return counts


async def _calls_then_wrapup(store, agents: list[str]) -> None:
    """Each of ``agents`` answered a call that ended just now: in wrap-up (the store's rows
    as the runtime writes them)."""
    now = datetime.now(timezone.utc)
    for i, a in enumerate(agents):
        uid = f"call-{a}"
        await store.call_arrived(uniqueid=uid, channel=f"PJSIP/caller-{i}", caller_number="1390",
                                 caller_name="", did="7000", at=now)
        await store.call_update(uid, skill_group=f"g{i % 5}", answered_at=now)
        await store.call_ended(uid, reason="caller_hangup", at=now)
        await store.agent_state(a, "talking", reason="", at=now, previous="ringing",
                                call_uniqueid=uid)
        await store.agent_state(a, "wrapup", reason="", at=now, previous="talking",
                                call_uniqueid=uid)


@pytest.fixture
def counter():
    c = Statements()
    event.listen(Engine, "before_cursor_execute", c)
    yield c
    event.remove(Engine, "before_cursor_execute", c)


@pytest.fixture(autouse=True)
def quick_argon2(monkeypatch):
    """argon2 with small parameters (the same code, less work)."""
    monkeypatch.setattr(authmod, "PasswordHasher",
                        lambda: PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    authmod._MEMO.clear()               # each server start as a new process
    yield
    authmod._MEMO.clear()


async def test_a_start_does_as_many_store_statements_with_200_agents_as_with_10(
        tmp_path, counter, monkeypatch):
    small = await _three_starts(tmp_path / "10", 10, counter, monkeypatch)
    authmod._MEMO.clear()
    large = await _three_starts(tmp_path / "200", 200, counter, monkeypatch)
    for start in ("first", "second", "restart"):
        assert small[start], start
        # The same statements, one for one (a statement per agent would differ by 190).
        assert sorted(large[start]) == sorted(small[start]), (start, len(small[start]),
                                                              len(large[start]))
