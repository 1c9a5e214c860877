"""Fixtures for call control on real calls: the ACD test config plus two skill groups of our
own (rendered into the session's test Asterisk as a superset of the ACD tests' config), a
server with them, and helpers to wait on call-control messages and AMI events.

Groups: ``ctl`` (number 7120, member 1001: every test call reaches 1001 first; ring timeout
5 s for transfer and consult targets) and ``ctlxfer`` (7121, round robin over 1002 and 1003:
the target of transfers to a group and of consults of a group).
"""
from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from typing import Any

import pytest

from acd import config as configmod
from acd.app import Server
from acd.asterisk.runner import Asterisk
from tests.asterisk.acd_fixtures import (RANDOM_SEED, WAIT, Agents, Caller, after, mark,
                                         stored)
from tests.asterisk.calls import field

CALLER_ID = '"ACD Outbound" <4000123>'


def control_groups() -> tuple[configmod.GroupConfig, ...]:
    G = configmod.GroupConfig
    return (
        G(name="ctl", number="7120", members={"1001": 1}, ring_timeout=5, wrapup_seconds=0),
        G(name="ctlxfer", number="7121", strategy="round_robin",
          members={"1002": 1, "1003": 1}, ring_timeout=5, wrapup_seconds=2),
    )


@pytest.fixture(scope="session")
def control_config(asterisk, acd_config) -> configmod.Config:
    """The ACD tests' config with our groups and an outbound caller id, rendered into the
    running test Asterisk (a reload; a superset, so the other ACD tests are unaffected)."""
    cfg = replace(acd_config, groups=tuple(acd_config.groups) + control_groups(),
                  outbound=replace(acd_config.outbound, caller_id=CALLER_ID))
    Asterisk(install=asterisk.install, layout=asterisk.layout, cfg=cfg).up()
    return cfg


@pytest.fixture
async def control_server(control_config, tmp_path):
    cfg = replace(control_config, database=replace(
        control_config.database, url=f"sqlite+aiosqlite:///{tmp_path / 'acd.db'}"))
    srv = Server(cfg, rng=random.Random(RANDOM_SEED))
    await srv.start()
    try:
        await asyncio.wait_for(srv.runtime.ready.wait(), WAIT)
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def phone_dial_server(control_config, tmp_path):
    """Our server whose outbound calls dial phones registered at the test Asterisk
    (``outbound.dial: PJSIP/{number}``): a customer's phone can be a real SIP phone."""
    cfg = replace(control_config,
                  outbound=replace(control_config.outbound, dial="PJSIP/{number}"),
                  database=replace(control_config.database,
                                   url=f"sqlite+aiosqlite:///{tmp_path / 'acd.db'}"))
    srv = Server(cfg, rng=random.Random(RANDOM_SEED))
    await srv.start()
    try:
        await asyncio.wait_for(srv.runtime.ready.wait(), WAIT)
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def ctl_agents(control_server, control_config):
    a = Agents(control_server, control_config)
    yield a
    await a.close()


async def connected_call(srv: Server, agents: Agents, ami: Any, *phones: str) -> Caller:
    """Agents 1001 (and ``phones``) logged in with auto-answering phones; a caller on 7120
    talking with 1001."""
    ids = ("1001", *phones)
    agents.login(*ids)
    for a in ids:
        await agents.phone(a, answer="auto")
    m = mark(ami)
    caller = await Caller(ami, "7120").dial()
    assert await caller.bridged(m) == "1001"
    await agents.watch["1001"].wait(lambda msg: msg["type"] == "answered")
    await srv.runtime.quiesce()
    return caller


async def caller_hangs_up(agents: Agents, caller: Caller, agent: str) -> None:
    """The caller hangs up; wait until the server has seen it (the agent's screen is told
    the call ended), not only the test's own AMI connection."""
    since = agents.mark(agent)
    await caller.hangup()
    await agents.watch[agent].wait(lambda m: m["type"] == "ended"
                                   and m["call_id"] == caller.uniqueid, since,
                                   what=f"the end of the call on {agent}'s screen")


def transfer_event(agents: Agents, agent: str, event: str, since: int = 0, **match: Any):
    return agents.watch[agent].wait(
        lambda m: m["type"] == "transfer" and m["event"] == event
        and all(m.get(k) == v for k, v in match.items()), since,
        what=f"transfer {event} on {agent}'s screen")


async def moh_started(ami: Any, caller: Caller, since: int) -> None:
    await after(ami, since, lambda e: e.name == "MusicOnHoldStart"
                and field(e, "Uniqueid") == caller.uniqueid, "music on hold for the caller")


async def moh_stopped(ami: Any, caller: Caller, since: int) -> None:
    await after(ami, since, lambda e: e.name == "MusicOnHoldStop"
                and field(e, "Uniqueid") == caller.uniqueid, "the caller's music stopped")


async def joined(ami: Any, caller: Caller, since: int) -> str:
    """The caller enters a bridge again; returns the agent in it."""
    return await caller.bridged(since)


async def leg_hangup(ami: Any, agent: str, since: int) -> Any:
    return await after(ami, since, lambda e: e.name == "Hangup"
                       and field(e, "Channel").startswith(f"PJSIP/{agent}-"),
                       f"{agent}'s leg hung up")


def legs_of(ami: Any, agent: str, since: int = 0) -> list[Any]:
    return [e for e in ami.events.events[since:] if e.name == "Newchannel"
            and field(e, "Channel").startswith(f"PJSIP/{agent}-")]


__all__ = ["control_config", "control_server", "ctl_agents", "connected_call",
           "caller_hangs_up",
           "phone_dial_server",
           "transfer_event", "moh_started", "moh_stopped", "joined", "leg_hangup", "legs_of",
           "stored", "CALLER_ID", "control_groups"]
