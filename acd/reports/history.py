"""History reports: the report facts added up by interval, per group, agent or number.

The database adds up the facts by 15-minute UTC bucket and key (one ``GROUP BY`` per fact
table over an indexed bucket range); this module lays the buckets into the report's
intervals in its time zone (15, 30 or 60 minutes, day, week from Monday, month; a day with a
daylight-saving change is 23 or 25 hours long) and computes the figures from the sums, so a
figure over a week is the week's calls, not an average of days. An agent report by 60
minutes, day, week or month in a zone whose offsets are whole hours reads the agents' sums
by UTC hour instead (report_agent_hours: a quarter of the rows, the same figures). Every
figure is defined in :data:`DEFINITIONS`; the columns of each dimension in :func:`columns`.
"""
from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, literal, select

from acd.errors import UserError
from acd.reports import erlang
from acd.reports.facts import BUCKET, state_spans
from acd.reports.indexer import AGENT_HOURS_MARK, HOUR, HOUR_SUMS, LEG_COLUMNS, STATES
from acd.store.models import (ReportAgentHour, ReportAgentOpen, ReportAgentReason,
                              ReportAgentTime, ReportLeg, ReportMark, ReportOffer, ReportSum)

PERIODS = ("15m", "30m", "60m", "day", "week", "month")
DIMENSIONS = ("group", "agent", "number")
MAX_INTERVALS = 10_000
MAX_DAYS = 3 * 366
SATISFIED_AT = 4
#: States an agent is logged in while in (everything but offline).
LOGGED_IN = ("idle", "ringing", "talking", "wrapup", "busy", "break", "meeting")
HANDLING = ("idle", "ringing", "talking", "wrapup")

DEFINITIONS: dict[str, str] = {
    "offered": "Entries into the group's queue in the interval (a call that overflows or is "
               "transferred to a group is offered there too). A call belongs to the interval "
               "it was offered in, whatever happened later.",
    "answered": "Offers an agent answered.",
    "abandoned": "Offers whose caller hung up while waiting or ringing.",
    "short_abandoned": "Abandoned within the short-abandon threshold (short_abandon seconds; "
                       "0 by default: none).",
    "overflowed": "Offers that left the queue for another group.",
    "sent": "Offers sent to a destination while waiting (maximum wait, queue full, closed, "
            "no agents).",
    "callbacks": "Offers during which the caller asked to be called back.",
    "answered_within_sl": "Offers answered within the group's service-level threshold.",
    "service_level": "answered_within_sl / (offered - short_abandoned).",
    "answer_rate": "answered / offered.",
    "abandon_rate": "(abandoned - short_abandoned) / (offered - short_abandoned).",
    "asa": "Average speed of answer: mean wait of answered offers, seconds.",
    "avg_wait": "Mean wait of all offers until answered, abandoned or sent on, seconds.",
    "longest_wait": "The longest such wait, seconds.",
    "aht": "Average handle time: (talk + hold + wrap-up) / answered, seconds.",
    "talk": "Talk time of the answered offers (the answering agent's part), seconds.",
    "hold": "Time the answering agent held the caller, seconds.",
    "wrapup": "The answering agent's wrap-up after the call, seconds.",
    "ratings": "Answered calls the caller rated (1-5).",
    "satisfaction": "Ratings of 4 or 5 / ratings.",
    "verified_share": "Offers whose caller was verified in the IVR / offered.",
    "agents_needed": "Agents the interval needed to answer its offered calls at its handle "
                     "time within the service level (Erlang C; the group's "
                     "service_level_target). For 15, 30 and 60-minute intervals only.",
    "agents_logged_in": "The group's members logged in, on average over the interval "
                        "(15, 30 and 60-minute intervals only).",
    "calls_handled": "The agent's parts of calls taken from a queue (answer, callback) in "
                     "the interval.",
    "transfers_taken": "Calls transferred to the agent.",
    "consults_taken": "Consultations the agent answered.",
    "transfers_given": "Calls the agent transferred (blind or after a consultation).",
    "consults_given": "Consultations the agent made that were answered.",
    "outbound": "The agent's outbound calls.",
    "logged_in": "Seconds the agent was logged in (any state but offline).",
    "occupancy": "(talking + wrap-up) / (idle + ringing + talking + wrap-up).",
}

