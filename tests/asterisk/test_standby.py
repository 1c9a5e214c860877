"""A leader and a standby (`acd run` twice, ha on) sharing one PostgreSQL database and one
Asterisk, as real processes:

* the leader SIGKILLed with a caller talking, two waiting and one ringing an agent: the
  standby takes the lease and leads within seconds (the figure is printed, not asserted),
  the talking call goes on, the ringing caller is answered by that agent, the agents' states
  match Asterisk, the waiting callers are served in their order, a caller arriving afterwards reaches the new
  leader through the dialplan's list of FastAGI servers, every record has one end;
* the leader frozen (SIGSTOP) longer than its lease: the standby takes over and serves a new
  caller; woken up (SIGCONT), the old leader acts no more: it ends with status 75 and says
  why, and the call the new leader connected goes on untouched;
* both started at once: one leads; the old leader started again after a takeover: a standby;
* PostgreSQL restarted under the pair: the leader keeps leading, nothing is lost, and a clean
  stop hands over to the standby at once.

Held calls and consultations across a takeover take the restart path (the new leader takes
up its state as a restarted server does): tests/asterisk/test_call_control_restart.py.
"""
from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import replace

import aiohttp
import pytest

from acd.asterisk.runner import Asterisk
from acd.leader import LOST_EXIT
from acd.store.db import Store
from tests.asterisk.acd_fixtures import WAIT, Caller, acd_config, kinds, mark  # noqa: F401
from tests.asterisk.calls import field, talk_entered
from tests.asterisk.control_fixtures import moh_started, moh_stopped
from tests.asterisk.phones import SoftPhone
from tests.asterisk.test_acd_restart import ServerProcess, dump, write_config
from tests.web_login import login, password_of

ON_POSTGRESQL = pytest.mark.parametrize("db_kind", ["postgresql"], indirect=True)
LEASE = 2.0


def _pair(cfg, asterisk, tmp_path, db_url, lease: float = LEASE):
    """Two configs on one database and one Asterisk: the second server's HTTP and FastAGI
    one port up; the dialplan tries the first, then the second."""
    a_agi = f"127.0.0.1:{cfg.agi.port}"
    b_agi = f"127.0.0.1:{cfg.agi.port + 1}"
    # Both servers' secrets in the file they share: generated ones would differ per data
    # folder (the README says to share data/secrets.yaml, or to give them in the config).
    agents = tuple(replace(x, web_password=x.web_password or f"web-{x.id}-password")
                   for x in cfg.agents)
    both = replace(cfg, agents=agents, agi=replace(cfg.agi, servers=(a_agi, b_agi)))
    Asterisk(install=asterisk.install, layout=asterisk.layout, cfg=both).up()   # the dialplan
    procs = []
    for node, http_port, agi_port in (("a", cfg.http.port, cfg.agi.port),
                                      ("b", cfg.http.port + 1, cfg.agi.port + 1)):
        c = replace(both, http=replace(both.http, port=http_port),
                    agi=replace(both.agi, port=agi_port),
                    ha=replace(both.ha, enabled=True, node=f"node-{node}", lease_seconds=lease))
        path = tmp_path / f"config-{node}.yaml"
        write_config(c, path, db_url, tmp_path / f"data-{node}")
        procs.append(ServerProcess(path))
    return procs[0], procs[1]


def agent_phone(cfg, agent_id: str, **kw) -> SoftPhone:  # noqa: ANN001
    a = cfg.asterisk
    agent = next(x for x in cfg.agents if x.id == agent_id)
    return SoftPhone(agent_id, agent.password, a.sip_host, a.sip_port, answer="auto", **kw)


def web_client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT),
                                 cookie_jar=aiohttp.CookieJar(unsafe=True))


async def leader_then_standby(cfg, first: ServerProcess, second: ServerProcess,  # noqa: ANN001
                              phone: SoftPhone, http: aiohttp.ClientSession) -> None:
    """Agent 1001's phone up, the first server leading, the second waiting, 1001 logged in."""
    await phone.start()
    await first.start()
    await first.wait_log("runtime.rebuilt")
    await second.start()
    await second.wait_log("ha.standby")
    base_a = f"http://127.0.0.1:{cfg.http.port}"
    admin = await login(http, "admin", password_of(cfg, "admin"), base=base_a)
    async with admin.post(f"{base_a}/api/agents/1001/login") as r:
        assert r.status == 200


@pytest.fixture
async def restore_dialplan(asterisk, acd_config):
    yield
    Asterisk(install=asterisk.install, layout=asterisk.layout, cfg=acd_config).up()


async def until_state(http: aiohttp.ClientSession, base: str, agent: str, state: str) -> None:
    deadline = time.monotonic() + WAIT
    while True:
        async with http.get(f"{base}/api/agents/{agent}") as r:
            if r.status == 200 and (await r.json())["state"] == state:
                return
        assert time.monotonic() < deadline, f"agent {agent} never {state}"
        await asyncio.sleep(0.1)


