"""Fixtures and helpers for the ACD on real calls: the test skill groups, a server with them,
agent phones, callers on the loopback trunk, and waits on AMI events and hub messages.

The test Asterisk is shared by the whole session, so its configuration is rendered once with
everything every test needs (:func:`acd_test_config`): a superset of the session's config with
a third agent and the skill groups below, each with its own number.

Waits have generous upper bounds: they end a stuck test, they never measure speed.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from acd import config as configmod
from acd.ami.client import AmiClient
from acd.ami.events import AmiEvent
from acd.app import Server
from acd.asterisk.runner import Asterisk
from tests.asterisk.calls import field, talk_entered
from tests.conftest import pg_database
from tests.asterisk.phones import SoftPhone

WAIT = 20.0
RANDOM_SEED = 20261121
_tags = itertools.count(1)
_numbers = itertools.count(1)

# Skill groups of the ACD tests: name -> (number, settings). Members are agent ids -> level.
AGENTS3 = {"1001": 1, "1002": 1, "1003": 1}


def acd_groups() -> tuple[configmod.GroupConfig, ...]:
    G, CB = configmod.GroupConfig, configmod.CallbackConfig
    today = datetime.now(timezone.utc).date()
    holidays = tuple(str(today + timedelta(days=d)) for d in (-1, 0, 1))
    return (
        G(name="sales", number="7101", members=dict(AGENTS3), ring_timeout=15),
        G(name="rr", number="7102", strategy="round_robin", members=dict(AGENTS3)),
        G(name="fewest", number="7103", strategy="fewest_calls", members=dict(AGENTS3)),
        G(name="skill", number="7104", strategy="skill_level",
          members={"1001": 1, "1002": 5, "1003": 3}),
        G(name="random", number="7105", strategy="random", members=dict(AGENTS3)),
        G(name="noans", number="7106", members={"1001": 1, "1002": 1}, ring_timeout=3),
        G(name="ovwait", number="7107", members={}, max_wait=2,
          max_wait_destination="group:ovtarget"),
        G(name="ovtarget", number="7108", members={"1001": 1}),
        G(name="ovlen", number="7109", members={"1002": 1}, max_queue_length=1,
          queue_full_destination="hangup", announce_every=2),
        G(name="closed", number="7110", members={"1001": 1}, holidays=holidays,
          closed_destination="voicemail:closedbox"),
        G(name="cb", number="7111", members={"1001": 1},
          callback=CB(key="*", attempts=2, gap=5, dial_timeout=10)),
        G(name="wrap", number="7112", members={"1003": 1}, wrapup_seconds=60),
        G(name="restart", number="7113", members={"1001": 1}),
        G(name="rec", number="7114", members={"1001": 1, "1002": 1}, record="all"),
    )


def acd_test_config(base: configmod.Config, agent3_password: str) -> configmod.Config:
    agents = tuple(base.agents) + (configmod.AgentConfig(id="1003", name="Carol",
                                                         password=agent3_password),)
    return replace(base, agents=agents, groups=acd_groups())


@pytest.fixture(scope="session")
def acd_config(asterisk, test_config) -> configmod.Config:
    """The session config plus the ACD's test agents and groups, rendered into the running
    test Asterisk (a reload)."""
    cfg = acd_test_config(test_config, secrets.token_urlsafe(18))
    Asterisk(install=asterisk.install, layout=asterisk.layout, cfg=cfg).up()
    return cfg


@contextlib.asynccontextmanager
async def serving(cfg: configmod.Config, tmp_path,
                  url: str | None = None) -> AsyncIterator[Server]:
    """Our server on ``cfg``, on a fresh database (``url``, or a SQLite file in
    ``tmp_path``), ready (state taken up); stopped after."""
    cfg = replace(cfg, database=replace(
        cfg.database, url=url or f"sqlite+aiosqlite:///{tmp_path / 'acd.db'}"))
    srv = Server(cfg, rng=random.Random(RANDOM_SEED))
    await srv.start()
    try:
        await asyncio.wait_for(srv.runtime.ready.wait(), WAIT)
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def acd_server(acd_config, tmp_path, request, db_kind):
    """Our server with the test groups, on a fresh database, ready (state taken up); on
    PostgreSQL for a test marked for both databases (tests/conftest.py)."""
    url = pg_database(request) if db_kind == "postgresql" else None
    async with serving(acd_config, tmp_path, url) as srv:
        yield srv


# --------------------------------------------------------------------------- waiting

def mark(ami: AmiClient) -> int:
    return len(ami.events.events)


async def after(ami: AmiClient, since: int, pred: Callable[[AmiEvent], bool],
                what: str = "event", timeout: float = WAIT) -> AmiEvent:
    """The first AMI event at or after index ``since`` that matches."""
    before = {id(e) for e in ami.events.events[:since]}
    return await ami.events.wait_for(lambda e: id(e) not in before and pred(e), timeout, what)


def events_of(ami: AmiClient, name: str, **fields: str) -> list[AmiEvent]:
    return [e for e in ami.events.events if e.name == name
            and all(field(e, k) == v for k, v in fields.items())]


class Watch:
    """Every message of a hub topic, kept in order, with waits like the AMI event log."""

    def __init__(self, hub: Any, topic: str) -> None:
        self.sub = hub.subscribe(topic)
        self.messages: list[dict[str, Any]] = []
        self._changed = asyncio.Condition()
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        while True:
            msg = await self.sub.get()
            if msg is None:
                return
            async with self._changed:
                self.messages.append(msg)
                self._changed.notify_all()

    async def wait(self, pred: Callable[[dict[str, Any]], bool], since: int = 0,
                   what: str = "message", timeout: float = WAIT) -> dict[str, Any]:
        async def _wait() -> dict[str, Any]:
            async with self._changed:
                while True:
                    for m in self.messages[since:]:
                        if pred(m):
                            return m
                    await self._changed.wait()
        try:
            return await asyncio.wait_for(_wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"no {what} within {timeout}s on {self.sub.topic}; "
                                 f"got {[m.get('type') for m in self.messages[-20:]]}") from None

    def close(self) -> None:
        self._task.cancel()
        self.sub.close()


# --------------------------------------------------------------------------- agents

class Agents:
    """Logged-in agents with real phones; their hub topics watched."""

    def __init__(self, srv: Server, cfg: configmod.Config) -> None:
        self.srv = srv
        self.cfg = cfg
        self.phones: dict[str, SoftPhone] = {}
        self.watch: dict[str, Watch] = {}

    def login(self, *agent_ids: str) -> None:
        for a in agent_ids:
            self._watch(a)
            self.srv.runtime.login(a)

    def _watch(self, agent_id: str) -> Watch:
        if agent_id not in self.watch:
            self.watch[agent_id] = Watch(self.srv.hub, f"agent:{agent_id}")
        return self.watch[agent_id]

    async def phone(self, agent_id: str, **kw: Any) -> SoftPhone:
        """Start the agent's phone and wait until the ACD sees it reachable."""
        w = self._watch(agent_id)
        since = len(w.messages)
        a = self.cfg.asterisk
        agent = next(x for x in self.cfg.agents if x.id == agent_id)
        phone = SoftPhone(agent_id, agent.password, a.sip_host, a.sip_port, **kw)
        self.phones[agent_id] = phone
        await phone.start()
        if self.srv.runtime.agent(agent_id)["state"] != "offline":
            await w.wait(lambda m: m["type"] == "state" and m["reachable"], since,
                         what=f"agent {agent_id} reachable")
        return phone

    async def wait_state(self, agent_id: str, state: str, since: int = 0) -> dict[str, Any]:
        return await self._watch(agent_id).wait(
            lambda m: m["type"] == "state" and m["state"] == state, since,
            what=f"agent {agent_id} {state}")

    async def wait_free(self, agent_id: str, since: int = 0) -> dict[str, Any]:
        """Idle with a free phone: the next caller can ring it. The leg of the call before
        hangs up in the dialplan a moment after the agent is idle again; until then the phone
        is in use and the next caller goes to another agent (as app_queue's ringinuse=no)."""
        return await self._watch(agent_id).wait(
            lambda m: m["type"] == "state" and m["state"] == "idle" and not m["phone_in_use"],
            since, what=f"agent {agent_id} idle with a free phone")

    def mark(self, agent_id: str) -> int:
        return len(self._watch(agent_id).messages)

    async def close(self) -> None:
        for w in self.watch.values():
            w.close()
        for p in self.phones.values():
            await p.stop()


