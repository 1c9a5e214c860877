"""Restore planning, pure: what Asterisk's channels and the stored rows say to rebuild.

After our server restarts, the first AMI login reads Asterisk's channels (with our variables),
the phones and the store (:mod:`acd.runtime.restore`); :func:`plan` turns that reading into a
:class:`Plan`, and the restore applies it to the core, the ledgers and Asterisk. Nothing here
reads or writes anything: each branch has a table test (``tests/unit/test_restore_plan.py``).

What is found, and what becomes of it:

==========================  =================================================================
found                       planned
==========================  =================================================================
connected                   a caller (or a callback customer) bridged with an agent's leg:
                            the conversation goes on (``restore_connected_call``)
outbound                    an agent's outbound leg bridged with its customer
answered while away         an agent's leg up in ``acd-agent``, alone, its caller still in
                            the queue: the conversation goes on, bridged once resumed
held, owner there           a caller alone in ``acd-hold``: held by its agent (or the agent
                            consults another)
held, owner gone            another agent's leg of the call waiting (a consulted agent) takes
                            the caller (resumed and bridged)
held, nobody                back to the queue at the front (``RequeueCaller``)
waiting                     callers in the queue, in their original order (entry time; ties:
                            channel order)
stored callbacks            callbacks waiting for their turn live only in the store
ended while down            open records of calls no longer in Asterisk get their end reason
orphan legs                 legs nobody will bridge any more: hung up
==========================  =================================================================
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from acd.ami.events import CHANNEL_STATE_UP
from acd.asterisk import dialplan as dp
from acd.core.numbers import is_number
from acd.core.transfers import TRANSFER_PRIORITY_BOOST
from acd.runtime.ami_in import as_int

ENDED_WHILE_DOWN = "ended_while_server_down"

Chan = Mapping[str, Any]          # a CoreShowChannels entry
Vars = Mapping[str, str]          # our variables on that channel
Found = tuple[Chan, Vars]


@dataclass(frozen=True)
class Reading:
    """What the restore read: Asterisk's channels and phones, and the store's rows."""
    started: float                           # when the reading began (our clock)
    channels: Sequence[Chan]
    found: Sequence[Found]                   # our channels, with their variables
    reachable: Mapping[str, bool]            # agent endpoint -> reachable
    states: Mapping[str, Mapping[str, Any]]  # agent -> newest stored state row
    pending: Mapping[str, Mapping[str, Any]]  # agent -> stored pending state
    open_calls: Mapping[str, Mapping[str, Any]]   # uniqueid -> stored open call
    calls: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # other stored calls
    answered: Mapping[str, int] = field(default_factory=dict)   # agent -> answered since login


@dataclass(frozen=True)
class KeepLeg:
    uid: str
    channel: str
    kind: str                # "agent" or "customer"
    agent_id: str


@dataclass(frozen=True)
class KeepCaller:
    call_id: str
    channel: str
    caller_number: str
    caller_name: str
    bridged: bool = False


@dataclass(frozen=True)
class AgentRestore:
    agent_id: str
    endpoint: str
    state: str
    since: float
    reason: str
    kw: Mapping[str, Any]


@dataclass(frozen=True)
class CallRestore:
    """One call to restore. ``kind``: connected, outbound, answered, held, requeued, waiting,
    callback. ``steps``: core restore methods and their arguments, in order (``now`` is
    added last among the positional ones by the restore); ``agents``: agents restored idle
    first if they have no stored state."""
    kind: str
    call_id: str
    steps: tuple[tuple[str, tuple, Mapping[str, Any]], ...]
    agents: tuple[str, ...] = ()
    legs: tuple[KeepLeg, ...] = ()
    caller: KeepCaller | None = None
    group: str = ""
    resume: str | None = None       # join the caller with this agent afterwards
    priority: int = 0               # requeued: the priority in the queue
    unseen_answer: bool = False     # answered while away, and not on record


@dataclass
class Plan:
    agents: list[AgentRestore] = field(default_factory=list)
    calls: list[CallRestore] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)
    orphans: list[tuple[str, str, str | None, str]] = field(default_factory=list)
    bridges: list[tuple[str, str]] = field(default_factory=list)
    pending: dict[str, tuple[str | None, str]] = field(default_factory=dict)

    def of(self, kind: str) -> list[CallRestore]:
        return [c for c in self.calls if c.kind == kind]


# ---- reading stored rows

def _ts(text: str | None) -> float | None:
    return datetime.fromisoformat(text).timestamp() if text else None


def _f(x: Any) -> float | None:
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def event_time(stored: Mapping[str, Any], kind: str) -> float | None:
    """When the stored call's newest ``kind`` event happened (None: never)."""
    at = None
    for e in stored.get("events", []):
        if e["kind"] == kind and e.get("at"):
            at = _ts(e["at"])
    return at


