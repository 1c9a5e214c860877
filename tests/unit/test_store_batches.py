"""The store writer's batches on a real SQLite file and on a real PostgreSQL server: what one
turn finds waiting is written in ONE transaction (commits counted on the writes' engine), in
order; a bad write in the middle is skipped and logged while the others land; a database
away (SQLite locked by another connection, PostgreSQL's server stopped) makes the batch wait
and retry, then everything lands; flush markers, the backlog's counts, spill
and replay keep their meaning. And the Core writes do what the ORM ones did."""
from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import structlog
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine

from acd.store import db as dbmod
from acd.store.db import Store, sqlite_file
from acd.store.writer import StoreWriter
from tests.conftest import BOTH_DATABASES

pytestmark = BOTH_DATABASES

AT = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)
WAIT = 30.0            # ends a stuck test; never measures speed


class Commits:
    """Transactions committed and rolled back on the store's writes' engine."""

    def __init__(self, store: Store) -> None:
        self.commits = self.rollbacks = 0
        event.listen(store.write_engine, "commit", self._commit)
        event.listen(store.write_engine, "rollback", self._rollback)

    def _commit(self, _conn) -> None:  # noqa: ANN001
        self.commits += 1

    def _rollback(self, _conn) -> None:  # noqa: ANN001
        self.rollbacks += 1


@pytest.fixture
async def store(db_url, monkeypatch):
    # A short busy timeout: a try under another connection's lock gives up quickly.
    monkeypatch.setattr(dbmod, "BUSY_TIMEOUT_MS", 50)
    s = Store(db_url)
    yield s
    await s.close()


class Outage:
    """The database away for the store's writes until :meth:`end`: a SQLite file locked by
    another connection (``BEGIN EXCLUSIVE``), or the PostgreSQL server stopped (``pg_ctl
    stop -m fast``; started again on the same port)."""

    def __init__(self, store: Store, pg: Any) -> None:
        self.store, self.pg = store, pg
        self.held: sqlite3.Connection | None = None
        self.on = False

    async def begin(self) -> "Outage":
        if self.pg is not None:
            await asyncio.to_thread(self.pg.stop, "fast")
        else:
            self.held = sqlite3.connect(sqlite_file(self.store.url), isolation_level=None)
            self.held.execute("BEGIN EXCLUSIVE")
        self.on = True
        return self

    async def end(self) -> None:
        if not self.on:
            return
        self.on = False
        if self.pg is not None:
            await asyncio.to_thread(self.pg.start)
        else:
            self.held.execute("COMMIT")
            self.held.close()

    def says(self, error: str | None) -> bool:
        """The writer's last error is this outage's."""
        if self.pg is None:
            return error == "database is locked"
        return bool(error) and ("connect" in error.lower() or "closed" in error.lower())


@pytest.fixture
async def outage(store, db_kind, request):
    o = Outage(store, request.getfixturevalue("pg_server") if db_kind == "postgresql" else None)
    yield o
    await o.end()


@pytest.fixture
async def writer(store, tmp_path):
    w = StoreWriter(first_delay=0.01, max_delay=0.05, spill=tmp_path / "acd.db.backlog.jsonl")
    w.start()
    yield w
    await w.stop(timeout=1.0)


def submit_call(writer: StoreWriter, store: Store, uid: str, n: int = 0) -> int:
    """One call's writes as the IVR and the runtime make them; how many."""
    at, b, agent = AT + timedelta(seconds=n), {"call": uid}, "1001"
    writer.submit("call_arrived", store.call_arrived, uniqueid=uid, channel=f"PJSIP/c-{uid}",
                  caller_number="13800138000", caller_name="Caller", did="7000", at=at, bind=b)
    writer.submit("ivr", store.call_event, uid, "ivr", at=at, detail={"flow": "hotline"},
                  bind=b)
    for i, keys in enumerate(("1", "2", "12345#")):
        writer.submit("key_pressed", store.key_pressed, uid, node=f"n{i}", keys=keys, at=at,
                      bind=b)
    writer.submit("queued", store.call_event, uid, "queued", at=at, detail={"group": "sales"},
                  bind=b)
    writer.submit("call_group", store.call_update, uid, skill_group="sales", bind=b)
    writer.submit("agent_state", store.agent_state, agent, "talking", reason="", at=at,
                  previous="ringing", call_uniqueid=uid, bind={"agent": agent, "call": uid})
    writer.submit("call_answered", store.call_update, uid, answered_at=at, bind=b)
    writer.submit("call_leg", store.call_leg, uid, agent_id=agent, role="answer",
                  started_at=at, ended_at=at + timedelta(seconds=30), talk=30.0, hold=0.0,
                  reason="caller_hangup", bind=b)
    writer.submit("call_ended", store.call_ended, uid, reason="caller_hangup",
                  at=at + timedelta(seconds=30), bind=b)
    writer.submit("call_leg_wrapup", store.call_leg_wrapup, uid, agent, 12.5, bind=b)
    return 12


