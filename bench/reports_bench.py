"""Measure 9: history reports over a million calls, and how fast the facts are made.

A SQLite store of our schema (migrated by Alembic, in a temporary folder) is given a year of
report facts for ``calls`` calls (5 skill groups, 50 agents, office hours, seeded), written
in bulk as the indexer writes them: a short call record for each, the offers and their sums
per bucket, the agents' legs and their time in states, and each agent's figures by hour.
Then
the report API's own code (:func:`acd.reports.history.report`, on the server's async
engine) answers the reports a manager asks for; each is timed twice (the first reads the
file from disk, the second from the page cache). Separately, ``indexed`` calls are written
as the runtime writes their records (calls, timelines, legs), and the indexer's time to make
their facts gives its rate in calls per second: the rate at which it keeps up.
"""
from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from acd.reports import history
from acd.reports.facts import BUCKET, state_spans
from acd.reports.indexer import refresh_agent_hours, refresh_sums
from acd.store.db import Store, migrate_async
from acd.store.models import (Call, CallEvent, CallLeg, ReportAgentTime, ReportDirty, ReportLeg,
                              ReportOffer)

GROUPS = ("sales", "support", "billing", "retention", "vip")
AGENTS = tuple(str(1001 + i) for i in range(50))
YEAR_START = datetime(2025, 1, 6, tzinfo=timezone.utc)     # a Monday
TZ = "Europe/Berlin"
#: (name, query): what a manager asks for.
REPORTS = (
    ("a year by month, per group", {"since": "2025-01-06", "until": "2026-01-05",
                                     "by": "month", "dimension": "group"}),
    ("a year by week, per agent", {"since": "2025-01-06", "until": "2026-01-05",
                                    "by": "week", "dimension": "agent"}),
    ("a month by day, per agent", {"since": "2025-06-01", "until": "2025-07-01",
                                   "by": "day", "dimension": "agent"}),
    ("a month by hour, per group, with staffing", {"since": "2025-06-01", "until": "2025-07-01",
                                                   "by": "60m", "dimension": "group"}),
    ("a week by 15 minutes, one group", {"since": "2025-06-02", "until": "2025-06-09",
                                         "by": "15m", "dimension": "group", "key": "sales"}),
)