def callback_number(stored: Mapping[str, Any]) -> str | None:
    """The number of the stored call's callback request (None: it is no callback)."""
    number = None
    for e in stored.get("events", []):
        if e["kind"] == "callback_requested":
            number = str((e.get("detail") or {}).get("detail") or "")
    return number or None


def _key_trail(stored: Mapping[str, Any]) -> list[str]:
    return [k["keys"] for k in stored.get("key_trail", [])]


def _call_kw(caller_c: Chan, caller_v: Vars, stored: Mapping[str, Any]) -> dict[str, Any]:
    """The core's restore arguments of a call from its caller's channel and its record."""
    number = str(stored.get("caller_number") or caller_c.get("CallerIDNum") or "")
    kw: dict[str, Any] = {"caller_number": number if is_number(number) else "",
                          "priority": as_int(caller_v.get(dp.PRIORITY), 0),
                          "key_trail": _key_trail(stored)}
    if stored.get("answered_at"):
        kw["answered_at"] = _ts(stored["answered_at"])
    if stored.get("arrived_at"):
        kw["arrived_at"] = _ts(stored["arrived_at"])
    entered = _f(caller_v.get(dp.ENTERED))
    if entered is not None:
        kw["entered_at"] = entered
    return kw


# ---- what the channels are

def is_leg(c: Chan, v: Vars) -> bool:
    """An agent's leg of ours."""
    return (c.get("Context") in (dp.AGENT_CONTEXT, dp.HOLD_CONTEXT) and bool(v.get(dp.AGENT))
            and bool(v.get(dp.CALL)))


def is_caller(c: Chan, v: Vars) -> bool:
    return c.get("Context") in (dp.QUEUE_CONTEXT, dp.HOLD_CONTEXT) and not v.get(dp.AGENT)


def _uid(c: Chan) -> str:
    return str(c["Uniqueid"])


def _leg(c: Chan, agent_id: str, kind: str = "agent") -> KeepLeg:
    return KeepLeg(_uid(c), str(c["Channel"]), kind, agent_id)


def _caller(c: Chan, number: str, bridged: bool = False) -> KeepCaller:
    return KeepCaller(_uid(c), str(c["Channel"]), number, str(c.get("CallerIDName") or ""),
                      bridged)


