"""Agent reports by hour (report_agent_hours, report_agent_reasons): the same figures as the
quarter-hour facts, across a daylight-saving change, and not used where an hour would cut a
zone's intervals (half-hour zones, 15 and 30-minute intervals); a database from before gets
the hours made in the background."""
import asyncio
import random
from datetime import datetime, timedelta, timezone

import pytest
from alembic import command
from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from acd.core.agent_states import AgentState
from acd.reports import history
from acd.reports.indexer import AGENT_HOURS_MARK, STATES
from acd.store.db import Store, alembic_config
from acd.store.models import ReportAgentHour, ReportAgentReason, ReportMark
from tests.conftest import BOTH_DATABASES

pytestmark = BOTH_DATABASES

SL = {"sales": 20.0, "support": 30.0}
GROUPS = {"sales": history.GroupSettings(members=("1001", "1002")),
          "support": history.GroupSettings(members=("1002", "1003"))}
KNOWN = {"group": ["sales", "support"], "agent": ["1001", "1002", "1003"]}
START = datetime(2026, 10, 23, 6, 0, tzinfo=timezone.utc)   # Berlin leaves summer time on the 25th
NOW = START + timedelta(days=8)
ROLES = ("answer", "answer", "answer", "callback", "transfer", "consult", "outbound")


async def _calls_and_states(store, rng: random.Random) -> None:
    """Five days of seeded calls and agents' states written as the runtime writes them,
    at whole seconds (sums of whole seconds are exact in any order), on both sides of the
    change and of every quarter and half hour."""
    for n in range(90):
        if n % 25 == 24:                  # indexed as it goes: hours made again and again
            await store.index_reports(SL)
        arrived = START + timedelta(seconds=rng.randrange(5 * 86400))
        group, agent = rng.choice(("sales", "support")), rng.choice(KNOWN["agent"])
        uid = f"h{n}"
        await store.call_arrived(uniqueid=uid, channel="c", caller_number="13800138000",
                                 caller_name="", did=rng.choice(("7000", "7001")), at=arrived)
        await store.call_event(uid, "queued", at=arrived, detail={"group": group})
        if rng.random() < 0.8:
            answered = arrived + timedelta(seconds=rng.randrange(1, 60))
            await store.call_event(uid, "answered", at=answered,
                                   detail={"group": group, "agent": agent})
            ended = answered + timedelta(seconds=rng.randrange(30, 1500))
            await store.call_leg(uid, agent_id=agent, role=rng.choice(ROLES),
                                 started_at=answered, ended_at=ended,
                                 talk=float(rng.randrange(20, 900)),
                                 hold=float(rng.choice((0, 0, 15, 40))), reason="caller_hangup")
            await store.call_ended(uid, reason="caller_hangup", at=ended)
            await store.call_leg_wrapup(uid, agent, float(rng.randrange(0, 60)))
            if rng.random() < 0.4:
                await store.call_rating(uid, rng.randint(1, 5), at=ended + timedelta(seconds=20))
        else:
            await store.call_ended(uid, reason="abandoned",
                                   at=arrived + timedelta(seconds=rng.randrange(1, 90)))
    for agent in KNOWN["agent"]:
        t = START + timedelta(seconds=rng.randrange(3600))
        while t < START + timedelta(days=5):
            state = rng.choice(("idle", "ringing", "talking", "wrapup", "break", "meeting",
                                "busy", "offline"))
            reason = rng.choice(("lunch", "coffee", "training")) if state in (
                "break", "meeting", "busy") else ""
            await store.agent_state(agent, state, reason=reason, at=t)
            t += timedelta(seconds=rng.randrange(60, 7200))
        await store.agent_state(agent, "offline", reason="", at=t)


async def _mark(store, value: int | None) -> None:
    """The mark of a database whose hours are not made yet (None: none)."""
    def write(conn):
        with conn.begin():
            conn.execute(delete(ReportMark.__table__)
                         .where(ReportMark.name == AGENT_HOURS_MARK))
            if value is not None:
                conn.execute(insert(ReportMark.__table__),
                             {"name": AGENT_HOURS_MARK, "value": value})
    await store._on_write_connection(write)