_GROUP_COLUMNS = [
    ("offered", "Offered", "count"), ("answered", "Answered", "count"),
    ("abandoned", "Abandoned", "count"), ("short_abandoned", "Short abandoned", "count"),
    ("overflowed", "Overflowed", "count"), ("sent", "Sent on", "count"),
    ("callbacks", "Callbacks", "count"), ("answered_within_sl", "Within SL", "count"),
    ("service_level", "Service level", "ratio"), ("answer_rate", "Answer rate", "ratio"),
    ("abandon_rate", "Abandon rate", "ratio"), ("asa", "ASA", "seconds"),
    ("avg_wait", "Average wait", "seconds"), ("longest_wait", "Longest wait", "seconds"),
    ("aht", "AHT", "seconds"), ("talk", "Talk", "seconds"), ("hold", "Hold", "seconds"),
    ("wrapup", "Wrap-up", "seconds"), ("ratings", "Ratings", "count"),
    ("satisfaction", "Satisfied", "ratio"), ("verified_share", "Verified", "ratio")]
_STAFF_COLUMNS = [("agents_needed", "Agents needed", "count"),
                  ("agents_logged_in", "Agents logged in", "count")]
_AGENT_COLUMNS = [
    ("calls_handled", "Calls handled", "count"), ("transfers_taken", "Transfers taken", "count"),
    ("consults_taken", "Consults taken", "count"), ("transfers_given", "Transfers given", "count"),
    ("consults_given", "Consults given", "count"), ("outbound", "Outbound", "count"),
    ("aht", "AHT", "seconds"), ("talk", "Talk", "seconds"), ("hold", "Hold", "seconds"),
    ("wrapup", "Wrap-up", "seconds"), ("ratings", "Ratings", "count"),
    ("satisfaction", "Satisfied", "ratio"), ("logged_in", "Logged in", "seconds"),
    ("occupancy", "Occupancy", "ratio")]


def columns(dimension: str) -> list[dict[str, str]]:
    """The report's columns, in order: interval and key first."""
    head = [{"key": "interval", "label": "Interval", "kind": "time"},
            {"key": "key", "label": {"group": "Group", "agent": "Agent",
                                     "number": "Number"}[dimension], "kind": "text"}]
    body = (_GROUP_COLUMNS + _STAFF_COLUMNS if dimension == "group" else
            _GROUP_COLUMNS if dimension == "number" else _AGENT_COLUMNS)
    return head + [{"key": k, "label": label, "kind": kind} for k, label, kind in body]


@dataclass(frozen=True)
class Request:
    """What a report is asked for (checked by :func:`request`)."""
    since: datetime                      # aware, in ``tz``
    until: datetime
    by: str
    dimension: str
    tz: str
    keys: tuple[str, ...] = ()           # only these groups, agents or numbers; () all
    short_abandon: float = 0.0


@dataclass(frozen=True)
class GroupSettings:
    """What the figures need of a group's configuration."""
    sl_seconds: float = 20.0
    sl_target: float = 0.8
    expected_handle_time: float = 180.0
    members: tuple[str, ...] = ()


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ValueError, KeyError, OSError):
        raise UserError("report.bad_timezone",
                        f"{tz!r} is not a time zone (e.g. Europe/Berlin, UTC)") from None


def _day(raw: str | None, name: str, zone: ZoneInfo) -> datetime:
    if not raw:
        raise UserError("report.bad_range", f"{name}: a date is needed (2026-11-22)")
    try:
        if len(raw) == 10:
            return datetime.fromisoformat(raw).replace(tzinfo=zone)
        dt = datetime.fromisoformat(raw)
    except ValueError:
        raise UserError("report.bad_range", f"{name}: a date (2026-11-22) or a time "
                                            "(2026-11-22T09:30:00+01:00), not "
                                            f"{raw[:40]!r}") from None
    return dt.astimezone(zone) if dt.tzinfo else dt.replace(tzinfo=zone)