async def assert_whole(store: Store, uid: str) -> None:
    call = await store.get_call(uid)
    assert call is not None, uid
    assert [e["kind"] for e in call["events"]] == ["arrived", "ivr", "queued", "ended"], call
    assert [(k["node"], k["keys"]) for k in call["key_trail"]] == [
        ("n0", "1"), ("n1", "2"), ("n2", "12345#")]
    assert (call["skill_group"], call["end_reason"]) == ("sales", "caller_hangup")
    assert call["answered_at"] is not None
    assert [(leg["talk_seconds"], leg["wrapup_seconds"]) for leg in call["legs"]] == [
        (30.0, 12.5)]


async def rows(store: Store, sql: str) -> list[tuple]:
    """What another connection sees committed."""
    engine = create_async_engine(store.url)
    try:
        async with engine.connect() as conn:
            return [tuple(r) for r in (await conn.execute(text(sql))).all()]
    finally:
        await engine.dispose()


async def test_the_writes_waiting_at_a_turn_are_committed_in_one_transaction_in_order(
        store, writer):
    counted = Commits(store)
    n = sum(submit_call(writer, store, f"c{i}", i) for i in range(10))
    await asyncio.wait_for(writer.drain(), WAIT)
    assert (counted.commits, counted.rollbacks) == (1, 0)
    assert writer.written == n == 120 and writer.failed == 0
    for i in range(10):
        await assert_whole(store, f"c{i}")
    # The rows in the order submitted (a call's events never before the call row).
    assert [r[0] for r in await rows(store, "SELECT uniqueid FROM calls ORDER BY id")] == [
        f"c{i}" for i in range(10)]
    assert [r[0] for r in await rows(store, "SELECT call_uniqueid FROM agent_state_changes"
                                      " ORDER BY id")] == [f"c{i}" for i in range(10)]


async def test_a_batch_holds_at_most_batch_max_writes(store, writer):
    writer.batch_max = 50
    counted = Commits(store)
    for i in range(10):                         # 120 writes: 50 + 50 + 20
        submit_call(writer, store, f"c{i}", i)
    await asyncio.wait_for(writer.drain(), WAIT)
    assert counted.commits == 3 and writer.written == 120


async def test_an_idle_writer_woken_by_a_write_lets_the_next_moments_writes_join_it(
        store, writer):
    writer.linger = 0.5                     # long, so that the test does not race it
    counted = Commits(store)
    submit_call(writer, store, "c1", 1)
    await asyncio.sleep(0.05)               # the writer lingers: nothing written yet
    assert writer.written == 0
    submit_call(writer, store, "c2", 2)

    async def written() -> None:
        while writer.written < 24:
            await asyncio.sleep(0.01)
    await asyncio.wait_for(written(), WAIT)
    assert counted.commits == 1             # both calls in one transaction


async def test_someone_waiting_on_the_writes_ends_the_linger(store, writer):
    writer.linger = 60.0
    submit_call(writer, store, "c1", 1)
    await asyncio.sleep(0.01)
    assert await asyncio.wait_for(writer.flush(), WAIT) is True      # a flush: at once
    submit_call(writer, store, "c2", 2)
    await asyncio.sleep(0.01)
    await asyncio.wait_for(writer.drain(), WAIT)                     # a drain too
    submit_call(writer, store, "c3", 3)
    await asyncio.sleep(0.01)
    await asyncio.wait_for(writer.stop(), WAIT)                      # and the stop
    for uid in ("c1", "c2", "c3"):
        await assert_whole(store, uid)


