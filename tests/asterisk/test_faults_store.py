"""The database locked by another process while real callers arrive, walk the IVR, are
answered and hang up: the callers are served as usual, the records wait in memory (the
health route says so), and once the lock is gone every call record is whole, with one end
reason, and every agent's state rows are there, in order."""
from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from agi.flows.runner import SORRY
from tests.asterisk.acd_fixtures import (WAIT, Caller, acd_config, acd_server,  # noqa: F401
                                         agents, kinds, mark, stored)
from tests.asterisk.flow_fixtures import (agi_command, commands, flow_servers,  # noqa: F401
                                          flows_config, in_queue, nth_command, trail)
from tests.integration.test_store_faults import Lock


async def health(srv) -> dict[str, Any]:  # noqa: ANN001
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{srv.http_port}/api/health") as r:
            assert r.status == 200
            return await r.json()


async def failing(srv) -> dict[str, Any]:  # noqa: ANN001
    """The health route once a write has failed on the lock (SQLite's busy timeout passed):
    from then on the writer retries, which a lost record would show."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        during = await health(srv)
        if during["store_writes"]["failing"]:
            return during
        assert loop.time() < deadline, during
        await asyncio.sleep(0.2)       # polling the health route, bounded


async def test_calls_are_served_and_recorded_whole_across_a_database_lock(acd_server, agents,
                                                                          ami):
    srv = acd_server
    agents.login("1001", "1002")
    await agents.phone("1001", answer="auto")
    await agents.phone("1002", answer="auto")
    await srv.runtime.quiesce()
    before = await health(srv)
    assert before["status"] == "ok" and before["store_writes"]["pending"] == 0

    db_path = srv.cfg.database.url.split(":///", 1)[1]
    lock = await Lock(db_path).held()
    try:
        m = mark(ami)
        first = await Caller(ami, "7101").dial()
        second = await Caller(ami, "7101").dial()
        answered_by = {await first.bridged(m), await second.bridged(m)}
        assert answered_by == {"1001", "1002"}
        for a in ("1001", "1002"):
            assert srv.runtime.agent(a)["state"] == "talking"
        since = {a: agents.mark(a) for a in ("1001", "1002")}
        await first.hangup()
        await second.hangup()
        for a in ("1001", "1002"):
            await agents.wait_state(a, "idle", since[a])

        # The lock is still held: nothing of these calls is written, and the health route
        # shows the backlog.
        during = await failing(srv)
        writes = during["store_writes"]
        assert during["status"] == "degraded" and writes["degraded"] is True, during
        assert writes["pending"] >= 10 and writes["last_error"] == "database is locked", writes
        # Reads go on meanwhile (the screen pop, the rebuild): the lock holds back writes only.
        assert await asyncio.wait_for(srv.store.get_call(first.uniqueid), WAIT) is None
    finally:
        await lock.release()

    for caller in (first, second):
        call = await stored(srv, caller.uniqueid, ended=True)
        k = kinds(call)
        assert k[0] == "arrived" and k.count("ended") == 1, k
        for kind in ("queued", "offered", "ringing", "answered", "ended"):
            assert kind in k, k
        assert k.index("queued") < k.index("ringing") < k.index("answered") < k.index("ended")
        assert call["end_reason"] == "caller_hangup" and call["skill_group"] == "sales"
        assert call["did"] == "7101" and call["answered_at"] is not None
    for a in ("1001", "1002"):
        rows = await srv.store.agent_states(a)
        assert [r["state"] for r in rows] == ["idle", "ringing", "talking", "wrapup", "idle"]
        assert srv.runtime.agent(a)["state"] == "idle"
    after = await health(srv)
    assert after["status"] == "ok", after
    st = after["store_writes"]
    assert st["pending"] == 0 and st["failed"] == 0 and not st["failing"]
    assert st["written"] >= before["store_writes"]["written"] + writes["pending"]


async def test_a_caller_walks_the_ivr_while_the_database_is_locked_and_is_recorded_whole(
        flow_servers, ami):
    """The example hotline (menu, identity check keyed in, queue) walked with real keys while
    another process holds the database: the IVR's writes wait in the store writer's queue,
    so the caller hears no "sorry" and reaches the queue with the keys on the ACD's call."""
    flow_servers.copy_examples()
    srv = await flow_servers.start()
    db_path = srv.cfg.database.url.split(":///", 1)[1]
    lock = await Lock(db_path).held()
    try:
        m = mark(ami)
        caller = await Caller(ami, "7301", "13800000001").dial()     # not in the directory
        await nth_command(ami, m, caller.channel, "STREAM FILE", 2, "the menu prompt")
        m2 = mark(ami)
        await caller.send_dtmf("2")
        await agi_command(ami, m2, caller.channel, "STREAM FILE", "the verification prompt")
        await caller.send_dtmf("12345#")
        await in_queue(ami, m2, caller.channel)
        during = await failing(srv)
        assert during["status"] == "degraded" and during["store_writes"]["pending"] >= 5, during
        assert await srv.store.get_call(caller.uniqueid) is None          # nothing written yet
        # The ACD has the caller, verified, with the keys (the queued ones).
        info = srv.runtime.call_info(caller.uniqueid)
        assert (info["state"], info["group"]) == ("waiting", "payments"), info
        assert info["key_trail"] == ["2", "12345#"], info
        assert not any(SORRY in c for c in commands(ami, caller.channel, m)), \
            commands(ami, caller.channel, m)
    finally:
        await lock.release()

    call = await stored(srv, caller.uniqueid)
    assert trail(call) == [("main_menu", "2"), ("verify", "12345#")]
    assert (call["verification"], call["verification_method"]) == ("verified",
                                                                    "keyed_customer_number")
    assert call["skill_group"] == "payments" and call["end_reason"] is None
    k = kinds(call)
    assert k[0] == "arrived" and k.count("arrived") == 1
    assert k.index("verification") < k.index("to_queue") < k.index("queued"), k
    await caller.hangup()
    call = await stored(srv, caller.uniqueid, ended=True)
    assert kinds(call).count("ended") == 1 and call["end_reason"] in ("abandoned",
                                                                     "caller_hangup"), call
    assert "ivr_error" not in str(call["events"])
    st = (await health(srv))["store_writes"]
    assert st["pending"] == 0 and st["failed"] == 0 and not st["failing"], st