def request(query: Mapping[str, str], *, default_tz: str, known: Mapping[str, Sequence[str]],
            group_tz: Mapping[str, str]) -> Request:
    """A report request from query parameters: ``since``, ``until`` (dates in the report's
    time zone, ``until`` excluded; or ISO 8601 times), ``by``, ``dimension``, ``key``
    (comma-separated), ``tz`` (default: the one group's when ``key`` names one group, else
    ``web.timezone``), ``short_abandon`` (seconds). ``known``: dimension -> known keys
    (numbers are free text)."""
    by = query.get("by", "60m")
    if by not in PERIODS:
        raise UserError("report.bad_interval", f"by: one of {', '.join(PERIODS)}")
    dimension = query.get("dimension", "group")
    if dimension not in DIMENSIONS:
        raise UserError("report.bad_dimension", f"dimension: one of {', '.join(DIMENSIONS)}")
    raw_keys = query.get("key", "")
    if len(raw_keys) > 2000:
        raise UserError("report.bad_key", "key: at most 2000 characters")
    keys = tuple(k for k in (x.strip() for x in raw_keys.split(",")) if k)
    if dimension != "number":
        unknown = [k for k in keys if k not in known.get(dimension, ())]
        if unknown:
            raise UserError(f"report.unknown_{dimension}",
                            f"no {dimension} {unknown[0][:64]!r}")
    tz = query.get("tz") or (group_tz.get(keys[0]) if dimension == "group" and len(keys) == 1
                             else None) or default_tz
    zone = _zone(tz[:64])
    since, until = _day(query.get("since"), "since", zone), _day(query.get("until"), "until", zone)
    if until <= since:
        raise UserError("report.bad_range", "until must be after since")
    if until - since > timedelta(days=MAX_DAYS):
        raise UserError("report.bad_range", f"at most {MAX_DAYS} days in one report")
    try:
        short = float(query.get("short_abandon", "0"))
    except ValueError:
        raise UserError("report.bad_short_abandon", "short_abandon: seconds") from None
    if not 0 <= short <= 3600:
        raise UserError("report.bad_short_abandon", "short_abandon: 0 to 3600 seconds")
    req = Request(since=since, until=until, by=by, dimension=dimension, tz=tz, keys=keys,
                  short_abandon=short)
    n = len(intervals(req))
    if n > MAX_INTERVALS:
        raise UserError("report.too_many_intervals",
                        f"{n} intervals: at most {MAX_INTERVALS}; choose a longer interval "
                        "or a shorter range")
    return req


def _next(start: datetime, by: str) -> datetime:
    """The start of the interval after the one starting at ``start`` (wall-clock time)."""
    if by in ("15m", "30m", "60m"):
        return start + timedelta(minutes=int(by[:-1]))     # aware + timedelta: UTC-safe below
    if by == "day":
        return (start.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=start.tzinfo)
    if by == "week":
        return (start.replace(tzinfo=None) + timedelta(days=7)).replace(tzinfo=start.tzinfo)
    y, m = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return start.replace(year=y, month=m, day=1)


def _first(since: datetime, by: str) -> datetime:
    if by == "week":
        d = since.replace(hour=0, minute=0, second=0, microsecond=0)
        return d - timedelta(days=d.weekday())
    if by == "month":
        return since.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if by == "day":
        return since.replace(hour=0, minute=0, second=0, microsecond=0)
    step = int(by[:-1])
    return since.replace(minute=since.minute - since.minute % step, second=0, microsecond=0)


def intervals(req: Request) -> list[tuple[datetime, float, float]]:
    """(local start, start, end) of each interval, UNIX seconds; minute intervals step in
    real time (a daylight-saving day has 92 or 100 quarter hours), longer ones in wall time."""
    zone = ZoneInfo(req.tz)
    out: list[tuple[datetime, float, float]] = []
    start, stop = _first(req.since, req.by), req.until.timestamp()
    minutes = req.by.endswith("m")
    t = start.timestamp()
    while t < stop and len(out) <= MAX_INTERVALS:
        if minutes:
            local = datetime.fromtimestamp(t, zone)
            end = t + int(req.by[:-1]) * 60
        else:
            local = start
            start = _next(start, req.by)
            end = start.timestamp()
        out.append((local, t, end))
        t = end
    return out


@dataclass
class _Sums:
    n: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    longest: float = 0.0


def _offsets(zone: ZoneInfo, lo: int, hi: int) -> list[tuple[int, int]]:
    """(from, UTC offset in seconds) for each stretch of [lo, hi) with one offset: the
    zone's daylight-saving changes, found to the quarter hour."""
    def off(t: int) -> int:
        return int(datetime.fromtimestamp(t, zone).utcoffset().total_seconds())

    out = [(lo, off(lo))]
    t = lo
    while t < hi:
        nxt = min(hi, t + 3600)
        if off(nxt - 1) != out[-1][1]:
            q = t
            while off(q) == out[-1][1]:
                q += BUCKET
            out.append((q, off(q)))
        t = nxt
    return out


