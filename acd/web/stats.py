"""The figures of the wall board, the statistics API and /metrics, defined once.

Plain Python, no I/O: rows in (call timelines and agent state rows from the store, the core's
live snapshots), figures out. "Today" is since midnight in ``web.timezone``; intervals are
15 minutes long. The live figures (calls waiting, longest wait, agents by state, callbacks
pending, each agent's state and time in state) are the ACD core's own snapshot
(``snapshot_queues`` / ``snapshot_agents``); the counted figures are computed from the call
records with the same rules the core counts by (``offered`` on each entry into a group's
queue, ``answered`` on each answer, ``abandoned`` by the end reason), so that a day without
a restart gives the same numbers as the core's counters.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

INTERVAL = 15 * 60

#: Every figure, with the one definition the page, the README and the API share.
DEFINITIONS: dict[str, str] = {
    "waiting": "Callers waiting in the group's queue now (not yet ringing an agent).",
    "longest_wait": "How long the caller who has waited longest has been waiting, now.",
    "agents": "The group's members by state, now (idle, ringing, talking, wrapup, busy, "
              "break, meeting, offline).",
    "idle_no_phone": "Idle members whose phone cannot take a call now (not registered, or "
                     "busy with another call): they get no calls until it can.",
    "offered": "Calls that entered the group's queue today (a call that overflows into another "
               "group is offered there too).",
    "answered": "Offered calls an agent answered today.",
    "abandoned": "Calls whose caller hung up while waiting or ringing in the group, today.",
    "answer_rate": "answered / offered.",
    "abandon_rate": "abandoned / offered.",
    "service_level": "Calls answered within the group's threshold (service_level_seconds, "
                     "from entering the queue) / offered.",
    "asa": "Average speed of answer: the mean time from entering the queue to the answer, "
           "over answered calls.",
    "aht": "Average handle time: the mean time from the answer to the end of wrap-up (or of "
           "the call, without wrap-up), over calls whose handling ended today.",
    "callbacks_pending": "Callers who asked to be called back and have not been yet, now.",
    "satisfaction": "Satisfied ratings / ratings given today (a rating of 4 or 5 out of 5 "
                    "is satisfied; a call rated twice counts once, with its last rating).",
    "verified_share": "Offered calls whose caller's identity was verified in the IVR / "
                      "offered calls.",
    "calls_handled": "Calls the agent answered today.",
    "talk_time": "The agent's time in the talking state today.",
    "wrapup_time": "The agent's time in wrap-up today.",
    "occupancy": "(talk time + wrap-up time) / (time idle, ringing, talking or in wrap-up): "
                 "the share of the agent's available time spent on calls, today.",
    "time_in_state": "Since the agent's last state change.",
}

SATISFIED_AT = 4            # of 5
HANDLING = ("idle", "ringing", "talking", "wrapup")


def day_start(now: float, tz: str) -> datetime:
    """Midnight today in ``tz``, as an aware datetime."""
    local = datetime.fromtimestamp(now, ZoneInfo(tz))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b else None


def _mean(xs: list[float]) -> float | None:
    return round(sum(xs) / len(xs), 1) if xs else None


def rating_of(event: Mapping[str, Any]) -> int | None:
    """The score of a rating record (``rated``, 1-5, as the store writes it), or None if the
    record is not a rating."""
    if event.get("kind") != "rated":
        return None
    d = event.get("detail") or {}
    for key in ("rating", "score"):
        v = d.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return int(v)
        if isinstance(v, str) and v.isdigit():
            return int(v)
    return None


class _Counts:
    __slots__ = ("offered", "answered", "abandoned", "within_sl", "waits", "handles",
                 "ratings", "satisfied", "verified", "calls")

    def __init__(self) -> None:
        self.offered = self.answered = self.abandoned = self.within_sl = 0
        self.waits: list[float] = []
        self.handles: list[float] = []
        self.ratings = self.satisfied = self.verified = 0
        self.calls: set[str] = set()

    def figures(self) -> dict[str, Any]:
        return {"offered": self.offered, "answered": self.answered, "abandoned": self.abandoned,
                "answered_within_sl": self.within_sl,
                "answer_rate": _ratio(self.answered, self.offered),
                "abandon_rate": _ratio(self.abandoned, self.offered),
                "service_level": _ratio(self.within_sl, self.offered),
                "asa": _mean(self.waits), "aht": _mean(self.handles),
                "ratings": self.ratings, "satisfied": self.satisfied,
                "satisfaction": _ratio(self.satisfied, self.ratings),
                "verified_calls": self.verified,
                "verified_share": _ratio(self.verified, len(self.calls))}


def group_figures(calls: Iterable[Mapping[str, Any]], *, since: float, until: float,
                  sl_seconds: Mapping[str, float]) -> tuple[dict[str, dict[str, Any]],
                                                             dict[str, list[dict[str, Any]]]]:
    """Per group: today's counted figures, and the same by 15-minute interval (an event
    counts in the interval it happened in; an answer within the service level counts where
    the answer happened). ``calls``: ``{"uniqueid", "group", "verification", "events":
    [{"kind", "at" (UNIX s), "detail"}]}`` with whole timelines."""
    totals: dict[str, _Counts] = defaultdict(_Counts)
    n = max(1, int((until - since + INTERVAL - 1) // INTERVAL))
    slots: dict[str, list[_Counts]] = defaultdict(lambda: [_Counts() for _ in range(n)])

    def both(group: str, at: float) -> list[_Counts]:
        i = int((at - since) // INTERVAL)
        return [totals[group], slots[group][min(max(i, 0), n - 1)]]

    for call in calls:
        entered: dict[str, float] = {}          # group -> last queue entry
        answered_at: float | None = None
        rated: tuple[int, float, str] | None = None     # a second rating replaces the first
        current = call.get("group")
        for e in sorted(call["events"], key=lambda e: e["at"]):
            kind, at, d = e["kind"], e["at"], e.get("detail") or {}
            group = d.get("group") or current
            in_day = since <= at < until
            if kind == "queued" and group:
                current = group
                entered[group] = at
                if in_day:
                    for c in both(group, at):
                        c.offered += 1
                        c.calls.add(call["uniqueid"])
                        if call.get("verification") == "verified":
                            c.verified += 1
            elif kind == "answered" and group:
                answered_at = at
                if in_day:
                    wait = at - entered.get(group, at)
                    for c in both(group, at):
                        c.answered += 1
                        c.waits.append(wait)
                        if wait <= sl_seconds.get(group, 20.0):
                            c.within_sl += 1
            elif kind in ("wrapup_ended", "ended") and answered_at is not None and current:
                # Handling ends with the wrap-up; without one, with the call.
                if kind == "wrapup_ended" or not any(x["kind"] == "wrapup" for x in call["events"]):
                    if in_day:
                        for c in both(current, at):
                            c.handles.append(at - answered_at)
                    answered_at = None
            if kind == "ended" and in_day and current and d.get("reason") == "abandoned":
                for c in both(current, at):
                    c.abandoned += 1
            score = rating_of(e)
            if score is not None and current:
                rated = (score, at, current)
        if rated is not None and since <= rated[1] < until:
            for c in both(rated[2], rated[1]):
                c.ratings += 1
                if rated[0] >= SATISFIED_AT:
                    c.satisfied += 1
    out = {g: c.figures() for g, c in totals.items()}
    series = {}
    for g, row in slots.items():
        series[g] = [{"start": since + i * INTERVAL, **c.figures()} for i, c in enumerate(row)]
    return out, series


def agent_figures(state_rows: Mapping[str, list[Mapping[str, Any]]], *, since: float,
                  now: float) -> dict[str, dict[str, Any]]:
    """Per agent from their state rows since ``since`` (the first row is where they were at
    ``since``): calls handled, time per state, talk and wrap-up time, occupancy."""
    out = {}
    for agent, rows in state_rows.items():
        per: dict[str, float] = defaultdict(float)
        handled = 0
        rows = sorted(rows, key=lambda r: r["at"])
        for i, r in enumerate(rows):
            start = max(r["at"], since)
            end = rows[i + 1]["at"] if i + 1 < len(rows) else now
            if end > start:
                per[r["state"]] += end - start
            if r["state"] == "talking" and r["at"] >= since and (
                    i == 0 or rows[i - 1]["state"] != "talking"):
                handled += 1
        available = sum(per[s] for s in HANDLING)
        busy = per["talking"] + per["wrapup"]
        out[agent] = {"calls_handled": handled, "talk_time": round(per["talking"], 1),
                      "wrapup_time": round(per["wrapup"], 1),
                      "occupancy": _ratio(busy, available),
                      "time_by_state": {k: round(v, 1) for k, v in per.items()}}
    return out


def wallboard(*, queues: Mapping[str, Mapping[str, Any]], agents: Mapping[str, Mapping[str, Any]],
              calls: Iterable[Mapping[str, Any]], state_rows: Mapping[str, list[Mapping[str, Any]]],
              now: float, tz: str, sl_seconds: Mapping[str, float],
              names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Everything the wall board shows: live (core) and today (records), per group and agent,
    and today's 15-minute intervals."""
    start = day_start(now, tz)
    since = start.timestamp()
    until = (start + timedelta(days=1)).timestamp()
    counted, series = group_figures(calls, since=since, until=until, sl_seconds=sl_seconds)
    per_agent = agent_figures(state_rows, since=since, now=now)
    groups = {}
    for name, q in queues.items():
        groups[name] = {
            "waiting": q.get("waiting", 0), "longest_wait": round(q.get("longest_wait", 0.0), 1),
            "agents": dict(q.get("agents", {})), "idle_no_phone": q.get("idle_no_phone", 0),
            "callbacks_pending": q.get("callbacks", 0),
            "service_level_seconds": q.get("service_level_seconds", sl_seconds.get(name)),
            **(counted.get(name) or _Counts().figures()),
        }
    agents_out = {}
    for agent_id, a in agents.items():
        figures = per_agent.get(agent_id) or {"calls_handled": 0, "talk_time": 0.0,
                                              "wrapup_time": 0.0, "occupancy": None,
                                              "time_by_state": {}}
        agents_out[agent_id] = {
            "name": (names or {}).get(agent_id, a.get("name", agent_id)),
            "state": a.get("state"), "reason": a.get("reason", ""),
            "pending": a.get("pending"), "reachable": a.get("reachable"),
            "phone_in_use": a.get("phone_in_use"), "in_state_for": a.get("in_state_for"), **figures}
    # the intervals up to now only
    last = int((now - since) // INTERVAL) + 1
    intervals = {g: rows[:last] for g, rows in series.items()}
    for g in groups:
        if g not in intervals:
            intervals[g] = [{"start": since + i * INTERVAL, **_Counts().figures()}
                            for i in range(last)]
    return {"now": now, "day_start": start.isoformat(), "timezone": tz,
            "interval_seconds": INTERVAL, "groups": groups, "agents": agents_out,
            "intervals": intervals, "definitions": DEFINITIONS}


# --- the waiting callers' numbers on the board ------------------------------------------------

MASK = "•"     # a bullet for each hidden character


def mask_number(number: Any, digits: int) -> str:
    """A caller's number as the wall board shows it: the last ``digits`` characters, the rest
    as bullets (at least half of it hidden); ``digits`` -1: the whole number, 0: none."""
    text = "" if number is None else str(number)
    if digits < 0 or not text:
        return text
    keep = min(digits, len(text) // 2)
    return MASK * (len(text) - keep) + (text[len(text) - keep:] if keep else "")


def _masked_calls(calls: Any, digits: int) -> Any:
    if isinstance(calls, list):
        return [{**c, "caller_number": mask_number(c.get("caller_number"), digits)}
                if isinstance(c, dict) else c for c in calls]
    if isinstance(calls, dict):
        return {k: ({**c, "caller_number": mask_number(c.get("caller_number"), digits)}
                    if isinstance(c, dict) else c) for k, c in calls.items()}
    return calls


def mask_board(msg: Mapping[str, Any], digits: int) -> dict[str, Any]:
    """A supervisors' board message (the whole board, or a delta) with the waiting callers'
    numbers masked (:func:`mask_number`); the message itself is left as it was (the hub
    hands the same one to every page)."""
    out = dict(msg)
    if digits < 0:
        return out
    if isinstance(out.get("queues"), dict):
        out["queues"] = {name: ({**q, "calls": _masked_calls(q["calls"], digits)}
                                if isinstance(q, dict) and "calls" in q else q)
                         for name, q in out["queues"].items()}
    if "calls" in out:
        out["calls"] = _masked_calls(out["calls"], digits)
    return out


# --- Prometheus text format -------------------------------------------------------------------

def _label(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def metrics_text(board: Mapping[str, Any], queues: Mapping[str, Mapping[str, Any]],
                 store: Mapping[str, Any] | None = None,
                 recordings: Mapping[str, Any] | None = None) -> str:
    """The wall board's figures in the Prometheus text format (version 0.0.4): live gauges,
    today's figures as gauges, and the core's counters since the server started; with
    ``store`` (the store writer's status), the records waiting to be written."""
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str,
               samples: Iterable[tuple[dict[str, str], float | None]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            if value is None:
                continue
            lab = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            lines.append(f"{name}{{{lab}}} {float(value):g}" if lab else f"{name} {float(value):g}")

    g = board["groups"]
    metric("acd_queue_waiting", "gauge", DEFINITIONS["waiting"],
           (({"group": n}, v["waiting"]) for n, v in g.items()))
    metric("acd_queue_longest_wait_seconds", "gauge", DEFINITIONS["longest_wait"],
           (({"group": n}, v["longest_wait"]) for n, v in g.items()))
    metric("acd_queue_callbacks_pending", "gauge", DEFINITIONS["callbacks_pending"],
           (({"group": n}, v["callbacks_pending"]) for n, v in g.items()))
    metric("acd_group_agents", "gauge", DEFINITIONS["agents"],
           (({"group": n, "state": s}, c) for n, v in g.items() for s, c in v["agents"].items()))
    for key, help_key in (("offered", "offered"), ("answered", "answered"),
                          ("abandoned", "abandoned")):
        metric(f"acd_today_{key}_calls", "gauge", DEFINITIONS[help_key],
               (({"group": n}, v[key]) for n, v in g.items()))
    for key in ("answer_rate", "abandon_rate", "service_level", "satisfaction", "verified_share"):
        metric(f"acd_today_{key}_ratio", "gauge", DEFINITIONS[key],
               (({"group": n}, v[key]) for n, v in g.items()))
    metric("acd_today_asa_seconds", "gauge", DEFINITIONS["asa"],
           (({"group": n}, v["asa"]) for n, v in g.items()))
    metric("acd_today_aht_seconds", "gauge", DEFINITIONS["aht"],
           (({"group": n}, v["aht"]) for n, v in g.items()))
    for key, help_text in (("offered", "Calls offered since the server started (core counter)."),
                           ("answered", "Calls answered since the server started (core counter)."),
                           ("abandoned", "Calls abandoned since the server started (core counter).")):
        metric(f"acd_{key}_calls_total", "counter", help_text,
               (({"group": n}, q.get(key, 0)) for n, q in queues.items()))
    a = board["agents"]
    states = sorted({v["state"] for v in a.values() if v["state"]})
    metric("acd_agent_state", "gauge", "1 for the agent's current state.",
           (({"agent": n, "state": s}, 1.0 if v["state"] == s else 0.0)
            for n, v in a.items() for s in states))
    metric("acd_agent_calls_handled_today", "gauge", DEFINITIONS["calls_handled"],
           (({"agent": n}, v["calls_handled"]) for n, v in a.items()))
    metric("acd_agent_talk_seconds_today", "gauge", DEFINITIONS["talk_time"],
           (({"agent": n}, v["talk_time"]) for n, v in a.items()))
    metric("acd_agent_wrapup_seconds_today", "gauge", DEFINITIONS["wrapup_time"],
           (({"agent": n}, v["wrapup_time"]) for n, v in a.items()))
    metric("acd_agent_occupancy_ratio", "gauge", DEFINITIONS["occupancy"],
           (({"agent": n}, v["occupancy"]) for n, v in a.items()))
    if store is not None:
        metric("acd_store_writes_pending", "gauge",
               "Records waiting to be written (the database is locked, full or slow).",
               [({}, store["pending"])])
        metric("acd_store_writes_oldest_seconds", "gauge",
               "Age of the oldest record waiting to be written.", [({}, store["oldest_seconds"])])
        metric("acd_store_writes_failing", "gauge",
               "1 while writes fail and are being retried.", [({}, 1.0 if store["failing"] else 0.0)])
        metric("acd_store_write_retries_total", "counter",
               "Writes tried again after a passing database error.", [({}, store["retries"])])
        metric("acd_store_write_failures_total", "counter",
               "Writes that failed for good (not a passing error): logged, not written.",
               [({}, store["failed"])])
    if recordings is not None:
        metric("acd_recordings_active", "gauge", "Conversations being recorded now.",
               [({}, recordings["active"])])
        metric("acd_recording_failures_total", "counter",
               "Recordings that failed since the server started (the calls went on).",
               [({}, recordings["failed"])])
        metric("acd_recordings_free_bytes", "gauge",
               "Free space where finished recordings are kept.",
               [({}, recordings["free_bytes"])])
    return "\n".join(lines) + "\n"
