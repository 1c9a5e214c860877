"""The core's JSON-ready views: functions of plain data (a group, an agent, a call, an
outbound call), no state of their own. :class:`~acd.core.Acd` answers its queries with them
(``snapshot_queues``, ``snapshot_agents``, ``agent_snapshot``, ``call_info``,
``control_info``).

The supervisors' board is sent as changes (:func:`board_state`, :func:`board_delta`): what
changed among the groups, the agents and the calls waiting since the last send, each entry
whole, ``None`` for one that is gone. Times that only grow with the clock (``in_state_for``,
``longest_wait``, ``waited``) are no change: the page counts them on from ``since``."""
from __future__ import annotations

from typing import Any

from acd.core.agent_states import AgentState
from acd.core.agents import Agent
from acd.core.calls import CALLBACK_STATES, LIVE_WAITING_STATES, Call, CallState
from acd.core.groups import Group
from acd.core.transfers import CALLER_HOLDS, ControlState, Transfer


def queue_view(g: Group, now: float) -> dict[str, Any]:
    """One skill group: calls waiting (in order), longest wait, agents by state, counters."""
    counts = g.call_counts
    live = [c.entered_at for c in g.calls.values() if c.state in LIVE_WAITING_STATES]
    s = g.stats
    calls = []
    for pos, key in enumerate(g.queue, start=1):
        c = g.calls[key[-1]]
        calls.append({"call_id": c.call_id, "position": pos, "state": c.state.value,
                      "priority": c.priority, "caller_number": c.caller_number,
                      "waited": now - c.entered_at, "agent_id": c.agent_id,
                      "callback": c.callback is not None,
                      "reserved_for": c.reserved_for})
    return {
        "open": g.open,
        "waiting": counts[CallState.WAITING],
        "ringing": counts[CallState.RINGING],
        "connected": counts[CallState.CONNECTED],
        "callbacks": sum(counts[st] for st in CALLBACK_STATES),
        "longest_wait": (now - min(live)) if live else 0.0,
        "calls": calls,
        "agents": {st.value: n for st, n in g.agent_counts.items() if n},
        "logged_in": g.logged_in,
        "available": len(g.idle),
        # idle, but their phone is unreachable or busy with another call: they get no calls
        "idle_no_phone": max(0, g.agent_counts.get(AgentState.IDLE, 0) - len(g.idle)),
        "offered": s.offered,
        "answered": s.answered,
        "answered_within_sl": s.answered_within_sl,
        "abandoned": s.abandoned,
        "overflowed": s.overflowed,
        "closed": s.closed,
        "no_agents": s.no_agents,
        "callbacks_requested": s.callbacks_requested,
        "callbacks_failed": s.callbacks_failed,
        "callbacks_expired": s.callbacks_expired,
        "service_level": (s.answered_within_sl / s.offered) if s.offered else None,
        "service_level_seconds": g.cfg.service_level_seconds,
        "average_handle_time": g.aht,
    }


def agent_view(a: Agent, now: float, *, reachable: bool, in_use: bool,
               unusable: str | None) -> dict[str, Any]:
    """One agent. ``reachable``, ``in_use``: their phone; ``unusable``: why their phone
    cannot take a call now (None if it can)."""
    if a.available:
        why = None
    elif a.state is AgentState.OFFLINE:
        why = "logged out"
    else:
        why = unusable or (a.state.value + (f": {a.reason}" if a.reason else ""))
    # An agent never logged in has been in no state since any moment: no time to show.
    never = a.state is AgentState.OFFLINE and a.since <= 0
    return {
        "state": a.state.value,
        "reason": a.reason,
        "since": None if never else a.since,
        "in_state_for": None if never else now - a.since,
        "endpoint": a.endpoint,
        "reachable": reachable,
        "phone_in_use": in_use,
        "available": a.available,
        "unavailable_reason": why,
        "pending": a.pending[0].value if a.pending else None,
        "pending_reason": a.pending[1] if a.pending else None,
        "call_id": a.call_id,
        "groups": dict(a.groups),
        "calls_answered": a.calls_answered,
        "idle_since": a.idle_since if a.state is AgentState.IDLE else None,
    }