def _facts(calls: int, rng: random.Random,
           days: int = 364) -> tuple[list[dict], list[dict], list[dict]]:
    per_day = calls // days
    offers, legs = [], []
    cid = 0
    for day in range(days):
        base = (YEAR_START + timedelta(days=day)).timestamp() + 7 * 3600   # 08:00 UTC on
        for _ in range(per_day):
            cid += 1
            at = base + rng.random() * 10 * 3600
            group = GROUPS[cid % len(GROUPS)]
            r = rng.random()
            outcome = "answered" if r < 0.86 else "abandoned" if r < 0.95 else "sent"
            wait = rng.expovariate(1 / 18)
            agent = AGENTS[rng.randrange(len(AGENTS))] if outcome == "answered" else None
            talk, hold = rng.expovariate(1 / 180), (rng.expovariate(1 / 20) if r < 0.2 else 0.0)
            wrapup = rng.uniform(5, 30)
            rating = rng.randint(1, 5) if outcome == "answered" and r < 0.3 else None
            bucket = int(at // BUCKET) * BUCKET
            offers.append({"call_id": cid, "seq": 0, "bucket": bucket, "skill_group": group,
                           "number": f"700{cid % len(GROUPS)}", "outcome": outcome,
                           "wait": round(wait, 3), "agent_id": agent,
                           "within_sl": int(outcome == "answered" and wait <= 20),
                           "talk": talk if agent else 0.0, "hold": hold if agent else 0.0,
                           "wrapup": wrapup if agent else 0.0, "rating": rating,
                           "verified": int(r < 0.5), "callback": 0})
            if agent:
                legs.append({"call_id": cid, "seq": 0, "bucket": int((at + wait) // BUCKET) * BUCKET,
                             "agent_id": agent, "skill_group": group, "role": "answer",
                             "talk": talk, "hold": hold, "wrapup": wrapup,
                             "reason": "caller_hangup", "transfers_given": int(r < 0.03),
                             "consults_given": 0})
    times: dict[tuple[str, int, str, str], float] = {}
    for day in range(days):
        start = (YEAR_START + timedelta(days=day)).timestamp() + 7 * 3600
        for agent in AGENTS:
            t = start + rng.random() * 1800
            end = start + 9 * 3600
            while t < end:
                state = rng.choice(("idle", "ringing", "talking", "talking", "wrapup", "break"))
                length = min(end - t, rng.expovariate(1 / 240))
                reason = rng.choice(("lunch", "coffee", "training")) if state == "break" else ""
                for b, s, why, secs in state_spans(state, reason, t, t + length):
                    times[(agent, b, s, why)] = times.get((agent, b, s, why), 0.0) + secs
                t += length
    time_rows = [{"agent_id": k[0], "bucket": k[1], "state": k[2], "reason": k[3],
                  "seconds": v} for k, v in times.items()]
    return offers, legs, time_rows


def _records(conn: Any, n: int, rng: random.Random) -> None:
    """``n`` ended calls as the runtime writes them, listed for the indexer."""
    t0 = YEAR_START + timedelta(days=400)
    calls, events, legs = [], [], []
    for i in range(1, n + 1):
        at = t0 + timedelta(seconds=i * 3)
        answered = at + timedelta(seconds=10)
        ended = at + timedelta(seconds=200)
        group = GROUPS[i % len(GROUPS)]
        calls.append({"id": 10_000_000 + i, "uniqueid": f"r{i}", "channel": "c",
                      "caller_number": "13800138000", "caller_name": "", "did": "7000",
                      "arrived_at": at, "answered_at": answered, "ended_at": ended,
                      "end_reason": "caller_hangup", "skill_group": group})
        cid = 10_000_000 + i
        for kind, when, detail in (("arrived", at, {"did": "7000"}),
                                   ("queued", at, {"group": group}),
                                   ("offered", at, {"group": group, "agent": "1001"}),
                                   ("ringing", at, {"group": group, "agent": "1001"}),
                                   ("answered", answered, {"group": group, "agent": "1001"}),
                                   ("ended", ended, {"reason": "caller_hangup"})):
            events.append({"call_id": cid, "at": when, "kind": kind, "detail": detail})
        legs.append({"call_id": cid, "agent_id": AGENTS[rng.randrange(50)], "role": "answer",
                     "started_at": answered, "ended_at": ended, "talk_seconds": 190.0,
                     "hold_seconds": 0.0, "wrapup_seconds": 10.0, "reason": "caller_hangup"})
    with conn.begin():
        conn.execute(insert(Call.__table__), calls)
        conn.execute(insert(CallEvent.__table__), events)
        conn.execute(insert(CallLeg.__table__), legs)
        conn.execute(insert(ReportDirty.__table__), [{"call_id": c["id"]} for c in calls])


def _bulk(conn: Any, offers: list, legs: list, times: list) -> None:
    """The facts, with a call record behind each offer (the store's own rows, short)."""
    calls = [{"id": o["call_id"], "uniqueid": f"b{o['call_id']}", "channel": "c",
              "caller_number": "13800138000", "caller_name": "", "did": o["number"],
              "arrived_at": datetime.fromtimestamp(o["bucket"], timezone.utc),
              "end_reason": "caller_hangup", "skill_group": o["skill_group"]} for o in offers]
    with conn.begin():
        for table, rows in ((Call.__table__, calls), (ReportOffer.__table__, offers),
                            (ReportLeg.__table__, legs), (ReportAgentTime.__table__, times)):
            for i in range(0, len(rows), 50_000):
                conn.execute(insert(table), rows[i:i + 50_000])
        refresh_sums(conn, None)          # as the indexer keeps them
        refresh_agent_hours(conn, span=(0, 2**31 - 1))


async def measure(*, calls: int = 1_000_000, indexed: int = 20_000, days: int = 364,
                  say: Callable[[str], None] = print) -> dict[str, Any]:
    rng = random.Random(20261204)
    with tempfile.TemporaryDirectory(prefix="acd-reports-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'acd.db'}"
        await migrate_async(url)
        store = Store(url)
        try:
            t = time.perf_counter()
            offers, legs, times = _facts(calls, rng, days)
            say(f"  {len(offers):,} offers, {len(legs):,} legs, {len(times):,} agent-time rows "
                f"generated in {time.perf_counter() - t:.1f} s")
            t = time.perf_counter()
            await store._on_write_connection(_bulk, offers, legs, times)
            load = time.perf_counter() - t
            say(f"  written in {load:.1f} s")
            groups = {g: history.GroupSettings(members=AGENTS[i::len(GROUPS)])
                      for i, g in enumerate(GROUPS)}
            known = {"group": list(GROUPS), "agent": list(AGENTS)}
            out: dict[str, Any] = {"calls": len(offers), "legs": len(legs),
                                   "agent_time_rows": len(times), "reports": {}}
            now = (YEAR_START + timedelta(days=366)).timestamp()
            for name, query in REPORTS:
                req = history.request(query, default_tz=TZ, known=known, group_tz={})
                secs = []
                for _ in range(2):
                    t = time.perf_counter()
                    async with store.session() as s:
                        rep = await history.report(s, req, groups=groups, now=now)
                    secs.append(round(time.perf_counter() - t, 3))
                counted = sum(r.get("offered", r.get("calls_handled", 0)) for r in rep["totals"])
                out["reports"][name] = {"seconds": secs, "rows": len(rep["rows"]),
                                        "counted": counted}
                say(f"  {name}: {secs[0]} s, again {secs[1]} s ({len(rep['rows']):,} rows, "
                    f"{counted:,} calls counted)")
            await store._on_write_connection(_records, indexed, rng)
            t = time.perf_counter()
            done = {"more": 1}
            taken = 0
            while done["more"] or done["calls"]:
                done = await store.index_reports({g: 20.0 for g in GROUPS})
                taken += done["calls"]
                if not done["calls"]:
                    break
            secs = time.perf_counter() - t
            out["indexer"] = {"calls": taken, "seconds": round(secs, 2),
                              "calls_per_second": round(taken / secs) if secs else None}
            say(f"  the indexer made the facts of {taken:,} calls in {secs:.1f} s "
                f"({out['indexer']['calls_per_second']:,} calls/s)")
            # the target's: every report, per group, number or agent
            out["slowest_seconds"] = max(max(r["seconds"]) for r in out["reports"].values())
            # the slowest per group or number, beside it
            out["slowest_calls_seconds"] = max(
                max(out["reports"][name]["seconds"]) for name, q in REPORTS
                if q.get("dimension") in ("group", "number"))
            return out
        finally:
            await store.close()


__all__ = ["measure", "REPORTS"]