async def test_a_bad_write_in_the_middle_of_a_batch_is_skipped_and_logged_the_others_land(
        store, writer):
    counted = Commits(store)
    with structlog.testing.capture_logs() as logs:
        submit_call(writer, store, "c1", 1)
        writer.submit("queued", store.call_event, "nobody", "queued", at=AT,
                      bind={"call": "nobody"})                  # no such call
        writer.submit("call_rating", store.call_rating, "c1", 9, at=AT, bind={"call": "c1"})
        submit_call(writer, store, "c2", 2)
        await asyncio.wait_for(writer.drain(), WAIT)
    assert writer.failed == 2 and writer.written == 24
    failed = [e for e in logs if e["event"] == "store.write_failed"]
    assert [(e["call"], e["op"], e["log_level"]) for e in failed] == [
        ("nobody", "queued", "error"), ("c1", "call_rating", "error")]
    assert [type(e["exc_info"]) for e in failed] == [LookupError, ValueError]
    assert [e["event"] for e in logs] == ["store.write_failed"] * 2
    # Each bad one rolls its try back; the writes before it are committed without it, the
    # rest follows in the next turn: c1, then (the rating alone, nothing to commit) c2.
    # (Counted before the reads: on PostgreSQL they share the engine, and end in a rollback.)
    assert (counted.commits, counted.rollbacks) == (2, 2)
    await assert_whole(store, "c1")
    await assert_whole(store, "c2")
    assert (await store.get_call("c1"))["rating"] is None


async def test_a_database_away_holds_the_batch_until_it_is_back(store, writer, outage):
    """SQLite locked by another connection, or the PostgreSQL server stopped."""
    await outage.begin()
    try:
        with structlog.testing.capture_logs() as logs:
            submit_call(writer, store, "c1", 1)
            submit_call(writer, store, "c2", 2)

            async def seen() -> None:
                while not (writer.status()["failing"] and writer.retries >= 3):
                    await asyncio.sleep(0.01)
            await asyncio.wait_for(seen(), WAIT)
            submit_call(writer, store, "c3", 3)     # after the outage began: after c1, c2
            st = writer.status()
            assert (st["pending"], st["written"]) == (36, 0) and outage.says(
                st["last_error"]), st
            assert [m for m, _, _ in writer.queued("c2")][:2] == ["call_arrived", "call_event"]
            await outage.end()
            await asyncio.wait_for(writer.drain(), WAIT)
    finally:
        await outage.end()
    assert [e["event"] for e in logs] == ["store.write_retrying", "store.write_recovered"]
    assert logs[0]["call"] == "c1" and logs[0]["pending"] == 24 and logs[1]["waited"] == 36
    assert writer.written == 36 and writer.failed == 0
    for uid in ("c1", "c2", "c3"):
        await assert_whole(store, uid)
    assert [r[0] for r in await rows(store, "SELECT uniqueid FROM calls ORDER BY id")] == [
        "c1", "c2", "c3"]


async def test_a_flush_returns_once_the_writes_before_it_are_committed(store, writer):
    counted = Commits(store)
    busy = asyncio.Event()

    async def before() -> None:            # holds the writer while the backlog builds up
        await busy.wait()
    writer.submit("before", before)
    submit_call(writer, store, "c1", 1)
    writer.submit("queued", store.call_event, "nobody", "queued", at=AT)   # fails: settled
    flushed = asyncio.ensure_future(writer.flush(WAIT))
    await asyncio.sleep(0)                  # its marker is queued now, after c1's writes
    submit_call(writer, store, "c2", 2)     # after the marker
    assert not flushed.done()
    busy.set()
    assert await flushed is True
    # What another connection sees then: every write before the marker.
    assert ("c1",) in await rows(store, "SELECT uniqueid FROM calls")
    assert await rows(store, "SELECT count(*) FROM key_presses k JOIN calls c ON c.id = k.call_id"
                       " WHERE c.uniqueid = 'c1'") == [(3,)]
    await asyncio.wait_for(writer.drain(), WAIT)
    assert await writer.flush() is True             # nothing waiting: at once
    # c1, the bad one and c2 were one batch with the marker inside: the bad one rolled the
    # first try back, c1 was committed (the marker then resolved), c2 followed.
    assert (counted.commits, counted.rollbacks) == (2, 1)
    await assert_whole(store, "c2")
    assert writer.failed == 1 and writer.written == 25


async def test_the_backlog_counts_follow_batches_and_markers(store, writer, outage):
    await outage.begin()
    try:
        submit_call(writer, store, "c1", 1)
        writer.submit("agent_state", store.agent_state, "1002", "idle", reason="", at=AT,
                      bind={"agent": "1002"})
        submit_call(writer, store, "c2", 2)
        marker = asyncio.ensure_future(writer.flush(WAIT))  # a marker among the writes
        await asyncio.sleep(0)
        writer.submit("queued", store.call_event, "c1", "queued", at=AT, bind={"call": "c1"})
        assert writer.status()["pending"] == 26
        assert len(writer.queued("c1")) == 13 and len(writer.queued("c2")) == 12
        assert writer.queued("c1")[-1] == ("call_event", ("c1", "queued"), {"at": AT})
        assert writer.queued("1002") == [] and writer.queued("c9") == []
        assert await asyncio.wait_for(marker, WAIT) is False   # the outage ends the wait
    finally:
        await outage.end()
    await asyncio.wait_for(writer.drain(), WAIT)
    assert writer.status()["pending"] == 0 and writer.queued("c1") == []
    assert writer._by_call == {} and writer._count == 0       # nothing left behind
    assert writer.written == 26


