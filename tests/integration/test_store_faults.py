"""The store writer against a real SQLite file that is locked by another process, or full:
the records wait in memory, in order, are written once the database is back, and reads go
on meanwhile. SQLite's real errors, no fakes: the lock is another process holding
``BEGIN EXCLUSIVE``; "full" is ``PRAGMA max_page_count`` on the server's own connections,
which makes SQLite raise SQLITE_FULL ("database or disk is full")."""
from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
import structlog
from sqlalchemy import event

from acd.store import db as dbmod
from acd.store.db import Store, migrate_async
from acd.store.writer import StoreWriter, spill_path_for

AT = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)
WAIT = 30.0            # ends a stuck test; never measures speed

_HOLDER = """
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
con.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
con.execute("COMMIT")
print("released", flush=True)
"""


class Lock:
    """Another process holding the database's write lock until :meth:`release`."""

    def __init__(self, path: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _HOLDER, path], text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    async def held(self) -> "Lock":
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), WAIT)
        assert line.strip() == "locked", line
        return self

    async def release(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
            line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), WAIT)
            assert line.strip() == "released", line
        await asyncio.wait_for(asyncio.to_thread(self.proc.wait), WAIT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
async def store(tmp_path, monkeypatch):
    # A short busy timeout: each try gives up quickly, so the retries are seen at once.
    monkeypatch.setattr(dbmod, "BUSY_TIMEOUT_MS", 200)
    path = tmp_path / "acd.db"
    url = f"sqlite+aiosqlite:///{path}"
    await migrate_async(url)
    s = Store(url)
    s.path = str(path)
    yield s
    await s.close()


@pytest.fixture
async def lock(store):
    locks: list[Lock] = []

    async def take() -> Lock:
        lk = Lock(store.path)
        locks.append(lk)
        return await lk.held()
    yield take
    for lk in locks:
        lk.kill()


def submit_call(writer: StoreWriter, store: Store, uid: str, n: int) -> None:
    """A call's life as the runtime records it: arrival, events, agent states, end."""
    at = AT + timedelta(seconds=n)
    bind = {"call": uid}
    writer.submit("call_arrived", store.call_arrived, uniqueid=uid, channel=f"PJSIP/c-{uid}",
                  caller_number="13800138000", caller_name="Caller", did="7101", at=at, bind=bind)
    writer.submit("queued", store.call_event, uid, "queued", at=at, detail={"group": "sales"},
                  bind=bind)
    writer.submit("call_group", store.call_update, uid, skill_group="sales", bind=bind)
    writer.submit("agent_state", store.agent_state, "1001", "talking", reason="", at=at,
                  call_uniqueid=uid, bind={"agent": "1001", "call": uid})
    writer.submit("call_answered", store.call_update, uid, answered_at=at, bind=bind)
    writer.submit("call_ended", store.call_ended, uid, reason="caller_hangup",
                  at=at + timedelta(seconds=1), bind=bind)


async def assert_whole(store: Store, uid: str) -> None:
    call = await store.get_call(uid)
    assert call is not None, uid
    assert [e["kind"] for e in call["events"]] == ["arrived", "queued", "ended"], call
    assert call["end_reason"] == "caller_hangup" and call["skill_group"] == "sales"
    assert call["answered_at"] is not None


async def until(pred, what: str) -> None:  # noqa: ANN001
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not pred():
        assert loop.time() < deadline, f"never: {what}"
        await asyncio.sleep(0.02)        # polling the writer's status, bounded


async def test_records_wait_while_another_process_locks_the_database(store, lock):
    await store.call_arrived(uniqueid="before", channel="PJSIP/c-before", caller_number="1",
                             caller_name="", did="7101", at=AT)
    writer = StoreWriter(first_delay=0.05, max_delay=0.5)
    writer.start()
    held = await lock()
    with structlog.testing.capture_logs() as logs:
        for n in range(3):
            submit_call(writer, store, f"c{n}", n)
        await until(lambda: writer.status()["failing"], "the writer seeing the lock")
        st = writer.status()
        assert st["pending"] == 18 and st["last_error"] == "database is locked"
        assert st["degraded"] is True and writer.written == 0
        # Reads go on while the lock is held (WAL): the runtime's reads never wait on it.
        assert (await asyncio.wait_for(store.get_call("before"), WAIT))["uniqueid"] == "before"
        assert await asyncio.wait_for(store.get_call("c0"), WAIT) is None
        # A flush (the HTTP layer, the queue script) is not held up by the outage.
        assert await asyncio.wait_for(writer.flush(), WAIT) is False
        await held.release()
        await asyncio.wait_for(writer.drain(), WAIT)
    for n in range(3):
        await assert_whole(store, f"c{n}")
    states = await store.agent_states("1001")
    assert [s["call_uniqueid"] for s in states] == ["c0", "c1", "c2"]
    assert writer.failed == 0 and writer.written == 18
    assert writer.status() | {"retries": 0} == {
        "pending": 0, "oldest_seconds": 0.0, "failing": False, "failing_for_seconds": None,
        "last_error": None, "failed": 0, "written": 18, "retries": 0, "outages": 1,
        "degraded": False}
    events = [e["event"] for e in logs]
    assert events == ["store.write_retrying", "store.write_recovered"], events
    assert logs[0]["call"] == "c0" and logs[1]["waited"] == 18
    await writer.stop()


async def test_records_wait_while_the_database_is_full_then_are_written_in_order(store):
    limit = {"pages": 1}         # 1: no page more than the file has now; None: lifted

    def _max_pages(dbapi_conn, _record, _proxy) -> None:  # noqa: ANN001
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA max_page_count={limit['pages'] or 1073741823}")
        cur.close()
    # The reads' engine and the writes' own (a SQLite file's writes have their connection).
    for engine in {store.engine.sync_engine, store.write_engine}:
        event.listen(engine, "checkout", _max_pages)

    writer = StoreWriter(first_delay=0.05, max_delay=0.5)
    writer.start()
    with structlog.testing.capture_logs() as logs:
        for n in range(60):
            submit_call(writer, store, f"f{n}", n)
        await until(lambda: writer.status()["failing"], "the writer seeing a full database")
        st = writer.status()
        assert st["last_error"] == "database or disk is full" and st["pending"] > 0
        stuck_at = writer.written
        assert stuck_at < 360
        limit["pages"] = None
        await asyncio.wait_for(writer.drain(), WAIT)
    assert writer.written == 360 and writer.failed == 0
    for n in range(60):
        await assert_whole(store, f"f{n}")
    calls = await store.recent_calls(60)
    assert [c["uniqueid"] for c in reversed(calls)] == [f"f{n}" for n in range(60)]
    assert [e["event"] for e in logs] == ["store.write_retrying", "store.write_recovered"]
    await writer.stop()


async def test_a_stop_during_the_lock_spills_and_the_next_start_writes_them(store, lock,
                                                                           tmp_path):
    spill = spill_path_for(store.url, tmp_path)
    writer = StoreWriter(first_delay=0.05, max_delay=0.5, spill=spill)
    writer.start()
    held = await lock()
    submit_call(writer, store, "s1", 1)
    await until(lambda: writer.status()["failing"], "the writer seeing the lock")
    with structlog.testing.capture_logs() as logs:
        await writer.stop(timeout=0.3)
    assert [(e["event"], e["pending"], e["spilled"]) for e in logs] == [
        ("store.writes_spilled", 6, 6)]
    await held.release()
    assert await store.get_call("s1") is None       # nothing was written before the stop

    # The next start: the spilled writes go first, then the new ones.
    again = StoreWriter(spill=spill)
    assert again.replay(store) == 6 and not spill.exists()
    again.start()
    again.submit("rated", store.call_rating, "s1", 5, at=AT + timedelta(seconds=9))
    await asyncio.wait_for(again.drain(), WAIT)
    await assert_whole_rated(store, "s1")
    await again.stop()


async def assert_whole_rated(store: Store, uid: str) -> None:
    call = await store.get_call(uid)
    assert [e["kind"] for e in call["events"]] == ["arrived", "queued", "ended", "rated"]
    assert call["end_reason"] == "caller_hangup" and call["rating"] == 5
    assert call["arrived_at"].startswith("2026-11-21T12:00:01")


async def test_a_read_the_database_cannot_answer_is_a_clean_503_not_a_hang(tmp_path,
                                                                         monkeypatch):
    """Without WAL (a file another tool switched back, a file system without shared
    memory) a read waits for another process's lock: the route answers 503
    ``store.unavailable`` after the busy timeout, and the same route works once it is gone."""
    from aiohttp.test_utils import TestClient, TestServer

    from acd.web.api import make_app
    from acd.web.hub import Hub
    from tests.web_login import login_as, test_store, web_for_tests

    monkeypatch.setattr(dbmod, "BUSY_TIMEOUT_MS", 200)
    path = tmp_path / "acd.db"
    url = f"sqlite+aiosqlite:///{path}"
    await migrate_async(url)
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA journal_mode=DELETE").fetchone() == ("delete",)
    store = Store(url)
    web_store = await test_store(tmp_path)        # logins and sessions: another file

    class Cfg:
        class agi:  # noqa: N801
            host = "127.0.0.1"

        class hotline:  # noqa: N801
            number = "7000"
    app = make_app(store=store, ami=None, agi=None, cfg=Cfg, runtime=None, hub=Hub(),
                   web_ctx=await web_for_tests(web_store))
    held = await Lock(str(path)).held()
    try:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            admin = await login_as(client, "admin")
            r = await asyncio.wait_for(admin.get("/api/calls"), WAIT)
            assert r.status == 503, await r.text()
            assert (await r.json())["error"] == "store.unavailable"
            await held.release()
            r = await admin.get("/api/calls")
            assert r.status == 200 and (await r.json()) == {"calls": []}
    finally:
        held.kill()
        await store.close()
        await web_store.close()


# --------------------------------------------------------------------------- the real server

def _play_asterisk(ami) -> None:  # noqa: ANN001
    """Answer the runtime's start-up reads: no channels, two agents' phones reachable."""
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
        for a in ("1001", "1002"):
            uri = f"sip:{a}@127.0.0.1:5999"
            conn.send({"Event": "ContactList", "ActionID": aid, "ObjectType": "contact",
                       "ObjectName": f"{a}/{uri}", "Endpoint": a, "Aor": a, "Uri": uri,
                       "Status": "Reachable"})
        conn.send({"Event": "ContactListComplete", "ActionID": aid, "EventList": "Complete",
                   "ListItems": "2"})

    ami.on("CoreStatus", status)
    ami.on("CoreShowChannels", channels)
    ami.on("PJSIPShowContacts", contacts)


async def _server(tmp_path):  # noqa: ANN001
    import random
    from dataclasses import replace

    import yaml

    from acd import config as configmod
    from acd.app import Server
    from tests.integration.fake_ami import FakeAmi

    ami = await FakeAmi(secret="fake-ami-secret-1").start()
    _play_asterisk(ami)
    (tmp_path / "flows").mkdir(exist_ok=True)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "data_dir": "data",
        "ami": {"port": ami.port, "secret": "fake-ami-secret-1"},
        "agents": [{"id": "1001", "name": "Alice"}, {"id": "1002", "name": "Bob"}],
        "groups": [{"name": "sales", "members": {"1001": 5, "1002": 3}}],
        "flows": {"dir": "flows", "watch_seconds": 0},
        "web": {"users": [{"username": "admin", "role": "admin"}]}}))
    path.chmod(0o600)
    cfg, _ = configmod.with_secrets(configmod.load(path, environ={}))
    cfg = replace(cfg, agi=replace(cfg.agi, port=0), http=replace(cfg.http, port=0))
    srv = Server(cfg, rng=random.Random(7))
    await srv.start()
    await asyncio.wait_for(srv.runtime.ready.wait(), WAIT)
    return srv, ami