async def _report(store, **q):
    q.setdefault("dimension", "agent")
    req = history.request(q, default_tz="UTC", known=KNOWN,
                          group_tz={})
    async with store.session() as s:
        rep = await history.report(s, req, groups=GROUPS, now=NOW.timestamp())
        fast = await history._by_hours(s, req, int(rep["rows"][0]["start"]),
                                       int(history.intervals(req)[-1][2]))
    return rep, fast


async def _both(store, **q):
    """The report from the hours and from the quarter-hour facts (the mark set meanwhile)."""
    by_hours, fast = await _report(store, **q)
    await _mark(store, 0)
    detailed, slow = await _report(store, **q)
    await _mark(store, None)
    assert not slow
    return by_hours, detailed, fast


QUERIES = [dict(since="2026-10-19", until="2026-11-02", by=by) for by in ("60m", "day", "week")]
QUERIES.append(dict(since="2026-10-01", until="2026-12-01", by="month"))


async def test_the_hours_give_the_quarter_hours_figures_across_a_change_of_time(store):
    await _calls_and_states(store, random.Random(15))
    await store.index_reports(SL)
    for q in QUERIES:
        by_hours, detailed, fast = await _both(store, tz="Europe/Berlin", **q)
        assert fast, q                              # whole hours: read by hour
        assert by_hours["rows"] == detailed["rows"], q
        assert by_hours["totals"] == detailed["totals"], q
    totals = {t["key"]: t for t in by_hours["totals"]}
    assert sum(t["calls_handled"] + t["transfers_taken"] + t["consults_taken"]
               for t in totals.values()) > 40
    assert all(t["break_reasons"] and t["states"]["meeting"] and t["ratings"] is not None
               for t in totals.values())
    # the 25th (a 25-hour day) holds calls and states on both sides of the change
    req = history.request({"dimension": "agent", "tz": "Europe/Berlin", "by": "day",
                           **QUERIES[1]}, default_tz="UTC", known=KNOWN, group_tz={})
    [day] = [s for s in history.intervals(req) if s[0].day == 25 and s[0].month == 10]
    assert day[2] - day[1] == 25 * 3600


async def test_staffing_by_hour_is_the_staffing_by_quarter_hour(store):
    """A group report by 60 minutes counts its members logged in from the hours too."""
    await _calls_and_states(store, random.Random(18))
    await store.index_reports(SL)
    for tz in ("Europe/Berlin", "Asia/Kolkata"):
        by_hours, detailed, fast = await _both(store, tz=tz, dimension="group", by="60m",
                                               since="2026-10-23", until="2026-10-28")
        assert fast == (tz == "Europe/Berlin")
        assert by_hours["rows"] == detailed["rows"] and by_hours["totals"] == detailed["totals"]
        staffed = [r["agents_logged_in"] for r in by_hours["rows"]]
        assert len(staffed) == 2 * (5 * 24 + (1 if tz == "Europe/Berlin" else 0))
        assert any(x != int(x) for x in staffed) and max(staffed) > 1    # parts of hours


async def test_half_hour_zones_and_short_intervals_keep_the_quarter_hours(store):
    await _calls_and_states(store, random.Random(16))
    await store.index_reports(SL)
    for q in QUERIES:
        by_hours, detailed, fast = await _both(store, tz="Asia/Kolkata", **q)     # +05:30
        assert not fast, q
        assert by_hours["rows"] == detailed["rows"], q
        # Lord Howe goes from +10:30 to +11:00 on 4 October: by hour only after that
        by_hours, detailed, fast = await _both(store, tz="Australia/Lord_Howe", **q)
        assert fast == (q["by"] != "month"), q
        assert by_hours["rows"] == detailed["rows"], q
    for by in ("15m", "30m"):
        _rep, fast = await _report(store, tz="Europe/Berlin", since="2026-10-24",
                                   until="2026-10-26", by=by)
        assert not fast
    # read by hour, a half-hour zone's days would be wrong: the hours are not its intervals
    rep, _fast = await _report(store, tz="Asia/Kolkata", **QUERIES[1])
    per_day = [r["logged_in"] for r in rep["rows"] if r["key"] == "1001"]
    assert any(secs % 3600 for secs in per_day) and sum(per_day) > 0