def _slot(col: Any, req: Request, spans: list[tuple[datetime, float, float]]) -> Any:
    """SQL for the index of the interval a bucket column falls in, so the database adds
    up by interval (buckets before the first interval are filtered out by the caller)."""
    first = int(spans[0][1])
    if req.by.endswith("m"):               # intervals of equal length in real time
        return (col - first) // (int(req.by[:-1]) * 60)
    if req.by == "month":                  # at most 37: one comparison per boundary
        return case(*[(col < int(end), i) for i, (_, _, end) in enumerate(spans)],
                    else_=len(spans))
    # days and weeks: the local day (the zone's offset at the bucket: a comparison per
    # daylight-saving change), counted from the first interval's
    changes = _offsets(ZoneInfo(req.tz), first, int(spans[-1][2]))
    shift = case(*[(col < t, o) for (t, _), (_, o) in zip(changes[1:], changes)],
                 else_=changes[-1][1]) if len(changes) > 1 else literal(changes[0][1])
    day = (col + shift) // 86400 - (first + changes[0][1]) // 86400
    return day if req.by == "day" else day // 7


async def _offer_sums(session: Any, slot: Any, lo: int, hi: int, dim: str,
                      keys: tuple[str, ...]) -> list[Any]:
    t = ReportSum
    q = (select(slot, t.key, func.sum(t.offered), func.sum(t.answered), func.sum(t.abandoned),
                func.sum(t.overflowed), func.sum(t.sent), func.sum(t.callbacks),
                func.sum(t.within_sl), func.sum(t.answer_wait), func.sum(t.wait),
                func.max(t.wait_max), func.sum(t.talk), func.sum(t.hold), func.sum(t.wrapup),
                func.sum(t.ratings), func.sum(t.satisfied), func.sum(t.verified))
         .where(t.dim == dim, t.bucket >= lo, t.bucket < hi))
    if keys:
        q = q.where(t.key.in_(keys))
    return list((await session.execute(q.group_by(slot, t.key))).all())


_OFFER_FIELDS = ("offered", "answered", "abandoned", "overflowed", "sent", "callbacks",
                 "answered_within_sl", "_answer_wait", "_wait")
_OFFER_TAIL = ("talk", "hold", "wrapup", "ratings", "satisfied", "verified")


async def _short_abandons(session: Any, slot: Any, lo: int, hi: int, column: Any,
                          keys: tuple[str, ...], short: float) -> list[Any]:
    o = ReportOffer
    q = (select(slot, column, func.count())
         .where(o.outcome == "abandoned", o.bucket >= lo, o.bucket < hi, o.wait < short))
    if keys:
        q = q.where(column.in_(keys))
    return list((await session.execute(q.group_by(slot, column))).all())


async def _leg_sums(session: Any, slot: Any, lo: int, hi: int,
                    keys: tuple[str, ...]) -> list[Any]:
    g = ReportLeg
    q = (select(slot, g.agent_id, func.sum(case((g.role.in_(("answer", "callback")), 1),
                                                else_=0)),
                func.sum(case((g.role == "transfer", 1), else_=0)),
                func.sum(case((g.role == "consult", 1), else_=0)),
                func.sum(g.transfers_given), func.sum(g.consults_given),
                func.sum(case((g.role == "outbound", 1), else_=0)),
                func.sum(g.talk), func.sum(g.hold), func.sum(g.wrapup))
         .where(g.bucket >= lo, g.bucket < hi))
    if keys:
        q = q.where(g.agent_id.in_(keys))
    return list((await session.execute(q.group_by(slot, g.agent_id))).all())