class _Planner:
    def __init__(self, r: Reading, now: float, endpoints: Mapping[str, str],
                 wrapup_seconds: Callable[[str | None], float]) -> None:
        self.r, self.now, self.endpoints = r, now, endpoints
        self.wrapup_seconds = wrapup_seconds
        self.plan = Plan()
        self.kept: set[str] = set()

    def stored(self, call_id: str) -> Mapping[str, Any]:
        return self.r.open_calls.get(call_id) or self.r.calls.get(call_id) or {}

    def run(self) -> Plan:
        r = self.r
        self.plan.bridges = [(_uid(c), str(c["BridgeId"])) for c, _ in r.found
                             if c.get("BridgeId")]
        connected, consults = self.bridged()
        held = self.held(connected, consults)
        talking = {v[dp.AGENT] for (_, v, _, _) in connected.values()}
        for _, _, legs in held.values():
            talking |= {lv[dp.AGENT] for _, lv in legs}
        self.agents(talking)
        for call_id, found in connected.items():
            self.connected(call_id, *found)
        self.answered_while_away()
        for call_id, found in held.items():
            self.held_call(call_id, *found, consults.get(call_id))
        self.waiting()
        self.callbacks(connected)
        self.ended(connected)
        self.orphans(connected, consults)
        return self.plan

    def bridged(self) -> tuple[dict[str, tuple[Chan, Vars, Chan, Vars]], dict[str, list[Found]]]:
        """Connected calls: a caller (or customer) bridged with an agent's leg. Consults:
        two agents' legs of one call bridged together."""
        bridges: dict[str, list[Found]] = {}
        for c, v in self.r.found:
            if c.get("BridgeId"):
                bridges.setdefault(str(c["BridgeId"]), []).append((c, v))
        connected: dict[str, tuple[Chan, Vars, Chan, Vars]] = {}
        consults: dict[str, list[Found]] = {}
        for members in bridges.values():
            legs = [(c, v) for c, v in members if is_leg(c, v)]
            others = [(c, v) for c, v in members
                      if c.get("Context") == dp.CUSTOMER_CONTEXT or is_caller(c, v)]
            if len(legs) == 1 and others:
                connected[legs[0][1][dp.CALL]] = (*legs[0], *others[0])
            elif len(legs) == 2 and not others and legs[0][1][dp.CALL] == legs[1][1][dp.CALL]:
                consults[legs[0][1][dp.CALL]] = legs
        return connected, consults

    def held(self, connected: Mapping[str, Any],
             consults: Mapping[str, Any]) -> dict[str, tuple[Chan, Vars, list[Found]]]:
        """Held callers: alone in acd-hold with music; their agent's leg waits (or
        consults)."""
        held: dict[str, tuple[Chan, Vars, list[Found]]] = {}
        for c, v in self.r.found:
            uid = _uid(c)
            if (c.get("Context") == dp.HOLD_CONTEXT and is_caller(c, v) and not c.get("BridgeId")
                    and uid not in connected):
                legs = [(lc, lv) for lc, lv in self.r.found if is_leg(lc, lv)
                        and lv[dp.CALL] == uid and (not lc.get("BridgeId") or uid in consults)]
                held[uid] = (c, v, legs)
        return held

    def agents(self, talking: set[str]) -> None:
        """Agents: their newest stored state (a talking one: the state to take after)."""
        for agent_id, row in self.r.states.items():
            if agent_id not in self.endpoints or row["state"] == "offline":
                continue
            since = row["at"].timestamp()
            pend = self.r.pending.get(agent_id) or {}
            pend_state, pend_reason = pend.get("state"), pend.get("reason", "")
            self.plan.pending[agent_id] = (pend_state, pend_reason)
            state, reason = row["state"], row["reason"]
            kw: dict[str, Any] = {"reachable": self.r.reachable.get(self.endpoints[agent_id]),
                                  "calls_answered": self.r.answered.get(agent_id, 0)}
            if agent_id in talking or state in ("talking", "ringing"):
                state, reason = (pend_state, pend_reason) if pend_state else ("idle", "")
            elif state == "wrapup":
                group = self.stored(row.get("call_uniqueid") or "").get("skill_group")
                kw["wrapup_until"] = since + self.wrapup_seconds(group)
                if pend_state:
                    kw["pending"], kw["pending_reason"] = pend_state, pend_reason
            self.plan.agents.append(AgentRestore(agent_id, self.endpoints[agent_id], state,
                                                 since, reason, kw))

    def connected(self, call_id: str, agent_c: Chan, agent_v: Vars, other_c: Chan,
                  other_v: Vars) -> None:
        agent_id = agent_v[dp.AGENT]
        stored = self.stored(call_id)
        self.kept.add(call_id)
        if agent_v.get(dp.ROLE) == "outbound":
            step = ("restore_outbound", (call_id, agent_id,
                                         str(stored.get("caller_number") or "")),
                    {"answered_at": _ts(stored.get("answered_at"))})
            self.plan.calls.append(CallRestore(
                "outbound", call_id, (step,), agents=(agent_id,),
                legs=(_leg(agent_c, agent_id), _leg(other_c, agent_id, "customer"))))
            return
        is_callback = other_c.get("Context") == dp.CUSTOMER_CONTEXT
        group = other_v.get(dp.GROUP) or stored.get("skill_group") or ""
        kw = _call_kw(other_c, other_v, stored)
        if is_callback:
            kw["callback_number"] = callback_number(stored) or kw["caller_number"]
        steps: list[tuple[str, tuple, Mapping[str, Any]]] = [
            ("restore_connected_call", (call_id, agent_id, group), kw)]
        if other_v.get(dp.SURVEY):
            steps.append(("restore_control", (call_id,), {"invited": True}))
        legs = (_leg(agent_c, agent_id),)
        caller = None
        if is_callback:
            legs += (_leg(other_c, agent_id, "customer"),)
        else:
            caller = _caller(other_c, kw["caller_number"], bridged=True)
        self.plan.calls.append(CallRestore("connected", call_id, tuple(steps), agents=(agent_id,),
                                           legs=legs, caller=caller, group=group))

    def answered_while_away(self) -> None:
        """Rings answered while we were away: the agent's leg up in acd-agent, alone, its
        caller still in the queue."""
        in_queue = {_uid(c): (c, v) for c, v in self.r.found
                    if c.get("Context") == dp.QUEUE_CONTEXT and not c.get("BridgeId")
                    and not v.get(dp.BRIDGED) and v.get(dp.GROUP)}
        for c, v in self.r.found:
            call_id = v.get(dp.CALL, "")
            if not (is_leg(c, v) and c.get("Context") == dp.AGENT_CONTEXT
                    and not c.get("BridgeId") and as_int(c.get("ChannelState")) == CHANNEL_STATE_UP
                    and call_id in in_queue and call_id not in self.kept
                    and v.get(dp.ROLE) != "outbound"):
                continue
            agent_id = v[dp.AGENT]
            caller_c, caller_v = in_queue[call_id]
            kw = _call_kw(caller_c, caller_v, self.r.open_calls.get(call_id) or {})
            group = caller_v[dp.GROUP]
            self.kept.add(call_id)
            self.plan.calls.append(CallRestore(
                "answered", call_id, (("restore_connected_call", (call_id, agent_id, group), kw),),
                agents=(agent_id,), legs=(_leg(c, agent_id),),
                caller=_caller(caller_c, kw["caller_number"]), group=group,
                resume=agent_id, unseen_answer="answered_at" not in kw))

    def held_call(self, call_id: str, c: Chan, v: Vars, legs: list[Found],
                  consult: list[Found] | None) -> None:
        stored = self.stored(call_id)
        group = v.get(dp.GROUP) or stored.get("skill_group") or ""
        by_agent = {lv[dp.AGENT]: (lc, lv) for lc, lv in legs}
        owner = v.get(dp.OWNER) or ""
        target = resume = None
        if consult is not None and owner in by_agent:
            target = next(lv[dp.AGENT] for _, lv in consult if lv[dp.AGENT] != owner)
        elif owner not in by_agent:
            # The agent hung up while we were away: another agent's leg of the call waiting
            # in silence (a consulted agent) takes the caller; else the queue.
            owner = next(iter(by_agent), "")
            resume = owner or None
        kw = _call_kw(c, v, stored)
        caller = _caller(c, kw["caller_number"])
        self.kept.add(call_id)
        if not owner:
            prio = kw["priority"] + TRANSFER_PRIORITY_BOOST
            step = ("restore_waiting_call", (call_id, kw["caller_number"], group, prio,
                                             self.now),
                    {"key_trail": kw["key_trail"], "arrived_at": kw.get("arrived_at")})
            self.plan.calls.append(CallRestore("requeued", call_id, (step,), caller=caller,
                                               group=group, priority=prio))
            return
        agents = (owner, target) if target else (owner,)
        keep: list[KeepLeg] = []
        for agent_id in agents:
            lc = (by_agent.get(agent_id) or next(
                (x for x in (consult or []) if x[1][dp.AGENT] == agent_id), (None, None)))[0]
            if lc is not None:
                keep.append(_leg(lc, agent_id))
        control = {"held": resume is None, "held_since": _f(v.get(dp.HELD_AT)),
                   "invited": bool(v.get(dp.SURVEY)), "consult_agent": target,
                   "consult_since": event_time(stored, "consult_answered")}
        steps = (("restore_connected_call", (call_id, owner, group), kw),
                 ("restore_control", (call_id,), control))
        self.plan.calls.append(CallRestore("held", call_id, steps, agents=agents,
                                           legs=tuple(keep), caller=caller, group=group,
                                           resume=resume))

    def waiting(self) -> None:
        """Waiting callers, in their original order (entry time; ties: channel order)."""
        waiting = []
        for c, v in self.r.found:
            uid = _uid(c)
            entered = _f(v.get(dp.ENTERED))
            if (c.get("Context") != dp.QUEUE_CONTEXT or c.get("BridgeId") or v.get(dp.BRIDGED)
                    or uid in self.kept or entered is None or not v.get(dp.GROUP)):
                continue
            waiting.append((entered, uid, c, v))
        waiting.sort(key=lambda w: (w[0], w[1]))
        for entered, uid, c, v in waiting:
            stored = self.r.open_calls.get(uid) or {}
            number = str(c.get("CallerIDNum") or "")
            number = number if is_number(number) else ""
            kw: dict[str, Any] = {"key_trail": _key_trail(stored)}
            if stored.get("arrived_at"):
                kw["arrived_at"] = _ts(stored["arrived_at"])
            step = ("restore_waiting_call", (uid, number, v[dp.GROUP],
                                             as_int(v.get(dp.PRIORITY), 0), entered), kw)
            self.plan.calls.append(CallRestore("waiting", uid, (step,),
                                               caller=_caller(c, number), group=v[dp.GROUP]))

    def callbacks(self, connected: Mapping[str, Any]) -> None:
        """Callbacks waiting for their turn live only in the store (the caller hung up)."""
        present = {str(c.get("Uniqueid")) for c in self.r.channels}
        for call_id, stored in self.r.open_calls.items():
            number = callback_number(stored)
            if not number or call_id in present or call_id in connected:
                continue
            queued = [e for e in stored["events"] if e["kind"] == "queued"]
            requested = [e for e in stored["events"] if e["kind"] == "callback_requested"]
            if not queued or not requested:
                continue
            detail = queued[-1].get("detail") or {}
            prio = as_int(str(detail.get("detail", "")).removeprefix("priority "), 0)
            step = ("restore_waiting_call", (
                call_id, stored.get("caller_number") or "",
                detail.get("group") or stored.get("skill_group") or "", prio,
                _ts(queued[-1]["at"])), {
                "arrived_at": _ts(stored["arrived_at"]), "key_trail": _key_trail(stored),
                "callback_number": number,
                "callback_requested_at": _ts(requested[-1]["at"]),
                "callback_attempts": sum(1 for e in stored["events"] if e["kind"] == "dialing")})
            self.plan.calls.append(CallRestore("callback", call_id, (step,)))

    def ended(self, connected: Mapping[str, Any]) -> None:
        """Calls that ended while we were away get their one end reason now."""
        present = {str(c.get("Uniqueid")) for c in self.r.channels}
        for call_id, stored in self.r.open_calls.items():
            if (call_id in present or call_id in connected or call_id in self.kept
                    or callback_number(stored)):
                continue
            if (_ts(stored["arrived_at"]) or 0) > self.r.started - 1:
                continue     # arrived while we were reading: not ours to close
            self.plan.ended.append(call_id)

    def orphans(self, connected: Mapping[str, Any], consults: Mapping[str, Any]) -> None:
        """Legs nobody will bridge any more (a ring or a dial under way when we stopped)."""
        kept = {leg.uid for call in self.plan.calls for leg in call.legs}
        for c, v in self.r.found:
            if (c.get("Context") != dp.QUEUE_CONTEXT and v.get(dp.CALL)
                    and v[dp.CALL] not in connected and _uid(c) not in kept
                    and (not c.get("BridgeId") or v[dp.CALL] in consults)):
                self.plan.orphans.append((_uid(c), v[dp.CALL], v.get(dp.AGENT),
                                          str(c["Channel"])))


def plan(reading: Reading, now: float, endpoints: Mapping[str, str],
         wrapup_seconds: Callable[[str | None], float]) -> Plan:
    """The restore plan of a reading (see the module docstring). ``endpoints``: agent ->
    endpoint of the agents configured; ``wrapup_seconds``: a group's wrap-up time."""
    return _Planner(reading, now, endpoints, wrapup_seconds).run()


__all__ = ["plan", "Plan", "Reading", "CallRestore", "AgentRestore", "KeepLeg", "KeepCaller",
           "ENDED_WHILE_DOWN", "callback_number", "event_time", "is_leg", "is_caller"]
