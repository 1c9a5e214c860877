"""History reports on a real SQLite store: records written as the runtime writes them, the
facts made by the indexer, the figures added up by interval (acd.reports)."""
from datetime import datetime, timedelta, timezone

import pytest

from acd.errors import UserError
from acd.reports import history
from acd.reports.facts import BUCKET, CallInput, call_facts, state_spans
from tests.conftest import BOTH_DATABASES

pytestmark = BOTH_DATABASES

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)      # a Monday, 10:00 in Berlin
SL = {"sales": 20.0, "support": 30.0}
GROUPS = {"sales": history.GroupSettings(sl_seconds=20, sl_target=0.8, members=("1001", "1002")),
          "support": history.GroupSettings(sl_seconds=30, members=("1002",))}
KNOWN = {"group": ["sales", "support"], "agent": ["1001", "1002"]}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def _call(store, uid, *, start, group="sales", did="7000", answer=None, agent="1001",
                end, reason="caller_hangup", talk=0.0, hold=0.0, wrapup=None, rating=None,
                verified=False):
    await store.call_arrived(uniqueid=uid, channel="c", caller_number="13800138000",
                             caller_name="", did=did, at=at(start))
    if verified:
        await store.set_verification(uid, result="verified", method="phone", at=at(start))
    await store.call_event(uid, "queued", at=at(start + 5), detail={"group": group})
    if answer is not None:
        await store.call_event(uid, "answered", at=at(start + 5 + answer),
                               detail={"group": group, "agent": agent})
        await store.call_leg(uid, agent_id=agent, role="answer",
                             started_at=at(start + 5 + answer), ended_at=at(end), talk=talk,
                             hold=hold, reason=reason)
    await store.call_ended(uid, reason=reason, at=at(end))
    if wrapup is not None:
        await store.call_leg_wrapup(uid, agent, wrapup)
    if rating is not None:
        await store.call_rating(uid, rating, at=at(end + 30))


async def _scenario(store):
    # sales: 3 offered in the 10:00 hour: answered in 10 s (rated 5), in 40 s, abandoned at 3 s
    await _call(store, "c1", start=0, answer=10, end=130, talk=100, hold=15, wrapup=20,
                rating=5, verified=True)
    await _call(store, "c2", start=60, answer=40, agent="1002", end=300, talk=200)
    await _call(store, "c3", start=120, end=128, reason="abandoned")
    # support, 11:00 hour: one answered by 1002 in 25 s (within its 30 s)
    await _call(store, "c4", start=3600, group="support", did="7001", answer=25, agent="1002",
                end=3700, talk=75, rating=2)
    # 1001 logs in at 10:00, talks, goes on break "lunch" at 10:30, offline at 11:00
    for secs, state, reason in ((0, "idle", ""), (15, "talking", ""), (130, "wrapup", ""),
                                (150, "idle", ""), (1800, "break", "lunch"),
                                (3600, "offline", "")):
        await store.agent_state("1001", state, reason=reason, at=at(secs))


async def _report(store, **q):
    await store.index_reports(SL)
    query = {"since": "2026-11-23", "until": "2026-11-24", "tz": "Europe/Berlin", **q}
    req = history.request(query, default_tz="UTC", known=KNOWN, group_tz={})
    async with store.session() as s:
        return await history.report(s, req, groups=GROUPS, now=at(7200).timestamp())


def _row(rep, interval_prefix, key):
    [row] = [r for r in rep["rows"] if r["interval"].startswith(interval_prefix) and r["key"] == key]
    return row


async def test_group_figures_by_hour_are_exact(store):
    await _scenario(store)
    rep = await _report(store, by="60m")
    assert len({r["interval"] for r in rep["rows"]}) == 24
    sales = _row(rep, "2026-11-23T10:00:00+01:00", "sales")
    assert (sales["offered"], sales["answered"], sales["abandoned"]) == (3, 2, 1)
    assert sales["answered_within_sl"] == 1 and sales["service_level"] == round(1 / 3, 4)
    assert sales["asa"] == 25.0 and sales["longest_wait"] == 40.0
    assert sales["avg_wait"] == round((10 + 40 + 3) / 3, 1)
    assert sales["aht"] == round((100 + 15 + 20 + 200) / 2, 1)
    assert (sales["talk"], sales["hold"], sales["wrapup"]) == (300.0, 15.0, 20.0)
    assert sales["ratings"] == 1 and sales["satisfaction"] == 1.0
    assert sales["verified_share"] == round(1 / 3, 4)
    support = _row(rep, "2026-11-23T11:00:00+01:00", "support")
    assert (support["offered"], support["answered"], support["answered_within_sl"]) == (1, 1, 1)
    assert support["satisfaction"] == 0.0
    empty = _row(rep, "2026-11-23T12:00:00+01:00", "sales")
    assert empty["offered"] == 0 and empty["asa"] is None and empty["service_level"] is None
    assert {t["key"]: t["offered"] for t in rep["totals"]} == {"sales": 3, "support": 1}