async def test_writes_that_are_not_the_stores_are_awaited_alone_in_their_place(store, writer):
    counted = Commits(store)
    seen: list[tuple] = []

    async def elsewhere() -> None:         # not a store method: between two batches
        seen.append(tuple(await rows(store, "SELECT uniqueid FROM calls")))
    submit_call(writer, store, "c1", 1)
    writer.submit("other", elsewhere)
    submit_call(writer, store, "c2", 2)
    await asyncio.wait_for(writer.drain(), WAIT)
    assert seen == [(("c1",),)]            # c1 committed before it, c2 not yet
    assert counted.commits == 2 and writer.written == 25


async def test_a_batch_failing_as_a_whole_is_written_one_by_one(db_url):
    class Broken(Store):
        fails = 1

        async def write_batch(self, items):  # noqa: ANN001, ANN201
            if self.fails:
                self.fails -= 1
                raise RuntimeError("a bug in the batch")
            return await super().write_batch(items)
    store = Broken(db_url)
    writer = StoreWriter()
    writer.start()
    try:
        with structlog.testing.capture_logs() as logs:
            submit_call(writer, store, "c1", 1)
            await asyncio.wait_for(writer.drain(), WAIT)
        assert [e["event"] for e in logs] == ["store.batch_failed"]
        assert logs[0]["writes"] == 12
        assert writer.written == 12 and writer.failed == 0
        await assert_whole(store, "c1")
    finally:
        await writer.stop()
        await store.close()


async def test_a_stop_during_an_outage_spills_and_a_replay_writes_them_in_one_batch(
        store, tmp_path, outage):
    spill = tmp_path / "acd.db.backlog.jsonl"
    writer = StoreWriter(first_delay=0.01, max_delay=0.05, spill=spill)
    writer.start()
    await outage.begin()
    try:
        submit_call(writer, store, "s1", 1)

        async def seen() -> None:
            while not writer.status()["failing"]:
                await asyncio.sleep(0.01)
        await asyncio.wait_for(seen(), WAIT)
        await writer.stop(timeout=0.05)
    finally:
        await outage.end()
    lines = [json.loads(x) for x in spill.read_text().splitlines()]
    assert len(lines) == 12 and lines[0]["method"] == "call_arrived"
    assert await store.get_call("s1") is None
    again = StoreWriter(spill=spill)
    assert again.replay(store) == 12 and not spill.exists()
    counted = Commits(store)
    again.start()
    await asyncio.wait_for(again.drain(), WAIT)
    await again.stop()
    assert counted.commits == 1 and again.written == 12
    await assert_whole(store, "s1")


# --------------------------------------------------------------------------- the Core writes