def call_view(call: Call) -> dict[str, Any]:
    """One call, with its timeline."""
    cb = call.callback
    return {
        "call_id": call.call_id,
        "state": call.state.value,
        "group": call.group,
        "priority": call.priority,
        "caller_number": call.caller_number,
        "arrived_at": call.arrived_at,
        "entered_at": call.entered_at,
        "answered_at": call.answered_at,
        "ended_at": call.ended_at,
        "end_reason": call.end_reason.value if call.end_reason else None,
        "agent_id": call.agent_id,
        "key_trail": list(call.key_trail),
        "verification": call.verification,
        "levels": dict(call.levels),
        "reserved_for": call.reserved_for,
        "callback": None if cb is None else {
            "number": cb.number, "requested_at": cb.requested_at,
            "expires_at": cb.expires_at, "attempts": cb.attempts,
            "max_attempts": cb.max_attempts},
        "timeline": [{"at": r.at, "kind": r.kind.value, "group": r.group,
                      "agent_id": r.agent_id, "detail": r.detail,
                      "end_reason": r.end_reason.value if r.end_reason else None}
                     for r in call.timeline],
    }


def control_view(call: Call, state: ControlState, invited: bool,
                 transfer: Transfer | None) -> dict[str, Any]:
    """A connected call's control: ``state``, invited to rate, the transfer under way."""
    t = transfer
    return {"call_id": call.call_id, "outbound": False, "state": state.value,
            "held": state in CALLER_HOLDS, "owner": call.agent_id, "invited": invited,
            "transfer": None if t is None else {
                "kind": t.kind, "target_agent": t.target_agent,
                "target_group": t.target_group, "started_at": t.started_at,
                "answered_at": t.answered_at, "ownerless": t.ownerless}}


#: Fields that change with the clock alone: no reason to send an entry again.
CLOCK_FIELDS = frozenset({"in_state_for", "longest_wait", "waited"})
#: The kinds of entries of the board, each keyed by its id (group name, agent id, call id).
BOARD_KINDS = ("queues", "agents", "calls")


def board_state(snapshot: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """The board of a snapshot (``{"queues": ..., "agents": ...}``, as ``snapshot_queues`` and
    ``snapshot_agents`` make them) by kind and id: the groups without their calls, and the
    calls waiting in each group's queue by call id (with their ``group``)."""
    queues: dict[str, dict[str, Any]] = {}
    calls: dict[str, dict[str, Any]] = {}
    for name, q in snapshot.get("queues", {}).items():
        queues[name] = {k: v for k, v in q.items() if k != "calls"}
        for c in q.get("calls", ()):
            calls[c["call_id"]] = {**c, "group": name}
    return {"queues": queues, "agents": dict(snapshot.get("agents", {})), "calls": calls}


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal but for the fields that change with the clock alone."""
    if a.keys() != b.keys():
        return False
    return all(a[k] == b[k] for k in a if k not in CLOCK_FIELDS)


def board_delta(before: dict[str, dict[str, dict[str, Any]]] | None,
                after: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """What changed from ``before`` to ``after`` (both :func:`board_state`): per kind, each
    changed or new entry whole, ``None`` for one that is gone; a kind with no change is left
    out (an empty dict: nothing changed). ``before`` None: everything."""
    out: dict[str, dict[str, Any]] = {}
    for kind in BOARD_KINDS:
        old, new = (before or {}).get(kind, {}), after.get(kind, {})
        changed: dict[str, Any] = {k: v for k, v in new.items()
                                   if k not in old or not _same(old[k], v)}
        changed.update((k, None) for k in old.keys() - new.keys())
        if changed:
            out[kind] = changed
    return out


__all__ = ["queue_view", "agent_view", "call_view", "control_view", "board_state",
           "board_delta", "CLOCK_FIELDS"]
