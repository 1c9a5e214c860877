"""The AMI link lost during real calls, through the whole server, and our server killed while
an agent's phone rings.

* The link cut (both sockets reset), and half-open (nothing comes back, nothing is closed:
  the Ping watchdog replaces it), with two callers waiting, one agent's phone ringing and
  one call connected. While the link is down the ringing phone is answered, a waiting caller
  and the connected caller hang up. Once the link is back the runtime's reconcile makes up
  every missed event: the answered ring becomes a conversation, the records end with the
  right reasons, the agents are in their true states and the caller still waiting is served.
* Our server SIGKILLed while an agent's phone rings, with another caller waiting: after the
  restart the ring left behind is hung up, the caller is offered again, first, and both
  callers are served; nobody is dropped, every record is whole.

Waits have generous upper bounds: they end a stuck test, they never measure speed.
"""
from __future__ import annotations

import asyncio
import random
from dataclasses import replace

import aiohttp
import pytest

from acd.app import Server
from acd.store.db import Store
from tests.asterisk.acd_fixtures import (RANDOM_SEED, WAIT, Agents, Caller, acd_config,  # noqa: F401
                                         after, kinds, mark, stored)
from tests.asterisk.calls import field, talk_entered
from tests.asterisk.phones import SoftPhone
from tests.asterisk.proxies import AmiProxy
from tests.asterisk.test_acd_restart import ServerProcess, dump, write_config
from tests.web_login import login, password_of

SALES = "7101"          # members 1001-1003; 1003 stays logged out here
RESTART = "7113"        # member 1001 only