async def test_the_server_stopped_during_a_lock_writes_the_backlog_at_its_next_start(
        tmp_path, monkeypatch):
    monkeypatch.setattr(dbmod, "BUSY_TIMEOUT_MS", 200)
    srv, ami = await _server(tmp_path)
    db_path = srv.cfg.database_url.split(":///", 1)[1]
    spill = spill_path_for(srv.cfg.database_url, srv.cfg.data_dir)
    try:
        srv.runtime.login("1001")
        await srv.runtime.quiesce()
        held = await Lock(db_path).held()
        srv.runtime.set_state("1001", "break", "coffee")
        srv.runtime.login("1002")
        await until(lambda: srv.runtime.writer.status()["failing"], "the lock seen")
        srv.runtime.writer.stop_wait = 0.3
        with structlog.testing.capture_logs() as logs:
            await srv.stop()
        spilled = [e for e in logs if e["event"] == "store.writes_spilled"]
        assert [(e["pending"], e["spill"]) for e in spilled] == [(2, str(spill))]
        await held.release()
    finally:
        await ami.stop()
        if srv.store is not None:
            await srv.store.close()

    srv, ami = await _server(tmp_path)      # the next start, the lock gone
    try:
        assert not spill.exists()
        await srv.runtime.quiesce()
        rows = await srv.store.agent_states("1001")
        assert [(r["state"], r["reason"]) for r in rows] == [("idle", "login"), ("break", "coffee")]
        assert [r["state"] for r in await srv.store.agent_states("1002")] == ["idle"]
        # and the runtime took the agents up where the records say they were
        assert srv.runtime.agent("1001")["state"] == "break"
        assert srv.runtime.agent("1002")["state"] == "idle"
    finally:
        await srv.stop()
        await ami.stop()