async def _time_sums(session: Any, slot: Any, lo: int, hi: int, keys: tuple[str, ...],
                     logged_in_only: bool = False) -> list[tuple[Any, ...]]:
    """(interval, agent, state, reason, seconds) from the facts; logged_in_only: (interval,
    agent, "idle", "", seconds logged in) for staffing."""
    t = ReportAgentTime
    where = [t.bucket >= lo, t.bucket < hi]
    if keys:
        where.append(t.agent_id.in_(keys))
    if logged_in_only:
        where.append(t.state != "offline")
        q = select(slot, t.agent_id, literal("idle"), literal(""), func.sum(t.seconds)) \
            .where(*where).group_by(slot, t.agent_id)
    else:
        q = select(slot, t.agent_id, t.state, t.reason, func.sum(t.seconds)) \
            .where(*where).group_by(slot, t.agent_id, t.state, t.reason)
    return [tuple(r) for r in (await session.execute(q)).all()]


async def _open_spans(session: Any, lo: int, hi: int, now: float,
                      keys: tuple[str, ...]) -> list[tuple[int, str, str, str, float]]:
    """(bucket, agent, state, reason, seconds) of the states not over yet, up to now."""
    out = []
    for a in (await session.scalars(select(ReportAgentOpen))):
        if keys and a.agent_id not in keys:
            continue
        for b, state, reason, secs in state_spans(a.state, a.reason, max(a.at, lo), min(now, hi)):
            out.append((b, a.agent_id, state, reason, secs))
    return out


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b > 0 else None


def _mean(a: float, b: float) -> float | None:
    return round(a / b, 1) if b > 0 else None


def _group_figures(s: _Sums) -> dict[str, Any]:
    n = s.n
    offered, answered, short = n["offered"], n["answered"], n["short_abandoned"]
    out = {k: int(n[k]) for k in ("offered", "answered", "abandoned", "short_abandoned",
                                  "overflowed", "sent", "callbacks", "answered_within_sl",
                                  "ratings")}
    out.update({
        "service_level": _ratio(n["answered_within_sl"], offered - short),
        "answer_rate": _ratio(answered, offered),
        "abandon_rate": _ratio(n["abandoned"] - short, offered - short),
        "asa": _mean(n["_answer_wait"], answered), "avg_wait": _mean(n["_wait"], offered),
        "longest_wait": round(s.longest, 1) if offered else None,
        "aht": _mean(n["talk"] + n["hold"] + n["wrapup"], answered),
        "talk": round(n["talk"], 1), "hold": round(n["hold"], 1),
        "wrapup": round(n["wrapup"], 1),
        "satisfaction": _ratio(n["satisfied"], n["ratings"]),
        "verified_share": _ratio(n["verified"], offered)})
    return out


def _agent_figures(s: _Sums) -> dict[str, Any]:
    n = s.n
    handled = n["calls_handled"] + n["transfers_taken"] + n["consults_taken"]
    available = sum(n["state:" + x] for x in HANDLING)
    out = {k: int(n[k]) for k in ("calls_handled", "transfers_taken", "consults_taken",
                                  "transfers_given", "consults_given", "outbound", "ratings")}
    out.update({
        "aht": _mean(n["talk"] + n["hold"] + n["wrapup"], handled + n["outbound"]),
        "talk": round(n["talk"], 1), "hold": round(n["hold"], 1),
        "wrapup": round(n["wrapup"], 1),
        "satisfaction": _ratio(n["satisfied"], n["ratings"]),
        "logged_in": round(sum(n["state:" + x] for x in LOGGED_IN), 1),
        "occupancy": _ratio(n["state:talking"] + n["state:wrapup"], available),
        "states": {k[6:]: round(v, 1) for k, v in n.items() if k.startswith("state:") and v},
        "break_reasons": {k[7:]: round(v, 1) for k, v in n.items()
                          if k.startswith("reason:") and v}})
    return out