async def test_short_abandons_leave_the_service_level(store):
    await _scenario(store)
    rep = await _report(store, by="day", short_abandon="5")
    [sales] = [t for t in rep["totals"] if t["key"] == "sales"]
    assert sales["short_abandoned"] == 1
    assert sales["service_level"] == 0.5 and sales["abandon_rate"] == 0.0


async def test_a_rating_after_indexing_replaces_not_adds(store):
    await _scenario(store)
    await _report(store, by="day")
    await store.call_rating("c2", 4, at=at(400))
    await store.call_rating("c1", 1, at=at(500))          # a second rating replaces the first
    rep = await _report(store, by="day")
    [sales] = [t for t in rep["totals"] if t["key"] == "sales"]
    assert sales["offered"] == 3 and sales["ratings"] == 2 and sales["satisfaction"] == 0.5


async def test_agent_figures_and_time_in_states(store):
    await _scenario(store)
    rep = await _report(store, by="day", dimension="agent")
    a = {t["key"]: t for t in rep["totals"]}
    assert a["1001"]["calls_handled"] == 1 and a["1002"]["calls_handled"] == 2
    assert a["1001"]["talk"] == 100.0 and a["1001"]["hold"] == 15.0 and a["1001"]["wrapup"] == 20.0
    assert a["1001"]["logged_in"] == 3600.0
    # offline since 11:00 until "now" (12:00): the open state counts up to now
    assert a["1001"]["states"] == {"idle": 15.0 + 1650.0, "talking": 115.0, "wrapup": 20.0,
                                   "break": 1800.0, "offline": 3600.0}
    assert a["1001"]["break_reasons"] == {"lunch": 1800.0}
    assert a["1001"]["occupancy"] == round(135 / 1800, 4)
    assert a["1002"]["ratings"] == 1 and a["1002"]["satisfaction"] == 0.0


async def test_staffing_beside_logged_in_agents(store):
    await _scenario(store)
    rep = await _report(store, by="60m", key="sales")
    row = _row(rep, "2026-11-23T10:00:00+01:00", "sales")
    assert row["agents_logged_in"] == 1.0          # 1001 all hour; 1002 never logged in
    assert row["agents_needed"] >= 1
    assert _row(rep, "2026-11-23T13:00:00+01:00", "sales")["agents_needed"] == 0


async def test_by_number_and_week_and_month(store):
    await _scenario(store)
    rep = await _report(store, by="week", dimension="number")
    assert [(r["interval"][:10], r["key"], r["offered"]) for r in rep["rows"]] == [
        ("2026-11-23", "7000", 3), ("2026-11-23", "7001", 1)]
    rep = await _report(store, by="month", since="2026-11-01", until="2027-01-01")
    assert sorted({r["interval"][:10] for r in rep["rows"]}) == ["2026-11-01", "2026-12-01"]


def test_a_daylight_saving_day_has_23_hours():
    q = {"since": "2026-03-29", "until": "2026-03-30", "tz": "Europe/Berlin"}
    req = history.request({**q, "by": "60m"}, default_tz="UTC", known=KNOWN, group_tz={})
    assert len(history.intervals(req)) == 23
    req = history.request({**q, "by": "day"}, default_tz="UTC", known=KNOWN, group_tz={})
    [(_, start, end)] = history.intervals(req)
    assert end - start == 23 * 3600
    req = history.request({"since": "2026-10-25", "until": "2026-10-26", "tz": "Europe/Berlin",
                           "by": "15m"}, default_tz="UTC", known=KNOWN, group_tz={})
    assert len(history.intervals(req)) == 100


def test_a_group_report_takes_the_group_time_zone():
    req = history.request({"since": "2026-11-23", "until": "2026-11-24", "key": "sales"},
                          default_tz="UTC", known=KNOWN, group_tz={"sales": "Asia/Kolkata"})
    assert req.tz == "Asia/Kolkata"
    first = history.intervals(req)[0]
    assert first[0].isoformat() == "2026-11-23T00:00:00+05:30"


@pytest.mark.parametrize("query, error", [
    ({"since": "2026-11-24", "until": "2026-11-23"}, "report.bad_range"),
    ({"since": "2026-11-24", "until": "2026-11-24"}, "report.bad_range"),
    ({"since": "yesterday", "until": "2026-11-24"}, "report.bad_range"),
    ({"until": "2026-11-24"}, "report.bad_range"),
    ({"since": "2020-01-01", "until": "2026-01-01", "by": "month"}, "report.bad_range"),
    ({"since": "2026-01-01", "until": "2026-12-01", "by": "15m"}, "report.too_many_intervals"),
    ({"since": "2026-11-23", "until": "2026-11-24", "by": "7m"}, "report.bad_interval"),
    ({"since": "2026-11-23", "until": "2026-11-24", "dimension": "x"}, "report.bad_dimension"),
    ({"since": "2026-11-23", "until": "2026-11-24", "key": "nope"}, "report.unknown_group"),
    ({"since": "2026-11-23", "until": "2026-11-24", "dimension": "agent", "key": "9"},
     "report.unknown_agent"),
    ({"since": "2026-11-23", "until": "2026-11-24", "tz": "Mars/Olympus"}, "report.bad_timezone"),
    ({"since": "2026-11-23", "until": "2026-11-24", "tz": "../../etc/passwd"},
     "report.bad_timezone"),
    ({"since": "2026-11-23", "until": "2026-11-24", "short_abandon": "-1"},
     "report.bad_short_abandon"),
    ({"since": "2026-11-23", "until": "2026-11-24", "short_abandon": "x"},
     "report.bad_short_abandon"),
])
def test_bad_requests_have_stable_ids(query, error):
    with pytest.raises(UserError) as e:
        history.request(query, default_tz="UTC", known=KNOWN, group_tz={})
    assert e.value.id == error