async def one_leads(x: ServerProcess, y: ServerProcess) -> tuple[ServerProcess, ServerProcess]:
    """Both started at once: exactly one leads, the other waits. Returns (leader, standby)."""
    def said(p: ServerProcess, event: str) -> bool:
        return any(m.get("event") == event for m in p.lines)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if said(x, "runtime.rebuilt") and said(y, "ha.standby"):
            return x, y
        if said(y, "runtime.rebuilt") and said(x, "ha.standby"):
            return y, x
        await asyncio.sleep(0.1)
    raise AssertionError("not one leader and one standby")


@ON_POSTGRESQL
async def test_the_standby_takes_over_from_a_killed_leader_and_drops_nobody(
        acd_config, asterisk, ami, tmp_path, db_url, restore_dialplan):
    cfg = acd_config
    a_proc, b_proc = _pair(cfg, asterisk, tmp_path, db_url)
    phone = agent_phone(cfg, "1001")
    slow = agent_phone(cfg, "1002", answer_delay=8)      # rings through the takeover
    holder = agent_phone(cfg, "1003")
    agent_http, http = web_client(), web_client()
    first = second = again = None
    try:
        await phone.start()
        await slow.start()
        await holder.start()
        await asyncio.gather(a_proc.start(), b_proc.start())       # both at once
        first, second = await one_leads(a_proc, b_proc)
        port = {id(a_proc): cfg.http.port, id(b_proc): cfg.http.port + 1}
        base_a = f"http://127.0.0.1:{port[id(first)]}"
        admin = await login(http, "admin", password_of(cfg, "admin"), base=base_a)
        async with admin.post(f"{base_a}/api/agents/1001/login") as r:
            assert r.status == 200

        m = mark(ami)
        talking = await Caller(ami, "7113").dial()
        assert await talking.bridged(m) == "1001"
        # agent 1003 puts a caller on hold (the agent's own session: call control)
        async with admin.post(f"{base_a}/api/agents/1003/login") as r:
            assert r.status == 200
        hm = mark(ami)
        held = await Caller(ami, "7112").dial()
        assert await held.bridged(hm) == "1003"
        c3 = await login(agent_http, "1003", "web-1003-password", base=base_a)
        hm = mark(ami)
        async with c3.post(f"{base_a}/api/agents/1003/call/hold") as r:
            assert r.status == 200 and (await r.json())["control"]["state"] == "held"
        await moh_started(ami, held, hm)
        waiting = []
        for _ in range(2):
            c = await Caller(ami, "7113").dial()
            await c.queued(m)
            waiting.append(c)
        # a third caller rings agent 1002 (group sales: 1001 is busy) through the takeover
        async with admin.post(f"{base_a}/api/agents/1002/login") as r:
            assert r.status == 200
        rm = mark(ami)
        ringing = await Caller(ami, "7101").dial()
        await until_state(http, base_a, "1002", "ringing")

        killed_at = time.monotonic()
        await first.kill()
        rebuilt = await second.wait_log("runtime.rebuilt")
        print(f"\nthe standby led {time.monotonic() - killed_at:.2f} s after the SIGKILL "
              f"(lease {LEASE} s)")
        assert (rebuilt["agents"], rebuilt["connected"], rebuilt["held"]) == (3, 1, 1)
        await second.wait_log("ha.dialplan_points_here")
        assert await ringing.bridged(rm) == "1002"           # the ringing caller is served

        # the same web session at the new leader (sessions are in the database)
        base_b = f"http://127.0.0.1:{port[id(second)]}"
        async with http.get(f"{base_b}/api/agents/1001") as r:
            assert r.status == 200
            got = await r.json()
            assert (got["state"], got["call_id"]) == ("talking", talking.uniqueid)
        async with http.get(f"{base_b}/api/agents/1002") as r:
            got = await r.json()
            assert (got["state"], got["call_id"]) == ("talking", ringing.uniqueid)
        async with http.get(f"{base_b}/api/agents/1003") as r:
            got = await r.json()
            assert (got["state"], got["control"]["state"], got["call_id"]) == (
                "talking", "held", held.uniqueid)
        hm = mark(ami)                                # resumed at the new leader
        async with c3.post(f"{base_b}/api/agents/1003/call/resume") as r:
            assert r.status == 200 and (await r.json())["control"]["state"] == "talking"
        await moh_stopped(ami, held, hm)
        await held.hangup()
        async with http.get(f"{base_b}/api/queues") as r:
            queue = (await r.json())["queues"]["restart"]
        assert [c["call_id"] for c in queue["calls"]] == [c.uniqueid for c in waiting]
        await ringing.hangup()

        # a new caller reaches the new leader straight away
        late_m = mark(ami)
        late = await Caller(ami, "7113").dial()
        await late.queued(late_m)

        current = talking
        for c in [*waiting, late]:
            m = mark(ami)
            await current.hangup()
            assert await c.bridged(m) == "1001"
            current = c
        await current.hangup()
        for c in [talking, *waiting, late]:
            enter = next(i for i, e in enumerate(ami.events.events)
                         if talk_entered(e) and field(e, "Channel") == c.channel)
            assert not c.hung_up_before(enter), f"{c.caller_num} was dropped"
        # the old leader started again: it is the standby now
        again = ServerProcess(first.config_path)
        await again.start()
        await again.wait_log("ha.standby")
        assert not any(m.get("event") == "runtime.rebuilt" for m in again.lines)
        await again.stop()
        await second.stop()
        assert first.errors() == [] and second.errors() == [] and again.errors() == []
    finally:
        await http.close()
        await agent_http.close()
        for p in (a_proc, b_proc, again):
            if p is not None:
                await p.stop()
        await phone.stop()
        await slow.stop()
        await holder.stop()
        dump(("a", a_proc), ("b", b_proc))

    store = Store(db_url)
    try:
        for c in [talking, *waiting, late, ringing, held]:
            k = kinds(await store.get_call(c.uniqueid))
            assert k.count("ended") == 1 and "answered" in k, (c.caller_num, k)
        k = kinds(await store.get_call(held.uniqueid))
        assert k.index("hold") < k.index("restored") < k.index("resume") < k.index("ended")
    finally:
        await store.close()