async def report(session: Any, req: Request, *, groups: Mapping[str, GroupSettings],
                 now: float) -> dict[str, Any]:
    """The report: ``rows`` (interval x key), ``totals`` (per key over the range),
    ``columns`` and ``definitions``. The database adds up by interval (:func:`_slot`)."""
    spans = intervals(req)
    starts = [s[1] for s in spans]
    lo, hi = int(starts[0]), int(spans[-1][2])
    cells: dict[tuple[int, str], _Sums] = defaultdict(_Sums)
    totals: dict[str, _Sums] = defaultdict(_Sums)

    def add(i: int, key: str, values: dict[str, float], longest: float = 0.0) -> None:
        if not 0 <= i < len(spans):
            return
        for target in (cells[(i, key)], totals[key]):
            for k, v in values.items():
                target.n[k] += v or 0
            target.longest = max(target.longest, longest)

    def index(bucket: int) -> int:
        return bisect.bisect_right(starts, bucket) - 1

    staffing = req.dimension == "group" and req.by.endswith("m")
    if req.dimension in ("group", "number"):
        slot = _slot(ReportSum.bucket, req, spans)
        for r in await _offer_sums(session, slot, lo, hi, req.dimension, req.keys):
            vals = dict(zip(_OFFER_FIELDS, r[2:11]))
            vals.update(zip(_OFFER_TAIL, r[12:18]))
            add(r[0], r[1], vals, r[11] or 0.0)
        if req.short_abandon > 0:
            column = ReportOffer.skill_group if req.dimension == "group" else ReportOffer.number
            for i, key, n in await _short_abandons(session, _slot(ReportOffer.bucket, req, spans),
                                                   lo, hi, column, req.keys, req.short_abandon):
                add(i, key, {"short_abandoned": n})
    if req.dimension == "agent":
        await _agent_cells(session, req, spans, lo, hi, now, add, index)
    staffed: dict[tuple[int, str], float] = defaultdict(float)
    if staffing and groups:
        member_of: dict[str, list[str]] = defaultdict(list)
        for g, st in groups.items():
            for m in st.members:
                member_of[m].append(g)
        if await _by_hours(session, req, lo, hi):
            rows = await _logged_in_hours(session, _slot(ReportAgentHour.hour, req, spans),
                                          lo, hi)
        else:
            rows = await _time_sums(session, _slot(ReportAgentTime.bucket, req, spans), lo,
                                    hi, (), logged_in_only=True)
        rows += [(index(b), a, st, "", secs) for b, a, st, _r, secs
                 in await _open_spans(session, lo, hi, now, ()) if st != "offline"]
        for i, agent, _state, _reason, secs in rows:
            for g in member_of.get(agent, ()):
                staffed[(i, g)] += secs
    rows, total_rows = _rows(req, spans, cells, totals, staffed, staffing, groups)
    return {"since": req.since.isoformat(), "until": req.until.isoformat(), "by": req.by,
            "dimension": req.dimension, "timezone": req.tz, "short_abandon": req.short_abandon,
            "columns": columns(req.dimension), "rows": rows, "totals": total_rows,
            "definitions": DEFINITIONS}


async def _agent_cells(session: Any, req: Request, spans: list[tuple[datetime, float, float]],
                       lo: int, hi: int, now: float, add: Any, index: Any) -> None:
    """The agent dimension's sums: their legs, the ratings of the calls they answered,
    their time in each state (the states not over yet counted up to now); by hour
    (report_agent_hours) when the intervals are whole UTC hours (:func:`_by_hours`)."""
    if await _by_hours(session, req, lo, hi):
        for r in await _hour_sums(session, _slot(ReportAgentHour.hour, req, spans), lo, hi,
                                  req.keys):
            vals = dict(zip(_HOUR_FIGURES, r[2:]))
            vals.update(("state:" + x, secs) for x, secs
                        in zip(STATES, r[2 + len(_HOUR_FIGURES):]) if secs)
            add(r[0], r[1], vals)
        for i, agent, reason, secs in await _reason_sums(
                session, _slot(ReportAgentReason.hour, req, spans), lo, hi, req.keys):
            add(i, agent, {"reason:" + reason: secs})
    else:
        await _quarter_hour_cells(session, req, spans, lo, hi, add)
    for b, agent, state, reason, secs in await _open_spans(session, lo, hi, now, req.keys):
        vals = {"state:" + state: secs}
        if reason:
            vals["reason:" + reason] = secs
        add(index(b), agent, vals)


_HOUR_FIGURES = (*LEG_COLUMNS, "ratings", "satisfied")


async def _by_hours(session: Any, req: Request, lo: int, hi: int) -> bool:
    """Whether the report may read report_agent_hours: intervals of 60 minutes or longer
    in a zone whose offsets (and their changes) in the range are whole hours, and the table
    made (not still being filled after an upgrade)."""
    if req.by in ("15m", "30m") or lo % HOUR or hi % HOUR:
        return False
    if any(t % HOUR or o % HOUR for t, o in _offsets(ZoneInfo(req.tz), lo, hi)):
        return False
    mark = await session.scalar(select(ReportMark.value)
                                .where(ReportMark.name == AGENT_HOURS_MARK))
    return mark is None