def _input(events, legs=(), end_reason="caller_hangup"):
    return CallInput(did="7000", end_reason=end_reason, rating=None, verification=None,
                     events=events, legs=legs)


def test_an_overflow_is_offered_in_both_groups():
    offers, _ = call_facts(_input([
        ("queued", 100.0, {"group": "sales"}), ("queued", 160.0, {"group": "support"}),
        ("answered", 170.0, {"group": "support", "agent": "1002"}),
        ("ended", 300.0, {"reason": "caller_hangup"})],
        [{"agent_id": "1002", "role": "answer", "started_at": 170.0, "ended_at": 300.0,
          "talk_seconds": 130.0, "hold_seconds": 0.0, "wrapup_seconds": 5.0,
          "reason": "caller_hangup"}]), SL)
    assert [(o.group, o.outcome, o.wait, o.agent, o.talk, o.wrapup) for o in offers] == [
        ("sales", "overflow", 60.0, None, 0.0, 0.0),
        ("support", "answered", 10.0, "1002", 130.0, 5.0)]


def test_a_transfer_credits_each_agent_with_their_part():
    _, legs = call_facts(_input([
        ("queued", 0.0, {"group": "sales"}), ("answered", 5.0, {"group": "sales", "agent": "1001"}),
        ("transfer_completed", 60.0, {"agent": "1001", "target_agent": "1002"}),
        ("ended", 200.0, {"reason": "caller_hangup"})],
        [{"agent_id": "1001", "role": "answer", "started_at": 5.0, "ended_at": 60.0,
          "talk_seconds": 55.0, "hold_seconds": 0.0, "wrapup_seconds": None,
          "reason": "transferred"},
         {"agent_id": "1002", "role": "transfer", "started_at": 60.0, "ended_at": 200.0,
          "talk_seconds": 140.0, "hold_seconds": 0.0, "wrapup_seconds": None,
          "reason": "caller_hangup"}]), SL)
    assert [(g.agent, g.role, g.talk, g.transfers_given, g.group) for g in legs] == [
        ("1001", "answer", 55.0, 1, "sales"), ("1002", "transfer", 140.0, 0, "")]


def test_state_spans_are_cut_at_bucket_edges():
    start = 10 * BUCKET - 100
    assert list(state_spans("break", "lunch", start, start + BUCKET + 200)) == [
        (9 * BUCKET, "break", "lunch", 100), (10 * BUCKET, "break", "lunch", BUCKET),
        (11 * BUCKET, "break", "lunch", 100)]
    assert list(state_spans("idle", "why", 0, 10)) == [(0, "idle", "", 10)]


async def test_long_day_reports_put_each_call_on_its_local_day(store):
    """Over 64 days the database finds the local day with the zone's offsets: calls just
    after local midnight, on both daylight-saving days and in summer, land on their day."""
    from zoneinfo import ZoneInfo
    berlin = ZoneInfo("Europe/Berlin")
    local = [datetime(2026, 3, 29, 0, 30, tzinfo=berlin), datetime(2026, 3, 29, 23, 50, tzinfo=berlin),
             datetime(2026, 7, 1, 23, 50, tzinfo=berlin), datetime(2026, 10, 25, 0, 10, tzinfo=berlin),
             datetime(2026, 10, 25, 23, 30, tzinfo=berlin)]
    for i, when in enumerate(local):
        when = when.astimezone(timezone.utc)      # the store keeps UTC, as the runtime gives it
        uid = f"d{i}"
        await store.call_arrived(uniqueid=uid, channel="c", caller_number="1", caller_name="",
                                 did="7000", at=when)
        await store.call_event(uid, "queued", at=when, detail={"group": "sales"})
        await store.call_ended(uid, reason="abandoned", at=when + timedelta(seconds=5))
    await store.index_reports(SL)
    for by, expect in (("day", {"2026-03-29": 2, "2026-07-01": 1, "2026-10-25": 2}),
                       ("week", {"2026-03-23": 2, "2026-06-29": 1, "2026-10-19": 2})):
        req = history.request({"since": "2026-01-05", "until": "2026-12-28", "by": by,
                               "tz": "Europe/Berlin", "key": "sales"},
                              default_tz="UTC", known=KNOWN, group_tz={})
        async with store.session() as s:
            rep = await history.report(s, req, groups=GROUPS, now=at(0).timestamp())
        got = {r["interval"][:10]: r["offered"] for r in rep["rows"] if r["offered"]}
        assert got == expect, by
