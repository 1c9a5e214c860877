"""The store on a real SQLite file, migrated by Alembic."""
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from acd.store.db import migrate_async
from tests.conftest import BOTH_DATABASES

pytestmark = BOTH_DATABASES

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=timezone.utc)


async def test_migration_creates_schema_and_is_repeatable(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'x' / 'acd.db'}"
    await migrate_async(url)
    await migrate_async(url)  # a second run finds nothing to do
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    await engine.dispose()
    assert {"calls", "key_presses", "call_events", "agent_state_changes", "alembic_version"} <= tables


async def test_call_with_key_trail_reads_back(store):
    await store.call_arrived(uniqueid="1.1", channel="PJSIP/acd-caller-01", caller_number="13800138000",
                             caller_name="<b>x</b>", did="7000", at=T0)
    await store.key_pressed("1.1", node="menu", keys="2", at=T0 + timedelta(seconds=3))
    await store.key_pressed("1.1", node="verify", keys="13800138000#", at=T0 + timedelta(seconds=9))
    assert await store.call_ended("1.1", reason="caller_hangup", at=T0 + timedelta(seconds=20))
    call = await store.get_call("1.1")
    assert call["caller_name"] == "<b>x</b>"  # stored as given; escaping is the page's job
    assert [(k["node"], k["keys"]) for k in call["key_trail"]] == [("menu", "2"), ("verify", "13800138000#")]
    assert call["end_reason"] == "caller_hangup"
    assert [e["kind"] for e in call["events"]] == ["arrived", "ended"]


async def test_one_end_reason_only(store):
    await store.call_arrived(uniqueid="2.1", channel="c", caller_number="1", caller_name="", did="7000", at=T0)
    assert await store.call_ended("2.1", reason="caller_hangup", at=T0)
    assert not await store.call_ended("2.1", reason="agent_hangup", at=T0)
    assert (await store.get_call("2.1"))["end_reason"] == "caller_hangup"


async def test_repeated_arrival_keeps_first_record(store):
    a = await store.call_arrived(uniqueid="3.1", channel="c", caller_number="1", caller_name="", did="7000", at=T0)
    b = await store.call_arrived(uniqueid="3.1", channel="c", caller_number="2", caller_name="", did="7000", at=T0)
    assert a == b
    assert (await store.get_call("3.1"))["caller_number"] == "1"


async def test_oversize_caller_text_is_clipped_not_lost(store):
    await store.call_arrived(uniqueid="4.1", channel="c", caller_number="9" * 1000,
                             caller_name="名" * 1000, did="7000", at=T0)
    call = await store.get_call("4.1")
    assert call["caller_number"] == "9" * 256 and call["caller_name"] == "名" * 256


async def test_key_press_for_unknown_call_is_an_error(store):
    with pytest.raises(LookupError):
        await store.key_pressed("nope", node="menu", keys="1", at=T0)


async def test_migration_0002_adds_agent_restore_columns(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'y' / 'acd.db'}"
    await migrate_async(url)
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        def look(c):
            insp = inspect(c)
            return ({col["name"] for col in insp.get_columns("agent_state_changes")},
                    set(insp.get_table_names()))
        cols, tables = await conn.run_sync(look)
    await engine.dispose()
    assert {"previous", "call_uniqueid"} <= cols
    assert "agent_pending" in tables


async def test_latest_agent_state_and_pending_per_agent(store):
    await store.agent_state("1001", "idle", reason="login", at=T0, previous="offline")
    await store.agent_state("1002", "idle", reason="login", at=T0, previous="offline")
    await store.agent_state("1001", "ringing", reason="", at=T0 + timedelta(seconds=1),
                            previous="idle", call_uniqueid="5.1")
    await store.agent_state("1001", "talking", reason="", at=T0 + timedelta(seconds=2),
                            previous="ringing", call_uniqueid="5.1")
    await store.agent_pending("1001", "break", reason="lunch", at=T0 + timedelta(seconds=3))
    latest = await store.latest_agent_states()
    assert latest["1001"]["state"] == "talking" and latest["1001"]["call_uniqueid"] == "5.1"
    assert latest["1001"]["at"] == T0 + timedelta(seconds=2)   # timezone-aware, as written
    assert latest["1002"]["state"] == "idle" and latest["1002"]["previous"] == "offline"
    pending = await store.latest_agent_pending()
    assert pending["1001"]["state"] == "break" and pending["1001"]["reason"] == "lunch"
    await store.agent_pending("1001", None, reason="", at=T0 + timedelta(seconds=9))
    assert (await store.latest_agent_pending())["1001"]["state"] is None
    assert [r["state"] for r in await store.agent_states("1001")] == ["idle", "ringing", "talking"]