async def test_a_batch_keeps_each_writes_meaning(store):
    """Within one transaction: a repeated arrival keeps the first row, keys are numbered in
    order, the end reason is set once (the second returns False), the first answer time
    stays, a wrap-up goes to the agent's newest leg; the values come back in order."""
    at = [AT + timedelta(seconds=i) for i in range(10)]
    items = [
        ("call_arrived", (), dict(uniqueid="u1", channel="PJSIP/a", caller_number="1" * 300,
                                  caller_name="A", did="7000", at=at[0], linkedid="L1")),
        ("call_arrived", (), dict(uniqueid="u1", channel="PJSIP/b", caller_number="2",
                                  caller_name="B", did="7001", at=at[1])),
        ("key_pressed", ("u1",), dict(node="main", keys="1", at=at[1])),
        ("key_pressed", ("u1",), dict(node="main", keys="2", at=at[2])),
        ("call_update", ("u1",), dict(skill_group="sales", answered_at=at[3])),
        ("call_update", ("u1",), dict(answered_at=at[4])),
        ("call_leg", ("u1",), dict(agent_id="1001", role="answer", started_at=at[3],
                                   ended_at=at[5], talk=2, hold=0, reason="transferred")),
        ("call_leg", ("u1",), dict(agent_id="1001", role="consult", started_at=at[5],
                                   ended_at=at[6], talk=1, hold=0, reason="caller_hangup")),
        ("call_leg_wrapup", ("u1", "1001", 7), {}),
        ("set_verification", ("u1",), dict(result="verified", method="caller_number",
                                           at=at[2], detail={"node": "v"})),
        ("call_rating", ("u1", 4), dict(at=at[7])),
        ("call_ended", ("u1",), dict(reason="caller_hangup", at=at[8])),
        ("call_ended", ("u1",), dict(reason="agent_hangup", at=at[9])),
        ("outbound_call", (), dict(uniqueid="o1", agent_id="1002", number="555", at=at[0])),
        ("agent_state", ("1001", "wrapup"), dict(reason="", at=at[8], previous="talking",
                                                 call_uniqueid="u1")),
        ("agent_pending", ("1001", "break"), dict(reason="lunch", at=at[8])),
    ]
    out = await store.write_batch(items)
    assert [e for e, _ in out] == [None] * len(items)
    values = [v for _, v in out]
    assert values[0] == values[1] and values[12] is False and values[11] is True
    call = await store.get_call("u1")
    assert (call["caller_number"], call["channel"], call["linkedid"]) == ("1" * 256, "PJSIP/a",
                                                                         "L1")
    assert [(k["keys"], k["at"]) for k in call["key_trail"]] == [
        ("1", at[1].isoformat()), ("2", at[2].isoformat())]
    assert (call["skill_group"], call["answered_at"]) == ("sales", at[3].isoformat())
    assert (call["end_reason"], call["ended_at"]) == ("caller_hangup", at[8].isoformat())
    assert (call["rating"], call["verification"], call["verification_method"]) == (
        4, "verified", "caller_number")
    assert [(e["kind"], e["detail"]) for e in call["events"]] == [
        ("arrived", {"did": "7000"}),
        ("verification", {"result": "verified", "method": "caller_number", "node": "v"}),
        ("rated", {"rating": 4}), ("ended", {"reason": "caller_hangup"})]
    assert [(leg["role"], leg["wrapup_seconds"]) for leg in call["legs"]] == [
        ("answer", None), ("consult", 7.0)]
    outbound = await store.get_call("o1")
    assert (outbound["direction"], outbound["caller_number"]) == ("outbound", "555")
    assert [e["detail"] for e in outbound["events"]] == [{"agent": "1002", "number": "555"}]
    assert (await store.latest_agent_states())["1001"]["call_uniqueid"] == "u1"
    assert (await store.latest_agent_pending())["1001"]["state"] == "break"


async def test_a_batch_stops_at_a_bad_write_and_settles_the_ones_before(store):
    counted = Commits(store)
    items = [("agent_state", ("1001", "idle"), dict(reason="", at=AT)),
             ("call_event", ("nobody", "queued"), dict(at=AT)),
             ("agent_state", ("1001", "break"), dict(reason="", at=AT))]
    out = await store.write_batch(items)
    assert len(out) == 2 and out[0] == (None, None) and isinstance(out[1][0], LookupError)
    assert counted.commits == 1
    assert [r["state"] for r in await store.agent_states("1001")] == ["idle"]
    out = await store.write_batch([("call_event", ("nobody", "x"), dict(at=AT))])
    assert len(out) == 1 and isinstance(out[0][0], LookupError)


async def test_the_stores_own_writes_raise_as_before(store):
    with pytest.raises(LookupError):
        await store.call_event("nobody", "queued", at=AT)
    with pytest.raises(LookupError):
        await store.call_update("nobody")
    with pytest.raises(ValueError):
        await store.call_rating("nobody", 0, at=AT)
    assert await store.outbound_call(uniqueid="o1", agent_id="1001", number="5", at=AT) == \
        await store.outbound_call(uniqueid="o1", agent_id="1002", number="6", at=AT)


async def test_a_database_that_is_not_a_file_has_its_batches_run_on_the_async_engine():
    """No thread of our own (a server database, or SQLite in memory): the same writes in one
    transaction through ``run_sync`` on a connection of the async engine."""
    from acd.store.models import Base
    store = Store("sqlite+aiosqlite:///:memory:")
    async with store.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    assert store.write_engine is store.engine.sync_engine
    counted = Commits(store)
    writer = StoreWriter()
    writer.start()
    try:
        submit_call(writer, store, "c1", 1)
        writer.submit("queued", store.call_event, "nobody", "queued", at=AT)
        submit_call(writer, store, "c2", 2)
        await asyncio.wait_for(writer.drain(), WAIT)
        assert (writer.written, writer.failed) == (24, 1)
        assert (counted.commits, counted.rollbacks) == (2, 1)
        await assert_whole(store, "c1")
        await assert_whole(store, "c2")
        assert await store.call_ended("c1", reason="again", at=AT) is False
    finally:
        await writer.stop()
        await store.close()