async def _hour_sums(session: Any, slot: Any, lo: int, hi: int,
                     keys: tuple[str, ...]) -> list[Any]:
    h = ReportAgentHour
    q = (select(slot, h.agent_id, *[func.sum(getattr(h, c)) for c in HOUR_SUMS])
         .where(h.hour >= lo, h.hour < hi))
    if keys:
        q = q.where(h.agent_id.in_(keys))
    return list((await session.execute(q.group_by(slot, h.agent_id))).all())


async def _logged_in_hours(session: Any, slot: Any, lo: int,
                           hi: int) -> list[tuple[Any, ...]]:
    """(interval, agent, "idle", "", seconds logged in) by hour, as :func:`_time_sums`."""
    h = ReportAgentHour
    logged_in = [getattr(h, f"in_{x}") for x in STATES if x != "offline"]
    q = (select(slot, h.agent_id, literal("idle"), literal(""),
                func.sum(sum(logged_in[1:], logged_in[0])))
         .where(h.hour >= lo, h.hour < hi).group_by(slot, h.agent_id))
    return [tuple(r) for r in (await session.execute(q)).all()]


async def _reason_sums(session: Any, slot: Any, lo: int, hi: int,
                       keys: tuple[str, ...]) -> list[Any]:
    r = ReportAgentReason
    q = select(slot, r.agent_id, r.reason, func.sum(r.seconds)).where(r.hour >= lo, r.hour < hi)
    if keys:
        q = q.where(r.agent_id.in_(keys))
    return list((await session.execute(q.group_by(slot, r.agent_id, r.reason))).all())


async def _quarter_hour_cells(session: Any, req: Request,
                              spans: list[tuple[datetime, float, float]], lo: int, hi: int,
                              add: Any) -> None:
    """The agent dimension's sums from the quarter-hour facts (any interval, any zone)."""
    for r in await _leg_sums(session, _slot(ReportLeg.bucket, req, spans), lo, hi, req.keys):
        add(r[0], r[1], dict(zip(("calls_handled", "transfers_taken", "consults_taken",
                                  "transfers_given", "consults_given", "outbound",
                                  "talk", "hold", "wrapup"), r[2:11])))
    for r in await _offer_sums(session, _slot(ReportSum.bucket, req, spans), lo, hi, "agent",
                               req.keys):
        add(r[0], r[1], {"ratings": r[15], "satisfied": r[16]})
    for i, agent, state, reason, secs in await _time_sums(
            session, _slot(ReportAgentTime.bucket, req, spans), lo, hi, req.keys):
        vals = {"state:" + state: secs}
        if reason:
            vals["reason:" + reason] = secs
        add(i, agent, vals)


def _rows(req: Request, spans: list[tuple[datetime, float, float]],
          cells: Mapping[tuple[int, str], _Sums], totals: Mapping[str, _Sums],
          staffed: Mapping[tuple[int, str], float], staffing: bool,
          groups: Mapping[str, GroupSettings]) -> tuple[list[dict[str, Any]],
                                                        list[dict[str, Any]]]:
    """The report's rows (interval x key, empty intervals included) and totals per key."""
    figures = _agent_figures if req.dimension == "agent" else _group_figures
    keys = sorted({k for _, k in cells} | set(req.keys
                                             or (groups if req.dimension == "group" else ())))
    rows = []
    for i, (local, start, end) in enumerate(spans):
        for key in keys:
            s = cells.get((i, key)) or _Sums()
            row = {"interval": local.isoformat(), "start": start, "seconds": end - start,
                   "key": key, **figures(s)}
            if staffing:
                st = groups.get(key, GroupSettings())
                aht = row["aht"] or st.expected_handle_time
                row["agents_needed"] = erlang.agents_needed(
                    row["offered"], end - start, aht, st.sl_seconds, st.sl_target)
                row["agents_logged_in"] = round(staffed.get((i, key), 0.0) / (end - start), 2)
            elif req.dimension == "group":
                row["agents_needed"] = row["agents_logged_in"] = None
            rows.append(row)
    return rows, [{"key": k, **figures(totals.get(k) or _Sums())} for k in keys]


__all__ = ["PERIODS", "DIMENSIONS", "DEFINITIONS", "Request", "GroupSettings", "request",
           "intervals", "report", "columns"]