@pytest.fixture
async def agents(acd_server, acd_config):
    a = Agents(acd_server, acd_config)
    yield a
    await a.close()


# --------------------------------------------------------------------------- callers

def waiting_in_queue(e: AmiEvent, channel: str) -> bool:
    """The event of a caller starting the wait of [acd-queue] (music on hold, in a holding
    bridge of its own, in Asterisk)."""
    return (e.name == "Newexten" and field(e, "Channel") == channel
            and field(e, "Context") == "acd-queue" and field(e, "Exten") == "wait"
            and field(e, "Application") == "BridgeWait")


class Caller:
    """A real SIP caller on the loopback trunk, dialling one of the ACD's numbers. Each has
    its own caller number, which also finds its incoming (queue) leg among the others."""

    def __init__(self, ami: AmiClient, number: str, caller_num: str | None = None,
                 name: str = "Test Caller", tone_hz: int | None = None) -> None:
        self.ami = ami
        self.tone_hz = tone_hz     # the caller sends this tone all along (None: silence)
        self.number = number
        self.caller_num = caller_num or f"1390000{next(_numbers):04d}"
        self.name = name
        self.trunk_channel = ""
        self.channel = ""          # the leg in our dialplan (queue); its Uniqueid = call id
        self.uniqueid = ""

    async def dial(self) -> "Caller":
        tag = f"acdcall{next(_tags)}"
        m = mark(self.ami)
        tone = [f"TONE_HZ={self.tone_hz}"] if self.tone_hz else []
        await self.ami.action("Originate", Channel=f"PJSIP/{self.number}@acd-trunk",
                              Context="acd-testcaller", Exten="tone" if tone else "wait",
                              Priority=1, CallerID=f'"{self.name}" <{self.caller_num}>',
                              Async="true", Variable=["HOLD_FOR=120", *tone],
                              ChannelId=f"{tag}-caller")
        self.trunk_channel = field(await after(
            self.ami, m, lambda e: e.name == "Newchannel" and field(e, "Uniqueid") == f"{tag}-caller",
            "the caller's channel"), "Channel")
        ev = await after(self.ami, m, lambda e: e.name == "Newchannel"
                         and field(e, "Channel").startswith("PJSIP/acd-caller-")
                         and field(e, "CallerIDNum") == self.caller_num, "the incoming leg")
        self.channel, self.uniqueid = field(ev, "Channel"), field(ev, "Uniqueid")
        return self

    async def queued(self, since: int = 0) -> AmiEvent:
        """The caller is registered and waits in Asterisk (the dialplan's wait: music on
        hold, no FastAGI session)."""
        return await after(self.ami, since, lambda e: waiting_in_queue(e, self.channel),
                           f"{self.caller_num} waiting in the queue")

    async def bridged(self, since: int = 0) -> str:
        """Wait until the caller is bridged with an agent's leg; returns the agent id."""
        enter = await after(self.ami, since, lambda e: talk_entered(e)
                            and field(e, "Channel") == self.channel, f"{self.caller_num} bridged")
        bridge = field(enter, "BridgeUniqueid")
        other = await after(self.ami, since, lambda e: talk_entered(e)
                            and field(e, "BridgeUniqueid") == bridge
                            and field(e, "Channel") != self.channel, "the agent in the bridge")
        return field(other, "Channel").removeprefix("PJSIP/").split("-")[0]

    async def send_dtmf(self, digits: str) -> None:
        for d in digits:
            m = mark(self.ami)
            await self.ami.action("PlayDTMF", Channel=self.trunk_channel, Digit=d, Duration=120)
            await after(self.ami, m, lambda e, d=d: e.name == "DTMFEnd"
                        and field(e, "Channel") == self.channel and field(e, "Digit") == d
                        and field(e, "Direction") == "Received", f"DTMF {d}")

    async def hangup(self) -> None:
        await self.ami.action("Hangup", Channel=self.trunk_channel)
        await self.gone()

    async def gone(self, since: int = 0) -> AmiEvent:
        return await after(self.ami, since, lambda e: e.name == "Hangup"
                           and field(e, "Channel") == self.channel, f"{self.caller_num} hung up")

    def hung_up_before(self, index: int) -> bool:
        return any(e.name == "Hangup" and field(e, "Channel") == self.channel
                   for e in self.ami.events.events[:index])


async def stored(srv: Server, uniqueid: str, ended: bool = False) -> dict[str, Any]:
    """The call's record once every write so far is done and, with ``ended``, once the
    server has recorded its end (the test's own AMI link may see the hangup first)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while True:
        await srv.runtime.quiesce()
        call = await srv.store.get_call(uniqueid)
        if call is not None and (not ended or call["end_reason"]):
            return call
        assert loop.time() < deadline, f"no {'finished ' if ended else ''}record of {uniqueid}: {call}"
        await asyncio.sleep(0.05)  # polling the store, bounded


def kinds(call: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in call["events"]]
