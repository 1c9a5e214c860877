"""Keeps the report facts up to date with the records, behind the calls (never on their path).

The store's writes list a call in ``report_dirty`` when it ends, when a wrap-up ends after
it and when a rating comes; :func:`index_calls` makes the facts of those calls again from
their records (delete, then insert: doing it twice gives the same rows). Agents' state rows
are read once, in order, past a mark (:func:`index_agent_time`): each row closes the span
its agent's previous row opened. Both run on the store's write connection in a transaction
each, a batch at a time, from the server's background task and before a report is read
(:meth:`acd.store.db.Store.index_reports`).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (Connection, and_, case, delete, func, insert, literal, literal_column,
                        select, union_all, update)

from acd.reports.facts import BUCKET, CallInput, call_facts, state_spans
from acd.store.models import (AgentStateChange, Call, CallEvent, CallLeg, ReportAgentHour,
                              ReportAgentOpen, ReportAgentReason, ReportAgentTime, ReportDirty,
                              ReportLeg, ReportMark, ReportOffer, ReportSum)

_calls, _events, _legs = Call.__table__, CallEvent.__table__, CallLeg.__table__
_dirty, _offers, _rlegs = ReportDirty.__table__, ReportOffer.__table__, ReportLeg.__table__
_states, _time = AgentStateChange.__table__, ReportAgentTime.__table__
_open, _marks = ReportAgentOpen.__table__, ReportMark.__table__
_sums, _hours = ReportSum.__table__, ReportAgentHour.__table__
_reasons = ReportAgentReason.__table__
HOUR = 3600
#: The agent states (acd.core.agent_states.AgentState): a column each in report_agent_hours.
STATES = ("offline", "idle", "busy", "break", "meeting", "ringing", "talking", "wrapup")
#: report_agent_hours' leg columns, in the order :func:`refresh_agent_hours` writes them.
LEG_COLUMNS = ("calls_handled", "transfers_taken", "consults_taken", "transfers_given",
               "consults_given", "outbound", "talk", "hold", "wrapup")
#: report_agent_hours' sums: the legs', the ratings', the time in each state.
HOUR_SUMS = (*LEG_COLUMNS, "ratings", "satisfied", *[f"in_{x}" for x in STATES])
#: The first hour of report_agent_hours still to make from the quarter-hour facts (a
#: database from before migration 0012); no mark: all made.
AGENT_HOURS_MARK = "agent_hours"
SATISFIED_AT = 4
#: report_sums' dimensions: the report_offers column each adds up by.
SUM_DIMS = {"group": _offers.c.skill_group, "number": _offers.c.number,
            "agent": _offers.c.agent_id}

STATES_MARK = "agent_state_changes"


def _ts(dt: datetime | None) -> float | None:
    if dt is None:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


def index_calls(conn: Connection, sl_seconds: Mapping[str, float], limit: int = 200) -> int:
    """Make the facts of up to ``limit`` listed calls; the number of list entries taken."""
    with conn.begin():
        rows = conn.execute(select(_dirty.c.id, _dirty.c.call_id).order_by(_dirty.c.id)
                            .limit(limit)).all()
        if not rows:
            return 0
        ids = sorted({r.call_id for r in rows})
        calls = {r.id: r for r in conn.execute(
            select(_calls.c.id, _calls.c.did, _calls.c.end_reason, _calls.c.rating,
                   _calls.c.verification, _calls.c.direction).where(_calls.c.id.in_(ids)))}
        events: dict[int, list[tuple[str, float, Mapping[str, Any]]]] = {i: [] for i in ids}
        for e in conn.execute(select(_events.c.call_id, _events.c.kind, _events.c.at,
                                     _events.c.detail)
                              .where(_events.c.call_id.in_(ids)).order_by(_events.c.id)):
            events[e.call_id].append((e.kind, _ts(e.at) or 0.0, e.detail or {}))
        legs: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
        for g in conn.execute(select(_legs).where(_legs.c.call_id.in_(ids))
                              .order_by(_legs.c.id)):
            legs[g.call_id].append({
                "agent_id": g.agent_id, "role": g.role, "started_at": _ts(g.started_at),
                "ended_at": _ts(g.ended_at), "talk_seconds": g.talk_seconds,
                "hold_seconds": g.hold_seconds, "wrapup_seconds": g.wrapup_seconds,
                "reason": g.reason})
        touched = {b for (b,) in conn.execute(select(_offers.c.bucket).distinct()
                                              .where(_offers.c.call_id.in_(ids)))}
        touched_legs = {b for (b,) in conn.execute(select(_rlegs.c.bucket).distinct()
                                                   .where(_rlegs.c.call_id.in_(ids)))}
        conn.execute(delete(_offers).where(_offers.c.call_id.in_(ids)))
        conn.execute(delete(_rlegs).where(_rlegs.c.call_id.in_(ids)))
        offer_rows: list[dict[str, Any]] = []
        leg_rows: list[dict[str, Any]] = []
        for cid in ids:
            c = calls.get(cid)
            if c is None or c.end_reason is None:
                continue        # gone, or not over yet: listed again when it ends
            offers, call_legs = call_facts(
                CallInput(did=c.did or "", end_reason=c.end_reason, rating=c.rating,
                          verification=c.verification, events=events[cid], legs=legs[cid]),
                sl_seconds)
            offer_rows += [{
                "call_id": cid, "seq": o.seq, "bucket": o.bucket, "skill_group": o.group,
                "number": o.number[:64], "outcome": o.outcome, "wait": o.wait,
                "agent_id": o.agent, "within_sl": int(o.within_sl), "talk": o.talk,
                "hold": o.hold, "wrapup": o.wrapup, "rating": o.rating,
                "verified": int(o.verified), "callback": int(o.callback)} for o in offers]
            leg_rows += [{
                "call_id": cid, "seq": g.seq, "bucket": g.bucket, "agent_id": g.agent[:40],
                "skill_group": g.group[:64], "role": g.role[:16], "talk": g.talk,
                "hold": g.hold, "wrapup": g.wrapup, "reason": g.reason[:32],
                "transfers_given": g.transfers_given, "consults_given": g.consults_given}
                for g in call_legs]
        if offer_rows:
            conn.execute(insert(_offers), offer_rows)
        refresh_sums(conn, touched | {r["bucket"] for r in offer_rows})
        if leg_rows:
            conn.execute(insert(_rlegs), leg_rows)
        refresh_agent_hours(conn, {b - b % HOUR for b in touched | touched_legs | {
            r["bucket"] for r in offer_rows + leg_rows}})
        conn.execute(delete(_dirty).where(_dirty.c.id <= rows[-1].id,
                                          _dirty.c.call_id.in_(ids)))
    return len(rows)


def refresh_sums(conn: Connection, buckets: set[int] | None) -> None:
    """Make ``report_sums`` again for these buckets (None: all) from ``report_offers``."""
    o = _offers
    answered = o.c.outcome == "answered"
    for start in range(0, len(buckets), 500) if buckets is not None else (0,):
        chunk = sorted(buckets)[start:start + 500] if buckets is not None else None
        where = [o.c.bucket.in_(chunk)] if chunk is not None else []
        conn.execute(delete(_sums).where(_sums.c.bucket.in_(chunk)) if chunk is not None
                     else delete(_sums))
        for dim, column in SUM_DIMS.items():
            q = (select(o.c.bucket, literal(dim), column, func.count(),
                        func.sum(case((answered, 1), else_=0)),
                        func.sum(case((o.c.outcome == "abandoned", 1), else_=0)),
                        func.sum(case((o.c.outcome == "overflow", 1), else_=0)),
                        func.sum(case((o.c.outcome == "sent", 1), else_=0)),
                        func.sum(o.c.callback), func.sum(o.c.within_sl),
                        func.sum(case((answered, o.c.wait), else_=0.0)), func.sum(o.c.wait),
                        func.max(o.c.wait), func.sum(o.c.talk), func.sum(o.c.hold),
                        func.sum(o.c.wrapup), func.count(o.c.rating),
                        func.sum(case((o.c.rating >= SATISFIED_AT, 1), else_=0)),
                        func.sum(o.c.verified))
                 .where(*where, column.is_not(None)).group_by(o.c.bucket, column))
            conn.execute(insert(_sums).from_select(
                ["bucket", "dim", "key", "offered", "answered", "abandoned", "overflowed",
                 "sent", "callbacks", "within_sl", "answer_wait", "wait", "wait_max", "talk",
                 "hold", "wrapup", "ratings", "satisfied", "verified"], q))
        if buckets is None:
            break


def index_agent_time(conn: Connection, limit: int = 2000) -> int:
    """Read up to ``limit`` agent state rows past the mark; the number read."""
    with conn.begin():
        mark = conn.execute(select(_marks.c.value).where(_marks.c.name == STATES_MARK)).scalar()
        rows = conn.execute(select(_states.c.id, _states.c.agent_id, _states.c.state,
                                   _states.c.reason, _states.c.at)
                            .where(_states.c.id > (mark or 0)).order_by(_states.c.id)
                            .limit(limit)).all()
        if not rows:
            return 0
        agents = sorted({r.agent_id for r in rows})
        opens = {r.agent_id: (r.state, r.reason, r.at) for r in conn.execute(
            select(_open).where(_open.c.agent_id.in_(agents)))}
        added: dict[tuple[str, int, str, str], float] = {}
        for r in rows:
            at = _ts(r.at) or 0.0
            prev = opens.get(r.agent_id)
            if prev is not None and at > prev[2]:
                for bucket, state, reason, secs in state_spans(prev[0], prev[1], prev[2], at):
                    key = (r.agent_id, bucket, state, reason[:256])
                    added[key] = added.get(key, 0.0) + secs
            opens[r.agent_id] = (r.state, r.reason or "", at)
        if added:
            keys = list(added)
            have = {(t.agent_id, t.bucket, t.state, t.reason) for t in conn.execute(
                select(_time.c.agent_id, _time.c.bucket, _time.c.state, _time.c.reason)
                .where(_time.c.agent_id.in_(agents),
                       _time.c.bucket.in_(sorted({k[1] for k in keys}))))}
            new = [{"agent_id": k[0], "bucket": k[1], "state": k[2], "reason": k[3],
                    "seconds": added[k]} for k in keys if k not in have]
            if new:
                conn.execute(insert(_time), new)
            for k in keys:
                if k in have:
                    conn.execute(update(_time).where(
                        _time.c.agent_id == k[0], _time.c.bucket == k[1], _time.c.state == k[2],
                        _time.c.reason == k[3]).values(seconds=_time.c.seconds + added[k]))
            refresh_agent_hours(conn, {k[1] - k[1] % HOUR for k in keys})
        conn.execute(delete(_open).where(_open.c.agent_id.in_(agents)))
        conn.execute(insert(_open), [{"agent_id": a, "state": s, "reason": why, "at": at}
                                     for a, (s, why, at) in opens.items() if a in agents])
        last = rows[-1].id
        if mark is None:
            conn.execute(insert(_marks), {"name": STATES_MARK, "value": last})
        else:
            conn.execute(update(_marks).where(_marks.c.name == STATES_MARK).values(value=last))
    return len(rows)


def refresh_agent_hours(conn: Connection, hours: Iterable[int] | None = None,
                        span: tuple[int, int] | None = None) -> None:
    """Make ``report_agent_hours`` and ``report_agent_reasons`` again for these UTC hours,
    or the hours of ``span`` ([from, to), whole hours), from report_legs, report_sums
    (agent) and report_agent_time."""
    if span is not None:
        batches: list[tuple[Any, list[Any]]] = [
            (lambda col: and_(col >= span[0], col < span[1]),
             [and_(t.c.hour >= span[0], t.c.hour < span[1]) for t in (_hours, _reasons)])]
    else:
        todo = sorted(set(hours or ()))
        batches = []
        for i in range(0, len(todo), 200):
            chunk = todo[i:i + 200]
            buckets = [h + q * BUCKET for h in chunk for q in range(HOUR // BUCKET)]
            batches.append((lambda col, b=buckets: col.in_(b),
                            [t.c.hour.in_(chunk) for t in (_hours, _reasons)]))
    for where, which in batches:
        conn.execute(delete(_hours).where(which[0]))
        conn.execute(delete(_reasons).where(which[1]))
        _make_hours(conn, where)


def _hour_of(col: Any) -> Any:
    return col - col % literal_column(str(HOUR))


def _part(hour: Any, agent: Any, sums: Mapping[str, Any]) -> list[Any]:
    """The columns of one source's rows: hour, agent, then every sum (0 if not this one's)."""
    zero = {n: literal_column("0") for n in (*LEG_COLUMNS[:6], "ratings", "satisfied")}
    return [hour.label("hour"), agent.label("agent_id"), *[
        sums.get(n, zero.get(n, literal_column("0.0"))).label(n) for n in HOUR_SUMS]]


def _make_hours(conn: Connection, where: Any) -> None:
    g, t, s = _rlegs.c, _time.c, _sums.c
    one = lambda cond: func.sum(case((cond, 1), else_=0))         # noqa: E731
    gh, sh, th = _hour_of(g.bucket), _hour_of(s.bucket), _hour_of(t.bucket)
    legs = select(*_part(gh, g.agent_id, {
        "calls_handled": one(g.role.in_(("answer", "callback"))),
        "transfers_taken": one(g.role == "transfer"), "consults_taken": one(g.role == "consult"),
        "transfers_given": func.sum(g.transfers_given),
        "consults_given": func.sum(g.consults_given), "outbound": one(g.role == "outbound"),
        "talk": func.sum(g.talk), "hold": func.sum(g.hold), "wrapup": func.sum(g.wrapup)})) \
        .where(where(g.bucket)).group_by(gh, g.agent_id)
    rated = select(*_part(sh, s.key, {"ratings": func.sum(s.ratings),
                                       "satisfied": func.sum(s.satisfied)})) \
        .where(s.dim == "agent", where(s.bucket)).group_by(sh, s.key)
    states = select(*_part(th, t.agent_id, {
        f"in_{x}": func.sum(case((t.state == x, t.seconds), else_=0.0)) for x in STATES})) \
        .where(where(t.bucket)).group_by(th, t.agent_id)
    parts = union_all(legs, rated, states).subquery("parts")
    conn.execute(insert(_hours).from_select(["hour", "agent_id", *HOUR_SUMS], select(
        parts.c.hour, parts.c.agent_id, *[func.sum(parts.c[n]) for n in HOUR_SUMS])
        .group_by(parts.c.hour, parts.c.agent_id)))
    conn.execute(insert(_reasons).from_select(["hour", "agent_id", "reason", "seconds"], select(
        th, t.agent_id, t.reason, func.sum(t.seconds))
        .where(t.reason != "", where(t.bucket)).group_by(th, t.agent_id, t.reason)))


def fill_agent_hours(conn: Connection, hours: int = 24) -> int:
    """Make the next ``hours`` of report_agent_hours of a database from before migration
    0012 (the mark's); the number of hours made, 0 once caught up (the mark removed)."""
    with conn.begin():
        start = conn.execute(select(_marks.c.value)
                             .where(_marks.c.name == AGENT_HOURS_MARK)).scalar()
        if start is None:
            return 0
        last = max((b for b in (
            conn.execute(select(func.max(_rlegs.c.bucket))).scalar(),
            conn.execute(select(func.max(_time.c.bucket))).scalar(),
            conn.execute(select(func.max(_sums.c.bucket)).where(_sums.c.dim == "agent"))
            .scalar()) if b is not None), default=None)
        if last is None or start > last:
            conn.execute(delete(_marks).where(_marks.c.name == AGENT_HOURS_MARK))
            return 0
        refresh_agent_hours(conn, span=(start, start + hours * HOUR))
        conn.execute(update(_marks).where(_marks.c.name == AGENT_HOURS_MARK)
                     .values(value=start + hours * HOUR))
    return hours


__all__ = ["index_calls", "index_agent_time", "refresh_sums", "refresh_agent_hours",
           "fill_agent_hours", "STATES_MARK", "AGENT_HOURS_MARK", "STATES", "LEG_COLUMNS",
           "HOUR_SUMS"]