async def _until(pred, what: str, timeout: float = WAIT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        assert loop.time() < deadline, f"not within {timeout}s: {what}"
        await asyncio.sleep(0.05)     # polling, bounded


async def _link_lost_during_calls(acd_config, ami, tmp_path, fault: str) -> None:
    proxy = await AmiProxy(acd_config.ami.host, acd_config.ami.port).start()
    cfg = replace(acd_config,
                  ami=replace(acd_config.ami, host="127.0.0.1", port=proxy.port),
                  database=replace(acd_config.database,
                                   url=f"sqlite+aiosqlite:///{tmp_path / 'acd.db'}"))
    srv = Server(cfg, rng=random.Random(RANDOM_SEED))
    agents = Agents(srv, cfg)
    links: list[bool] = []
    try:
        await srv.start()
        await asyncio.wait_for(srv.runtime.ready.wait(), WAIT)
        srv.ami.on_connection(links.append)

        # One call connected with 1001.
        agents.login("1001")
        await agents.phone("1001", answer="auto")
        m = mark(ami)
        connected = await Caller(ami, SALES).dial()
        assert await connected.bridged(m) == "1001"
        # One ringing at 1002 (its phone answers only when told to).
        agents.login("1002")
        p1002 = await agents.phone("1002", answer="manual")
        s1002 = agents.mark("1002")
        ringing = await Caller(ami, SALES).dial()
        await agents.wait_state("1002", "ringing", s1002)
        await p1002.wait_event("CALL_INCOMING")
        # Two waiting: nobody is free.
        leaves, stays = await Caller(ami, SALES).dial(), await Caller(ami, SALES).dial()
        await leaves.queued(m)
        await stays.queued(m)

        # The fault. New links are held (the client's Login goes unanswered) until released.
        first = proxy.current()
        proxy.hold()
        if fault == "cut":
            proxy.cut(first)
            await _until(lambda: links[:1] == [False], "the server saw the link go")
        else:
            proxy.freeze(first)          # the watchdog finds out by itself, later
        down = mark(ami)

        # While the server hears nothing: the agent answers, two callers hang up.
        s1002 = agents.mark("1002")
        await p1002.answer()
        await p1002.wait_event("CALL_ESTABLISHED")
        await leaves.hangup()
        await connected.hangup()
        await after(ami, down, lambda e: e.name == "Hangup"
                    and field(e, "Channel").startswith("PJSIP/1001-"), "1001's leg gone")
        if fault == "freeze":
            await _until(lambda: links[:1] == [False], "the Ping watchdog dropped the link")
            # The proxy hears the client close its end a moment after the client says so.
            await _until(lambda: first.ended_by is not None, "the proxy saw the link end")
            assert first.ended_by == "client" and "Ping" in first.swallowed
        # The server heard none of it.
        assert srv.runtime.agent("1002")["state"] == "ringing"
        assert srv.runtime.agent("1001")["state"] == "talking"
        assert [m for m in agents.watch["1002"].messages[s1002:] if m["type"] == "state"] == []

        proxy.release()
        await _until(lambda: links[-1:] == [True] and srv.ami.connected, "the link back")
        assert len(proxy.links) >= 2

        # Made up: the answered ring is a conversation, 1001 is free again and serves the
        # caller still waiting; the others' records end with the right reasons.
        assert await ringing.bridged(down) == "1002"
        await agents.wait_state("1002", "talking", s1002)
        assert await stays.bridged(down) == "1001"
        for c in (ringing, stays):
            enter = next(i for i, e in enumerate(ami.events.events)
                         if talk_entered(e) and field(e, "Channel") == c.channel)
            assert not c.hung_up_before(enter), f"{c.caller_num} was dropped"
        assert (await stored(srv, leaves.uniqueid, ended=True))["end_reason"] == "abandoned"
        call = await stored(srv, connected.uniqueid, ended=True)
        assert call["end_reason"] == "caller_hangup", kinds(call)
        s1001, s1002 = agents.mark("1001"), agents.mark("1002")
        await ringing.hangup()
        await stays.hangup()
        await agents.wait_state("1001", "idle", s1001)
        await agents.wait_state("1002", "idle", s1002)

        for c in (connected, ringing, leaves, stays):
            call = await stored(srv, c.uniqueid, ended=True)
            k = kinds(call)
            assert k.count("ended") == 1 and k.count("queued") == 1, (c.caller_num, k)
            assert call["skill_group"] == "sales"
        for c in (connected, ringing, stays):
            call = await stored(srv, c.uniqueid, ended=True)
            assert call["end_reason"] == "caller_hangup" and call["answered_at"], kinds(call)
        ring = kinds(await stored(srv, ringing.uniqueid))
        assert ring.index("offered") < ring.index("answered")
        for agent_id in ("1001", "1002"):
            assert srv.runtime.agent(agent_id)["state"] == "idle"
        assert srv.runtime.queues()["sales"]["waiting"] == 0
    finally:
        await agents.close()
        await srv.stop()
        await proxy.stop()


async def test_ami_link_cut_during_calls_is_made_up_by_the_reconcile(acd_config, ami, tmp_path):
    await _link_lost_during_calls(acd_config, ami, tmp_path, "cut")


async def test_half_open_ami_link_during_calls_is_replaced_and_made_up(acd_config, ami, tmp_path):
    await _link_lost_during_calls(acd_config, ami, tmp_path, "freeze")


@pytest.mark.parametrize("while_down", ["rings_on", "answered"])
async def test_server_killed_while_a_phone_rings_drops_nobody(acd_config, ami, tmp_path,
                                                             while_down):
    """The agent's phone keeps ringing through the restart, or is answered while no server
    runs."""
    cfg = acd_config
    db = f"sqlite+aiosqlite:///{tmp_path / 'acd.db'}"
    config_path = tmp_path / "config.yaml"
    write_config(cfg, config_path, db, tmp_path / "data")
    api = f"http://{cfg.http.host}:{cfg.http.port}/api"
    a = cfg.asterisk
    agent = next(x for x in cfg.agents if x.id == "1001")
    phone = SoftPhone("1001", agent.password, a.sip_host, a.sip_port, answer="manual")
    first, second = ServerProcess(config_path), ServerProcess(config_path)
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT),
                                 cookie_jar=aiohttp.CookieJar(unsafe=True))
    ringing = waiting = None
    try:
        await phone.start()
        await first.start()
        await first.wait_log("runtime.rebuilt")
        admin = await login(http, "admin", password_of(cfg, "admin"), base=api.removesuffix("/api"))
        async with admin.post(f"{api}/agents/1001/login") as r:
            assert r.status == 200 and (await r.json())["state"] == "idle"

        m = mark(ami)
        ringing = await Caller(ami, RESTART).dial()
        rang = await phone.wait_event("CALL_INCOMING")
        waiting = await Caller(ami, RESTART).dial()
        await waiting.queued(m)

        killed = mark(ami)
        await first.kill()
        if while_down == "answered":
            await phone.answer()
            await phone.wait_event("CALL_ESTABLISHED", id=rang["id"])
        restarted = mark(ami)
        await second.start()
        rebuilt = await second.wait_log("runtime.rebuilt")
        if while_down == "answered":
            # The conversation goes on: the answered leg is bridged with its caller.
            assert (rebuilt["agents"], rebuilt["connected"], rebuilt["waiting"]) == (1, 1, 1)
            kept = await second.wait_log("runtime.answered_ring_restored")
            assert kept["call"] == ringing.uniqueid
        else:
            # The ring the killed server left is ended; the caller is offered again, first.
            assert (rebuilt["agents"], rebuilt["connected"], rebuilt["waiting"]) == (1, 0, 2)
            orphan = await second.wait_log("runtime.orphan_leg_hungup")
            assert orphan["call"] == ringing.uniqueid
            await phone.wait_event("CALL_CLOSED", id=rang["id"])
            again = await phone.wait_event("CALL_INCOMING")
            assert again["id"] != rang["id"]
            await phone.answer()
        assert await ringing.bridged(restarted) == "1001"
        async with http.get(f"{api}/agents/1001") as r:
            agent1001 = await r.json()
        assert (agent1001["state"], agent1001["call_id"]) == ("talking", ringing.uniqueid)
        async with http.get(f"{api}/queues") as r:
            queue = (await r.json())["queues"]["restart"]
        assert [c["call_id"] for c in queue["calls"]] == [waiting.uniqueid]

        m = mark(ami)
        await ringing.hangup()
        await phone.wait_event("CALL_INCOMING")
        await phone.answer()
        assert await waiting.bridged(m) == "1001"
        await waiting.hangup()
        for c in (ringing, waiting):
            enter = next(i for i, e in enumerate(ami.events.events)
                         if i >= restarted and talk_entered(e)
                         and field(e, "Channel") == c.channel)
            assert not c.hung_up_before(enter), f"{c.caller_num} was dropped"
        assert not any(e.name == "Hangup" and field(e, "Channel") in (ringing.channel,
                                                                       waiting.channel)
                       for e in ami.events.events[killed:restarted])
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
        for c in (ringing, waiting):
            call = await store.get_call(c.uniqueid)
            k = kinds(call)
            assert call["end_reason"] == "caller_hangup", (c.caller_num, k)
            assert k.count("ended") == 1 and k.index("queued") < k.index("restored"), k
            assert k.index("restored") < k.index("answered") and call["answered_at"], k
        k = kinds(await store.get_call(ringing.uniqueid))
        assert k.index("offered") < k.index("restored")        # rang before the kill
        assert k.count("answered") == 1 and k.count("offered") == (
            1 if while_down == "answered" else 2), k
        states = await store.agent_states("1001")
        assert [s["state"] for s in states].count("talking") == 2
    finally:
        await store.close()