async def test_call_update_and_open_calls(store):
    await store.call_arrived(uniqueid="6.1", channel="c", caller_number="1", caller_name="", did="7101", at=T0)
    await store.call_arrived(uniqueid="6.2", channel="c", caller_number="2", caller_name="", did="7101", at=T0)
    await store.call_update("6.1", skill_group="sales")
    await store.call_update("6.1", answered_at=T0 + timedelta(seconds=5))
    await store.call_update("6.1", answered_at=T0 + timedelta(seconds=50))   # the first answer stays
    await store.call_event("6.1", "queued", at=T0, detail={"group": "sales"})
    await store.call_ended("6.2", reason="abandoned", at=T0)
    call = await store.get_call("6.1")
    assert call["skill_group"] == "sales"
    assert call["answered_at"] == (T0 + timedelta(seconds=5)).isoformat()
    assert [c["uniqueid"] for c in await store.open_calls()] == ["6.1"]
    assert [e["kind"] for e in (await store.open_calls())[0]["events"]] == ["arrived", "queued"]


async def test_calls_answered_since_login_for_every_agent_in_one_read(store):
    at = iter(T0 + timedelta(seconds=i) for i in range(100))
    for agent, state, previous in [
            ("1001", "idle", "offline"), ("1001", "talking", "ringing"), ("1001", "wrapup", "talking"),
            ("1001", "offline", "wrapup"), ("1001", "idle", "offline"),           # logged in again
            ("1001", "talking", "ringing"), ("1001", "idle", "talking"),
            ("1001", "talking", "ringing"),
            ("1002", "idle", "offline"), ("1002", "talking", "ringing"),
            ("1003", "talking", "ringing"),          # no login on record: all of them count
            ("1004", "idle", "offline")]:
        await store.agent_state(agent, state, reason="", at=next(at), previous=previous)
    assert await store.answered_since_login() == {"1001": 2, "1002": 1, "1003": 1}


async def test_legs_totals_queue_log_reads_recordings_and_admin_entries(store):
    """The reads the pages and reports make, and the admin entries' round trip."""
    from acd.admin_config import Row

    t = [T0 + timedelta(seconds=i) for i in range(60)]
    await store.call_arrived(uniqueid="7.1", channel="c", caller_number="1", caller_name="",
                             did="7101", at=t[0])
    await store.call_leg("7.1", agent_id="1001", role="answer", started_at=t[1], ended_at=t[11],
                         talk=8.5, hold=1.5, reason="transferred")
    await store.call_leg("7.1", agent_id="1002", role="transfer", started_at=t[11],
                         ended_at=t[31], talk=20, hold=0, reason="caller_hangup")
    await store.call_leg_wrapup("7.1", "1002", 4.25)
    await store.agent_state("1001", "talking", reason="", at=t[1], previous="ringing")
    assert [(g["agent_id"], g["role"], g["wrapup_seconds"])
            for g in await store.call_legs("7.1")] == [("1001", "answer", None),
                                                       ("1002", "transfer", 4.25)]
    assert await store.agent_totals() == {
        "1001": {"legs": 1, "talk_seconds": 8.5, "hold_seconds": 1.5, "wrapup_seconds": 0.0},
        "1002": {"legs": 1, "talk_seconds": 20.0, "hold_seconds": 0.0, "wrapup_seconds": 4.25}}
    assert list(await store.agent_totals(since=t[20])) == ["1002"]
    calls = await store.calls_between(t[0], t[1], 10)
    assert [(c["uniqueid"], len(c["legs"])) for c in calls] == [("7.1", 2)]
    assert await store.calls_between(t[1], t[2], 10) == []
    assert [r["state"] for r in await store.agent_state_rows(t[0], t[2], 10)] == ["talking"]

    await store.recording_started("7.1", agent_id="1001", name="rec-7-1", at=t[1])
    await store.recording_finished("rec-7-1", status="done", at=t[11], path="r/rec-7-1.wav",
                                   seconds=10.0, size=160000, sha256="0" * 64)
    rec = (await store.recordings("7.1"))[0]
    await store.recording_deleted(rec["id"], at=t[40], by="admin")
    assert [r["status"] for r in await store.recordings(status="deleted")] == ["deleted"]
    assert (await store.recording(rec["id"]))["error"] == "deleted by admin"

    await store.write_entries([Row("agent", "1009", {"id": "1009", "name": "Zoë"}, None),
                               Row("group", "sales", None, {"name": "sales"})], [],
                              at=t[50], by="admin")
    await store.write_entries([Row("agent", "1009", {"id": "1009", "name": "Zoe"}, None)],
                              [("group", "sales")], at=t[51], by="admin")
    assert [(r.kind, r.key, r.doc) for r in await store.entry_rows()] == [
        ("agent", "1009", {"id": "1009", "name": "Zoe"})]
