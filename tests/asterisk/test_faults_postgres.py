"""PostgreSQL stopped (``pg_ctl stop -m fast``) while real callers arrive, are answered and
hang up, then started again: the callers are served as usual, the records wait in the store
writer's queue (the health route says "degraded"), and once the server is back every call
record is whole, with one end reason, and every agent's state rows are there, in order."""
from __future__ import annotations

import asyncio

from tests.asterisk.acd_fixtures import (WAIT, Agents, Caller, acd_config,  # noqa: F401
                                         kinds, mark, serving, stored)
from tests.asterisk.test_faults_store import health


async def test_calls_are_served_and_recorded_whole_across_a_postgresql_stop(
        acd_config, ami, own_pg, tmp_path):
    async with serving(acd_config, tmp_path, own_pg.url("acd")) as srv:
        agents = Agents(srv, acd_config)
        try:
            await _served_across_a_stop(srv, agents, ami, own_pg)
        finally:
            await agents.close()


async def _served_across_a_stop(srv, agents, ami, own_pg) -> None:  # noqa: ANN001
    agents.login("1001", "1002")
    await agents.phone("1001", answer="auto")
    await agents.phone("1002", answer="auto")
    await srv.runtime.quiesce()
    before = await health(srv)
    assert before["status"] == "ok" and before["store_writes"]["pending"] == 0, before

    await asyncio.to_thread(own_pg.stop, "fast")
    try:
        m = mark(ami)
        first = await Caller(ami, "7101").dial()
        second = await Caller(ami, "7101").dial()
        assert {await first.bridged(m), await second.bridged(m)} == {"1001", "1002"}
        for a in ("1001", "1002"):
            assert srv.runtime.agent(a)["state"] == "talking"
        since = {a: agents.mark(a) for a in ("1001", "1002")}
        await first.hangup()
        await second.hangup()
        for a in ("1001", "1002"):
            await agents.wait_state(a, "idle", since[a])

        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while not (during := await health(srv))["store_writes"]["failing"]:
            assert loop.time() < deadline, during
            await asyncio.sleep(0.2)        # polling the health route, bounded
        writes = during["store_writes"]
        assert during["status"] == "degraded" and writes["pending"] >= 10, during
        assert writes["failed"] == 0, writes
    finally:
        await asyncio.to_thread(own_pg.start)

    for caller in (first, second):
        call = await stored(srv, caller.uniqueid, ended=True)
        k = kinds(call)
        assert k[0] == "arrived" and k.count("ended") == 1, k
        for kind in ("queued", "offered", "ringing", "answered", "ended"):
            assert kind in k, k
        assert k.index("queued") < k.index("ringing") < k.index("answered") < k.index("ended")
        assert call["end_reason"] == "caller_hangup" and call["skill_group"] == "sales"
        assert call["answered_at"] is not None
    for a in ("1001", "1002"):
        rows = await srv.store.agent_states(a)
        assert [r["state"] for r in rows] == ["idle", "ringing", "talking", "wrapup", "idle"]
        assert srv.runtime.agent(a)["state"] == "idle"
    after = await health(srv)
    st = after["store_writes"]
    assert after["status"] == "ok" and st["pending"] == 0 and st["failed"] == 0, after
    assert st["written"] >= before["store_writes"]["written"] + writes["pending"]