async def test_a_database_from_before_gets_its_hours_in_the_background(store):
    await _calls_and_states(store, random.Random(17))
    await store.index_reports(SL)
    want, _fast = await _report(store, tz="Europe/Berlin", **QUERIES[2])

    def forget(conn):              # as after migration 0012 on a database with facts
        with conn.begin():
            conn.execute(delete(ReportAgentHour.__table__))
            conn.execute(delete(ReportAgentReason.__table__))
    await store._on_write_connection(forget)
    await _mark(store, int(START.timestamp()) // 3600 * 3600 - 3 * 86400)
    rep, fast = await _report(store, tz="Europe/Berlin", **QUERIES[2])
    assert not fast and rep["rows"] == want["rows"]       # the quarter hours meanwhile
    done = await store.index_reports(SL, max_batches=3)
    assert done["hours"] == 72 and done["more"]
    while (await store.index_reports(SL))["more"]:
        pass
    async with store.session() as s:
        assert await s.scalar(select(ReportMark.value)
                              .where(ReportMark.name == AGENT_HOURS_MARK)) is None
        assert await s.scalar(select(func.count()).select_from(ReportAgentHour)) > 100
    rep, fast = await _report(store, tz="Europe/Berlin", **QUERIES[2])
    assert fast and rep["rows"] == want["rows"] and rep["totals"] == want["totals"]


def test_every_agent_state_has_its_column():
    assert set(STATES) == {s.value for s in AgentState}
    assert {f"in_{s}" for s in STATES} <= set(ReportAgentHour.__table__.c.keys())


@pytest.fixture
def empty_url(request, db_kind, tmp_path):
    if db_kind == "postgresql":
        server = request.getfixturevalue("pg_server")
        name = server.new_database()
        request.addfinalizer(lambda: server.drop_database(name))
        return server.url(name)
    return f"sqlite+aiosqlite:///{tmp_path / 'before.db'}"


async def test_the_migration_marks_a_database_with_facts_for_the_background(empty_url):
    await asyncio.to_thread(command.upgrade, alembic_config(empty_url), "0011")
    first = int(START.timestamp()) + 2 * 900          # 06:30 UTC: its hour starts at 06:00
    engine = create_async_engine(empty_url)
    try:
        async with engine.begin() as conn:
            for b, state, reason, secs in ((first, "idle", "", 900.0),
                                           (first + 3600, "break", "lunch", 600.0)):
                await conn.execute(text(
                    "INSERT INTO report_agent_time (agent_id, bucket, state, reason, seconds) "
                    "VALUES ('1001', :b, :s, :r, :secs)"), {"b": b, "s": state, "r": reason,
                                                            "secs": secs})
    finally:
        await engine.dispose()
    await asyncio.to_thread(command.upgrade, alembic_config(empty_url), "heads")
    store = Store(empty_url)
    try:
        async with store.session() as s:
            assert await s.scalar(select(ReportMark.value).where(
                ReportMark.name == AGENT_HOURS_MARK)) == first - 1800
        assert (await store.index_reports(SL))["hours"] == 24
        async with store.session() as s:
            assert await s.scalar(select(ReportMark.value).where(
                ReportMark.name == AGENT_HOURS_MARK)) is None
            rows = (await s.execute(select(ReportAgentHour.hour, ReportAgentHour.in_idle,
                                           ReportAgentHour.in_break)
                                    .order_by(ReportAgentHour.hour))).all()
            assert [tuple(r) for r in rows] == [(first - 1800, 900.0, 0.0),
                                                (first + 1800, 0.0, 600.0)]
            assert [tuple(r) for r in (await s.execute(select(
                ReportAgentReason.hour, ReportAgentReason.reason, ReportAgentReason.seconds)))
                .all()] == [(first + 1800, "lunch", 600.0)]
    finally:
        await store.close()