@ON_POSTGRESQL
async def test_a_frozen_leader_woken_after_its_lease_does_nothing(
        acd_config, asterisk, ami, tmp_path, db_url, restore_dialplan):
    cfg = acd_config
    first, second = _pair(cfg, asterisk, tmp_path, db_url)
    phone = agent_phone(cfg, "1001")
    http = web_client()
    try:
        await leader_then_standby(cfg, first, second, phone, http)

        assert first.proc is not None
        first.proc.send_signal(signal.SIGSTOP)
        await second.wait_log("ha.dialplan_points_here")     # led, and said so to Asterisk
        m = mark(ami)
        caller = await Caller(ami, "7113").dial()
        assert await caller.bridged(m) == "1001"

        woke = mark(ami)
        first.proc.send_signal(signal.SIGCONT)
        lost = await first.wait_log("ha.lease_lost")
        assert await asyncio.wait_for(first.proc.wait(), WAIT) == LOST_EXIT
        assert lost["node"] == "node-a"
        # it did nothing: the caller is still in the same call with the same agent
        await asyncio.sleep(1.0)
        assert not [e for e in ami.events.events[woke:]
                    if field(e, "Channel") == caller.channel
                    and e.name in ("Hangup", "BridgeLeave", "Newexten")]
        m = mark(ami)
        await caller.hangup()
        await second.stop()
        assert second.errors() == []
    finally:
        await http.close()
        if first.proc is not None and first.proc.returncode is None:
            first.proc.send_signal(signal.SIGCONT)
        await first.stop()
        await second.stop()
        await phone.stop()
        dump(("first", first), ("second", second))

    store = Store(db_url)
    try:
        k = kinds(await store.get_call(caller.uniqueid))
        assert k.count("ended") == 1 and k.count("answered") == 1, k
    finally:
        await store.close()


async def test_postgresql_restarted_under_the_pair_loses_nothing(
        acd_config, asterisk, ami, tmp_path, own_pg, restore_dialplan):
    """PostgreSQL restarted (pg_ctl stop -m fast, then start) while a call ends: the leader
    keeps its lease (the restart is shorter than the default lease's margin), the standby
    stays a standby, the records waiting meanwhile are written once it is back."""
    cfg = acd_config
    first, second = _pair(cfg, asterisk, tmp_path, own_pg.url("acd"), lease=6.0)
    phone = agent_phone(cfg, "1001")
    http = web_client()
    try:
        await leader_then_standby(cfg, first, second, phone, http)
        m = mark(ami)
        caller = await Caller(ami, "7113").dial()
        assert await caller.bridged(m) == "1001"

        await asyncio.to_thread(own_pg.stop, "fast")
        await caller.hangup()                        # its end waits in the leader's writer
        await asyncio.sleep(1.0)
        await asyncio.to_thread(own_pg.start)

        store = Store(own_pg.url("acd"))
        try:
            deadline = time.monotonic() + WAIT
            while True:                              # written once the database is back
                try:
                    call = await store.get_call(caller.uniqueid)
                except Exception:                    # noqa: BLE001 - still starting
                    call = None
                if call is not None and "ended" in kinds(call):
                    break
                assert time.monotonic() < deadline, "the call's end was never written"
                await asyncio.sleep(0.2)
            k = kinds(call)
            assert k.count("ended") == 1 and k.count("answered") == 1, k
        finally:
            await store.close()
        assert first.proc is not None and first.proc.returncode is None
        assert not [m for m in first.lines if m.get("event") == "ha.lease_lost"]
        assert not [m for m in second.lines if m.get("event") == "runtime.rebuilt"]
        await first.stop()
        await second.wait_log("runtime.rebuilt")     # a clean stop hands over at once
        await second.stop()
    finally:
        await http.close()
        await first.stop()
        await second.stop()
        await phone.stop()
        dump(("first", first), ("second", second))
