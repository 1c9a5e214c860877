"""The store writer against a fake store and a fake clock: retries with a capped backoff while
the database is out, order kept, one log line when an outage starts and one when it ends,
other failures logged and skipped, the backlog as the health route shows it, and a stop with
writes still waiting (spilled, then replayed at the next start)."""
from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import datetime, timezone

import pytest
import structlog
from sqlalchemy import exc as sa_exc

from acd.store.writer import (QUEUED_WRITES, QueuedStore, StoreWriter, is_transient,
                              spill_path_for)

AT = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)
LOCKED = sqlite3.OperationalError("database is locked")
FULL = sa_exc.OperationalError("INSERT INTO calls ...", {},
                               sqlite3.OperationalError("database or disk is full"))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeStore:
    """Records writes in order; while ``outage`` is set every write raises it."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str]] = []
        self.outage: BaseException | None = None
        self.attempts = 0

    async def call_arrived(self, uniqueid: str, *, at: datetime) -> None:
        await self._write("arrived", uniqueid)

    async def call_event(self, uniqueid: str, kind: str, *, at: datetime) -> None:
        if uniqueid == "bad":
            raise LookupError("no call record for uniqueid 'bad'")
        await self._write(kind, uniqueid)

    async def _write(self, kind: str, uniqueid: str) -> None:
        self.attempts += 1
        await asyncio.sleep(0)
        if self.outage is not None:
            raise self.outage
        self.rows.append((uniqueid, kind))


class Env:
    def __init__(self, tmp_path) -> None:  # noqa: ANN001
        self.clock = Clock()
        self.store = FakeStore()
        self.delays: list[float] = []
        self.lift_after: int | None = None      # sleeps before the outage ends by itself
        self.writer = StoreWriter(clock=self.clock, sleep=self.sleep,
                                  spill=tmp_path / "acd.db.backlog.jsonl")

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.clock.now += seconds
        if self.lift_after is not None and len(self.delays) >= self.lift_after:
            self.store.outage = None
        await asyncio.sleep(0)

    def call(self, uid: str, *kinds: str) -> None:
        self.writer.submit("call_arrived", self.store.call_arrived, uid, at=AT,
                           bind={"call": uid})
        for k in kinds:
            self.writer.submit(k, self.store.call_event, uid, k, at=AT, bind={"call": uid})

    async def until(self, pred, what: str) -> None:  # noqa: ANN001
        for _ in range(10_000):                      # bounded: the fake clock never waits
            if pred():
                return
            await asyncio.sleep(0)
        raise AssertionError(f"never: {what}")


@pytest.fixture
async def env(tmp_path):
    e = Env(tmp_path)
    e.writer.start()
    yield e
    await e.writer.stop(timeout=0.5)


async def test_writes_in_order_when_the_store_is_fine(env):
    env.call("c1", "queued", "ringing")
    env.call("c2", "queued")
    assert await env.writer.flush() is True
    assert env.store.rows == [("c1", "arrived"), ("c1", "queued"), ("c1", "ringing"),
                              ("c2", "arrived"), ("c2", "queued")]
    assert env.writer.status() == {
        "pending": 0, "oldest_seconds": 0.0, "failing": False, "failing_for_seconds": None,
        "last_error": None, "failed": 0, "written": 5, "retries": 0, "outages": 0,
        "degraded": False}


async def test_a_locked_store_is_retried_with_capped_backoff_in_order_then_recovers(env):
    env.store.outage = LOCKED
    env.lift_after = 9
    with structlog.testing.capture_logs() as logs:
        env.call("c1", "queued", "ringing")
        await env.until(lambda: env.store.rows, "written after the outage")
        env.call("c2", "queued")                 # came after the outage: after c1, in order
        await env.writer.drain()
    assert env.delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
    assert env.store.rows == [("c1", "arrived"), ("c1", "queued"), ("c1", "ringing"),
                              ("c2", "arrived"), ("c2", "queued")]
    # One line when it starts (with the error and the call of the write that waits), one
    # when it ends: how many writes waited and for how long. None per retry.
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("store.write_retrying", "warning"), ("store.write_recovered", "info")]
    assert logs[0]["error"] == "database is locked" and logs[0]["call"] == "c1"
    assert logs[0]["pending"] == 3
    assert logs[1]["waited"] == 3
    assert logs[1]["failing_seconds"] == logs[1]["waited_seconds"] == pytest.approx(sum(env.delays))
    st = env.writer.status()
    assert (st["pending"], st["failing"], st["retries"], st["outages"], st["written"]) == \
        (0, False, 9, 1, 5)


async def test_the_backlog_is_shown_while_the_store_is_full_and_clears_after(env):
    env.store.outage = FULL
    env.call("c1", "queued")
    await env.until(lambda: env.writer.status()["failing"], "the outage seen")
    env.clock.now += 3.0
    env.call("c2")
    st = env.writer.status()
    assert st["pending"] == 3 and st["failing"] is True and st["degraded"] is True
    assert st["oldest_seconds"] >= 3.0 and st["failing_for_seconds"] >= 3.0
    assert st["last_error"] == "database or disk is full"
    # flush() does not hold its caller while the store is out: the writes stay queued.
    assert await env.writer.flush() is False
    assert env.store.rows == []
    env.store.outage = None
    await env.writer.drain()
    assert env.store.rows == [("c1", "arrived"), ("c1", "queued"), ("c2", "arrived")]
    assert env.writer.status()["degraded"] is False


async def test_a_slow_write_makes_the_store_degraded_before_it_fails(tmp_path):
    clock, release = Clock(), asyncio.Event()
    writer = StoreWriter(clock=clock)

    async def stuck() -> None:
        await release.wait()                     # a write waiting on SQLite's busy timeout
    writer.start()
    writer.submit("agent_state", stuck, bind={"agent": "1001"})
    await asyncio.sleep(0)
    assert writer.status()["degraded"] is False
    clock.now += 2.5
    st = writer.status()
    assert (st["pending"], st["failing"], st["degraded"]) == (1, False, True)
    release.set()
    await writer.drain()
    assert writer.status()["degraded"] is False and writer.written == 1
    await writer.stop()


async def test_a_failure_that_is_not_transient_is_logged_counted_and_skipped(env):
    with structlog.testing.capture_logs() as logs:
        env.call("c1")
        env.writer.submit("queued", env.store.call_event, "bad", "queued", at=AT,
                          bind={"call": "bad"})
        env.call("c2")
        await env.writer.drain()
    assert env.store.rows == [("c1", "arrived"), ("c2", "arrived")]
    assert env.writer.failed == 1 and env.delays == []
    assert [(e["event"], e.get("call"), e["log_level"]) for e in logs] == [
        ("store.write_failed", "bad", "error")]


async def test_stop_with_writes_waiting_spills_them_and_the_next_start_writes_them_first(
        tmp_path):
    env = Env(tmp_path)
    env.writer.start()
    env.store.outage = LOCKED
    env.call("c1", "queued")
    env.writer.submit("agent_state", env.store.call_event, "c1", "ringing", at=AT,
                      bind={"agent": "1001"})
    await env.until(lambda: env.writer.status()["failing"], "the outage seen")
    with structlog.testing.capture_logs() as logs:
        await env.writer.stop(timeout=0.05)
    assert [(e["event"], e["log_level"], e["pending"], e["spilled"]) for e in logs] == [
        ("store.writes_spilled", "error", 3, 3)]
    assert logs[0]["calls"] == ["c1"]
    lines = [json.loads(x) for x in env.writer.spill.read_text().splitlines()]
    assert [x["method"] for x in lines] == ["call_arrived", "call_event", "call_event"]
    assert lines[0]["kwargs"] == {"at": {"$datetime": AT.isoformat()}}

    # The next start: a fresh writer on the same file, a store that works.
    store = FakeStore()
    again = StoreWriter(spill=env.writer.spill)
    assert again.replay(store) == 3
    assert not again.spill.exists()
    again.start()
    again.submit("new", store.call_event, "c1", "answered", at=AT)
    await again.drain()
    assert store.rows == [("c1", "arrived"), ("c1", "queued"), ("c1", "ringing"),
                          ("c1", "answered")]
    await again.stop()


def test_a_leader_that_lost_its_lease_spills_at_once_what_waits(tmp_path):
    """spill_now (acd.app's lease_lost, just before the process ends): no await, nothing
    written to the store, everything waiting saved for this node's next start."""
    env = Env(tmp_path)                      # never started: nothing is written meanwhile
    env.call("c1", "queued", "ringing")
    with structlog.testing.capture_logs() as logs:
        assert env.writer.spill_now() == 3
    assert env.store.rows == [] and logs[0]["event"] == "store.writes_spilled"
    lines = [json.loads(x) for x in env.writer.spill.read_text().splitlines()]
    assert [x["method"] for x in lines] == ["call_arrived", "call_event", "call_event"]
    again = StoreWriter(spill=env.writer.spill)
    assert again.replay(FakeStore()) == 3


async def test_stop_without_a_spill_file_names_the_writes_not_made(tmp_path):
    store, writer = FakeStore(), StoreWriter(sleep=lambda s: asyncio.sleep(0))
    store.outage = LOCKED
    writer.start()
    writer.submit("call_arrived", store.call_arrived, "c9", at=AT, bind={"call": "c9"})
    with structlog.testing.capture_logs() as logs:
        await writer.stop(timeout=0.05)
    assert [e["event"] for e in logs] == ["store.write_retrying", "store.writes_lost_at_stop"]
    lost = logs[1]
    assert (lost["log_level"], lost["pending"], lost["calls"], lost["error"]) == \
        ("error", 1, ["c9"], "database is locked")


async def test_stop_lets_the_write_with_the_database_finish_and_spills_only_the_rest(tmp_path):
    release, store = asyncio.Event(), FakeStore()
    writer = StoreWriter(spill=tmp_path / "b.jsonl")

    async def slow(uniqueid: str, *, at: datetime) -> None:
        await release.wait()
        store.rows.append((uniqueid, "slow"))
    store.slow = slow
    writer.start()
    writer.submit("slow", store.slow, "c1", at=AT)
    writer.submit("queued", store.call_event, "c1", "queued", at=AT)
    await asyncio.sleep(0)
    stopping = asyncio.ensure_future(writer.stop(timeout=0.05))
    await asyncio.sleep(0.1)
    release.set()
    await stopping
    assert store.rows == [("c1", "slow")]          # finished, so not saved again
    lines = [json.loads(x) for x in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert [(x["method"], x["args"]) for x in lines] == [("call_event", ["c1", "queued"])]


async def test_a_spill_line_naming_no_store_method_is_skipped_with_an_error(tmp_path):
    spill = tmp_path / "b.jsonl"
    spill.write_text('{"op": "x", "method": "_call", "args": [], "kwargs": {}}\n'
                     'not json\n'
                     '{"op": "queued", "method": "call_event", "args": ["c1", "queued"],'
                     ' "kwargs": {"at": {"$datetime": "2026-11-21T12:00:00+00:00"}}}\n')
    store, writer = FakeStore(), StoreWriter(spill=spill)
    with structlog.testing.capture_logs() as logs:
        assert writer.replay(store) == 1
    assert [e["line"] for e in logs if e["event"] == "store.spill_line_bad"] == [1, 2]
    writer.start()
    await writer.drain()
    assert store.rows == [("c1", "queued")]
    await writer.stop()


def test_which_errors_pass_by_themselves():
    assert is_transient(LOCKED) and is_transient(FULL)
    assert is_transient(sqlite3.OperationalError("disk I/O error"))
    dropped = sa_exc.DBAPIError("SELECT 1", {}, ConnectionResetError(), connection_invalidated=True)
    assert is_transient(dropped)
    assert is_transient(sa_exc.TimeoutError("QueuePool limit reached"))
    assert not is_transient(sa_exc.OperationalError("SELECT", {},
                                                    sqlite3.OperationalError("no such table: x")))
    assert not is_transient(sa_exc.IntegrityError("INSERT", {},
                                                  sqlite3.IntegrityError("UNIQUE failed")))
    assert not is_transient(LookupError("no call record"))
    assert not is_transient(ValueError("a rating is 1 to 5"))


def test_a_spill_belongs_to_its_database():
    assert str(spill_path_for("sqlite+aiosqlite:///var/acd/acd.db", "data")) == \
        "var/acd/acd.db.backlog.jsonl"
    assert str(spill_path_for("postgresql+asyncpg://u@h/acd", "data")) == \
        "data/store-backlog.jsonl"


async def test_a_flush_waiting_on_a_write_returns_when_the_outage_starts(tmp_path):
    clock, fail = Clock(), asyncio.Event()
    writer = StoreWriter(clock=clock, sleep=lambda s: asyncio.sleep(0.01))

    async def write() -> None:
        await fail.wait()               # SQLite's busy timeout, then "locked"
        raise LOCKED
    writer.start()
    writer.submit("agent_state", write, bind={"agent": "1001"})
    flushing = asyncio.ensure_future(writer.flush(timeout=60))
    await asyncio.sleep(0.05)
    assert not flushing.done()          # the write is still trying: the flush waits
    fail.set()
    assert await asyncio.wait_for(flushing, 5) is False
    assert writer.status()["failing"] and writer.status()["pending"] == 1
    await writer.stop(timeout=0.05)


# --------------------------------------------------------------------------- the IVR's store

class LockableStore:
    """A real SQLite store; while ``outage`` is set every write raises it (reads go on, as
    they do in WAL mode under another process's lock)."""

    def __init__(self, store) -> None:  # noqa: ANN001
        self.store = store
        self.outage: BaseException | None = None
        for name in QUEUED_WRITES:
            setattr(self, name, self._writes(name))

    def _writes(self, name: str):  # noqa: ANN202
        real = getattr(self.store, name)

        async def write(*args, **kwargs):  # noqa: ANN002, ANN003
            await asyncio.sleep(0)
            if self.outage is not None:
                raise self.outage
            return await real(*args, **kwargs)
        write.__name__ = name
        write.__self__ = self          # a bound store method, as the spill file needs
        return write

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self.store, name)


@pytest.fixture
async def ivr(tmp_path, store):
    e = Env(tmp_path)
    e.store = LockableStore(store)
    e.writer.start()
    e.ivr = QueuedStore(e.store, e.writer)
    yield e
    await e.writer.stop(timeout=0.5)


async def test_the_ivr_store_queues_its_writes_in_one_order_with_the_acds(ivr):
    ivr.store.outage = LOCKED
    await ivr.ivr.call_arrived(uniqueid="u1", channel="PJSIP/x-1", caller_number="139",
                               caller_name="T", did="7000", at=AT)
    await ivr.ivr.key_pressed("u1", node="main", keys="2", at=AT)
    # The ACD's write of the same call, on the same writer, comes after the IVR's.
    ivr.writer.submit("queued", ivr.store.call_event, "u1", "queued", at=AT, bind={"call": "u1"})
    await ivr.ivr.set_verification("u1", result="verified", method="caller_number", at=AT)
    await ivr.ivr.call_rating("u1", 4, at=AT)
    await ivr.ivr.call_ended("u1", reason="caller_hangup", at=AT)
    await ivr.until(lambda: ivr.writer.status()["failing"], "the outage seen")
    # Every write returned at once (None: no script uses a write's value); all wait in order.
    assert [m for m, _, _ in ivr.writer.queued("u1")] == [
        "call_arrived", "key_pressed", "call_event", "set_verification", "call_rating",
        "call_ended"]
    assert ivr.writer.status()["pending"] == 6
    ivr.store.outage = None
    await ivr.writer.drain()
    call = await ivr.store.get_call("u1")
    assert [e["kind"] for e in call["events"]] == ["arrived", "queued", "verification", "rated",
                                                   "ended"]
    assert [(k["node"], k["keys"]) for k in call["key_trail"]] == [("main", "2")]
    assert (call["verification"], call["rating"], call["end_reason"]) == \
        ("verified", 4, "caller_hangup")


async def test_a_read_sees_the_calls_own_writes_and_during_an_outage_the_queued_ones(ivr):
    await ivr.ivr.call_arrived(uniqueid="u1", channel="PJSIP/x-1", caller_number="139",
                               caller_name="T", did="7000", at=AT)
    await ivr.ivr.key_pressed("u1", node="main", keys="1", at=AT)
    # Normal: the read waits for the writes before it (a bounded flush), then reads.
    call = await ivr.ivr.get_call("u1")
    assert [k["keys"] for k in call["key_trail"]] == ["1"] and "queued" not in call
    # Outage: the read goes on at once and adds what is still queued for the call.
    ivr.store.outage = LOCKED
    await ivr.ivr.key_pressed("u1", node="verify", keys="12345#", at=AT)
    await ivr.ivr.set_verification("u1", result="verified", method="keyed_customer_number",
                                   at=AT)
    await ivr.until(lambda: ivr.writer.status()["failing"], "the outage seen")
    call = await ivr.ivr.get_call("u1")
    assert [k["keys"] for k in call["key_trail"]] == ["1", "12345#"]
    assert call["verification"] == "verified" and call["queued"] == 2
    assert (await ivr.store.get_call("u1"))["verification"] is None      # not written yet
    # A call whose arrival is still queued is known; one that is not stays unknown.
    await ivr.ivr.call_arrived(uniqueid="u2", channel="PJSIP/x-2", caller_number="138",
                               caller_name="", did="7000", at=AT)
    await ivr.ivr.key_pressed("u2", node="main", keys="9", at=AT)
    u2 = await ivr.ivr.get_call("u2")
    assert (u2["uniqueid"], u2["did"], u2["end_reason"]) == ("u2", "7000", None)
    assert [k["keys"] for k in u2["key_trail"]] == ["9"] and u2["queued"] == 2
    assert await ivr.ivr.get_call("nobody") is None
    ivr.store.outage = None
    await ivr.writer.drain()
    assert [k["keys"] for k in (await ivr.ivr.get_call("u1"))["key_trail"]] == ["1", "12345#"]


async def test_a_read_the_database_cannot_answer_raises_unless_the_call_is_queued(ivr):
    class Unreadable(LockableStore):
        async def get_call(self, uniqueid):  # noqa: ANN001, ANN201
            raise LOCKED
    ivr.store.__class__ = Unreadable
    ivr.store.outage = LOCKED
    await ivr.ivr.call_arrived(uniqueid="u1", channel="c", caller_number="1", caller_name="",
                               did="7000", at=AT)
    await ivr.until(lambda: ivr.writer.status()["failing"], "the outage seen")
    assert (await ivr.ivr.get_call("u1"))["uniqueid"] == "u1"
    with pytest.raises(sqlite3.OperationalError):
        await ivr.ivr.get_call("u2")


FLOW = """
    nodes:
      main:
        kind: menu
        prompt: dir-welcome
        keys: {"2": v}
        fallback: bye
      v:
        kind: verify_identity
        prompt: vm-enter-num-to-call
        ask: customer_number
        tries: 2
        verified: good
        failed: bye
      good: {kind: survey, next: bye}
      bye: {kind: hangup, prompt: vm-goodbye}
"""


async def test_a_flow_walked_while_the_store_is_locked_ends_normally_and_is_recorded_whole(
        tmp_path, ivr):
    from acd.directory import DatabaseDirectory, import_rows
    from agi.flows.runner import SORRY
    from tests.unit.test_flows_runner import FakeSession, Registry, runner

    await import_rows(ivr.store, [{"customer_number": "12345", "name": "Li Lei",
                                   "phone": "", "id_number": ""}])
    ivr.store.outage = LOCKED           # from before the call to after it
    s = FakeSession(["2", "555#", "12345#", "4"])
    await runner(Registry(tmp_path, flow=FLOW), ivr.ivr,
                 directory=DatabaseDirectory(ivr.ivr))(s)
    plays = [c[1] for c in s.commands if c[0] == "STREAM FILE"]
    assert SORRY not in plays and plays[-1] == "vm-goodbye", plays     # no "sorry"
    assert await ivr.store.get_call("u1") is None                     # nothing written yet
    assert ivr.writer.status()["failing"] is True
    ivr.store.outage = None
    await ivr.writer.drain()
    call = await ivr.store.get_call("u1")
    assert [(k["node"], k["keys"]) for k in call["key_trail"]] == [
        ("main", "2"), ("v", "555#"), ("v", "12345#"), ("good", "4")]
    assert (call["verification"], call["verification_method"]) == ("verified",
                                                                    "keyed_customer_number")
    assert call["rating"] == 4
    assert call["end_reason"] == "ivr_hangup"
    assert [e["kind"] for e in call["events"]].count("ended") == 1
    assert ivr.writer.status()["failed"] == 0


async def test_the_ivr_writes_still_queued_at_stop_are_spilled_and_written_at_the_next_start(
        ivr, store):
    ivr.store.outage = LOCKED
    await ivr.ivr.call_arrived(uniqueid="u1", channel="PJSIP/x-1", caller_number="139",
                               caller_name="T", did="7000", at=AT)
    await ivr.ivr.call_event("u1", "ivr", at=AT, detail={"flow": "hotline", "version": 3})
    await ivr.ivr.key_pressed("u1", node="main", keys="2", at=AT)
    await ivr.ivr.set_verification("u1", result="failed", method="lookup_error", at=AT,
                                   detail={"node": "v"})
    await ivr.ivr.call_ended("u1", reason="ivr_hangup", at=AT)  # returns: the outage is on
    await ivr.writer.stop(timeout=0.05)
    lines = [json.loads(x) for x in ivr.writer.spill.read_text().splitlines()]
    assert [x["method"] for x in lines] == ["call_arrived", "call_event", "key_pressed",
                                            "set_verification", "call_ended"]
    again = StoreWriter(spill=ivr.writer.spill)
    assert again.replay(store) == 5
    again.start()
    await again.drain()
    await again.stop()
    call = await store.get_call("u1")
    assert [e["kind"] for e in call["events"]] == ["arrived", "ivr", "verification", "ended"]
    assert call["key_trail"][0]["keys"] == "2" and call["end_reason"] == "ivr_hangup"
    assert call["verification_method"] == "lookup_error"
