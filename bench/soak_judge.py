"""The soak's verdict, pure (no I/O): how one call ended as the load generator lived it, what
is wrong with its record in the database or with an agent's state at the end, and the growth
of our server's memory. :mod:`bench.soak` runs the soak and judges with these.
"""
from __future__ import annotations

from typing import Any, Iterable

from acd.tools import load, load_calls

#: End reasons our server may record for each way a call ended (as the load generator saw it).
EXPECTED_END = {
    "completed": {"agent_hangup"},
    "caller_hung_up": {"abandoned", "caller_hangup"},
    "no_agent_in_time": {"abandoned"},
    "both_hung_up": {"agent_hangup", "caller_hangup"},
}
#: Outcomes that are not losses.
NOT_LOST = ("completed", "caller_hung_up", "both_hung_up")
#: A caller and an agent hanging up this close together (seconds): either may be the end.
TOGETHER = 1.0
#: Timeline kinds that may not come after a call's ``ended``.
BEFORE_END_ONLY = {"arrived", "queued", "offered", "ringing", "answered"}


def call_outcome(rec: load_calls.LoadCall, phone_calls: list[load.PhoneCall],
                 cut_at: float | None, gave_up: bool) -> str:
    """How one call ended, from the load generator's side.

    ``phone_calls``: the agents' phones' calls with this caller, by time of answer;
    ``cut_at``: when the caller hung up on their own (our clock), if they did; ``gave_up``:
    the caller hung up after waiting the longest a caller waits (nobody answered).
    """
    if rec.outcome == "originate_failed":
        return "refused_by_asterisk"
    if rec.call_uid is None:
        return "no_incoming_leg"
    if rec.ended_at is None:
        return "unfinished"
    if gave_up and rec.bridged_at is None:
        return "no_agent_in_time"
    last = phone_calls[-1] if phone_calls else None
    phone_end = (last.hangup_sent_at if last is not None and not last.closed_early
                 and rec.bridged_at is not None else None)
    ends = [(t, who) for t, who in ((phone_end, "completed"), (cut_at, "caller_hung_up"))
            if t is not None and t <= rec.ended_at + 1.0]
    if len(ends) == 2 and abs(ends[0][0] - ends[1][0]) < TOGETHER:
        return "both_hung_up"
    if ends:
        return min(ends)[1]
    if rec.queued_at is None:
        return "not_queued"
    return "dropped"


def record_problems(stored: dict[str, Any] | None, outcome: str,
                    bridged_agents: Iterable[str]) -> list[str]:
    """What is wrong with one call's record in the database, given how the load generator saw
    the call end and which agents it saw bridged with the caller. Empty: the record is whole."""
    if stored is None:
        return ["no record"]
    out: list[str] = []
    reason = stored.get("end_reason")
    kinds = [e["kind"] for e in stored.get("events", [])]
    if not reason:
        out.append("no end reason")
    elif outcome in EXPECTED_END and reason not in EXPECTED_END[outcome]:
        out.append(f"end reason {reason}, the caller's side saw {outcome}")
    if not kinds or kinds[0] != "arrived":
        out.append(f"timeline does not start with arrived: {kinds[:3]}")
    ended = [i for i, k in enumerate(kinds) if k == "ended"]
    if len(ended) != 1:
        out.append(f"{len(ended)} ended events")
    else:
        end_ev = stored["events"][ended[0]]
        if (end_ev.get("detail") or {}).get("reason") != reason:
            out.append(f"ended event says {(end_ev.get('detail') or {}).get('reason')}, "
                       f"the call {reason}")
        late = [k for k in kinds[ended[0] + 1:] if k in BEFORE_END_ONLY]
        if late:
            out.append(f"after ended: {late}")
        if "queued" not in kinds[:ended[0]]:
            out.append("never queued")
    agents = set(bridged_agents)
    if agents and "answered" not in kinds:
        out.append("talked with an agent, no answered event")
    legs = {leg["agent_id"] for leg in stored.get("legs", [])}
    if legs != agents:
        out.append(f"legs {sorted(legs)}, the caller talked with {sorted(agents)}")
    return out


def agent_problems(agent_id: str, view: dict[str, Any], channels: int,
                   registered: bool, wanted: str = "idle") -> list[str]:
    """What is wrong with an agent's state in our server at the end, against the truth:
    ``channels`` live in Asterisk towards the agent's phone, and whether it is registered."""
    out: list[str] = []
    state = view.get("state")
    if state in ("ringing", "talking") and channels == 0:
        out.append(f"{state} with no channel in Asterisk")
    if state not in ("ringing", "talking") and channels:
        out.append(f"{state} with {channels} channel(s) in Asterisk")
    if state != wanted and not (state in ("ringing", "talking") and channels):
        out.append(f"{state}, should be {wanted}")
    if view.get("pending"):
        out.append(f"pending {view.get('pending')} left over")
    if bool(view.get("reachable")) != registered:
        out.append(f"reachable {view.get('reachable')}, phone "
                   f"{'registered' if registered else 'not registered'}")
    return out


def memory_growth(samples: list[tuple[float, int]], warmup: float = 1 / 3) -> dict[str, Any]:
    """VmRSS samples (seconds since the start, bytes): first, last, peak, and the slope of a
    least-squares line over the samples after the first ``warmup`` of the run (KiB a minute)."""
    if not samples:
        return {"samples": 0, "slope_kib_per_min": None}
    t_end = samples[-1][0]
    tail = [(t, v) for t, v in samples if t >= samples[0][0] + warmup * (t_end - samples[0][0])]
    slope = None
    if len(tail) >= 3:
        n = len(tail)
        mt = sum(t for t, _ in tail) / n
        mv = sum(v for _, v in tail) / n
        var = sum((t - mt) ** 2 for t, _ in tail)
        if var > 0:
            slope = sum((t - mt) * (v - mv) for t, v in tail) / var * 60 / 1024
    return {"samples": len(samples), "fit_samples": len(tail),
            "first_kib": samples[0][1] // 1024, "last_kib": samples[-1][1] // 1024,
            "peak_kib": max(v for _, v in samples) // 1024,
            "warmup_end_kib": tail[0][1] // 1024 if tail else None,
            "slope_kib_per_min": None if slope is None else round(slope, 1)}


def memory_met(growth: dict[str, Any], minutes: float, limit_kib_per_min: float) -> bool | None:
    """No growth after the warm-up: the fitted slope is at most ``limit_kib_per_min``. None
    when the run was too short to tell (under 5 minutes or fewer than 10 samples)."""
    slope = growth.get("slope_kib_per_min")
    if slope is None or minutes < 5 or growth.get("fit_samples", 0) < 10:
        return None
    return slope <= limit_kib_per_min
