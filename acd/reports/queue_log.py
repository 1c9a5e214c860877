"""Our calls and agent states as Asterisk's ``queue_log`` lines. Plain Python, no I/O.

Teams with queue_log tools can read our history with them. A line is what Asterisk's
``ast_queue_log()`` (main/logger.c) writes to the file::

    epoch|callid|queuename|agent|event|data1|data2|...

``epoch`` whole UNIX seconds; ``callid`` the caller channel's uniqueid (``NONE`` for an agent's
lines, as app_queue writes for PAUSE); ``queuename`` the skill group (``NONE`` when none);
``agent`` the member (``NONE`` for the caller's own events). The events and their data, as
app_queue.c (Asterisk 22) writes them and the "Queue Logs" page of Asterisk's documentation
describes them; durations are whole seconds unless said:

=================  ==========================================================================
ENTERQUEUE         url (empty) | caller id number | origposition          (a ``queued`` event)
RINGNOANSWER       ring time in milliseconds                            (``no_answer``)
RINGCANCELED       ring time in milliseconds                            (``ring_cancelled``)
CONNECT            holdtime (wait in the queue) | bridged channel uniqueid (empty: we do not
                   keep the agent channel's) | ringtime                 (``answered``)
COMPLETECALLER     holdtime | calltime | origposition   the caller hung up (leg ``caller_hangup``)
COMPLETEAGENT      holdtime | calltime | origposition   the agent ended their part (leg
                   ``agent_hangup``, ``survey``: sent to the survey, ``phone_lost``: the agent's
                   phone died and the caller went back to the queue)
TRANSFER           extension | context | holdtime | calltime | origposition   (leg
                   ``transferred``): extension is the target agent's id (context ``agent``)
                   or the target group (context ``group``)
ABANDON            position | origposition | waittime   the caller hung up before an answer
EXITWITHTIMEOUT    position | origposition | waittime   the call left the queue unanswered,
                   sent on by us: maximum wait, queue full, overload or closed (``sent``), an
                   overflow to another group, or a callback that expired or failed
EXITEMPTY          position | origposition | waittime   sent on: no agent logged in
ADDMEMBER          (empty)                              an agent logs in
REMOVEMEMBER       (empty)                              an agent logs out
PAUSE              reason                               to break, meeting or busy (the reason,
                                                        or the state's name when none)
UNPAUSE            (empty)                              back from one of those
=================  ==========================================================================

Choices:

* **Agent names.** app_queue writes the member's name (``membername``) in the agent field of
  its call and pause lines, and the interface in ADDMEMBER/REMOVEMEMBER unless
  ``log_membername_as_agent`` is on. We write our agent id everywhere (``alice``, not
  ``Agent/alice`` nor ``PJSIP/alice``), as app_queue does with ``log_membername_as_agent =
  yes`` and each member named by its agent id: the same agent is one name on every line.
* **Positions.** We keep no queue positions: position and origposition are always ``1``.
* **Transfers.** Asterisk 12 and later write BLINDTRANSFER / ATTENDEDTRANSFER; we write the
  documented TRANSFER, whose fields are BLINDTRANSFER's. As with Asterisk, a transfer ends the
  call's story in that queue: the target agent's talk is not logged, and a transfer to a group
  starts a new one there (ENTERQUEUE ... in that group).
* **Lost calls** (our server or Asterisk lost the channels) get no closing line, as a
  queue_log that Asterisk stopped writing has none.
* **Untrusted text.** Callers control their caller id; a ``|`` or a line break in any field
  would split or add lines. Every field has each ``|`` and each control or line-separator
  character (category Cc, Zl, Zp: CR, LF, NEL, U+2028, tab...) replaced by ``_``, as app_queue
  replaces ``|`` in the caller id name.
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

NONE = "NONE"
POSITION = 1
PAUSE_STATES = ("break", "meeting", "busy")

#: A leg's end reason -> the event that ends the call's story in its queue.
LEG_END = {"caller_hangup": "COMPLETECALLER", "agent_hangup": "COMPLETEAGENT",
           "survey": "COMPLETEAGENT", "phone_lost": "COMPLETEAGENT",
           "transferred": "TRANSFER"}
#: Why a waiting call was sent on (``sent`` event) or ended -> its exit event.
EXIT = {"max_wait": "EXITWITHTIMEOUT", "queue_full": "EXITWITHTIMEOUT",
        "overload": "EXITWITHTIMEOUT", "closed": "EXITWITHTIMEOUT",
        "overflow": "EXITWITHTIMEOUT", "callback_expired": "EXITWITHTIMEOUT",
        "callback_failed": "EXITWITHTIMEOUT", "no_agents": "EXITEMPTY",
        "abandoned": "ABANDON", "caller_hangup": "ABANDON"}
#: Leg roles that took the caller from a queue (a transfer or consult target's leg does not).
_QUEUE_ROLES = ("answer", "callback")
_SENT_REASON = re.compile(r"\((\w+)\)\s*$")


def field(value: Any) -> str:
    """``value`` as one safe field: ``|`` and control or line-break characters become ``_``."""
    text = "" if value is None else str(value)
    return "".join("_" if ch == "|" or unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch
                   for ch in text)


def _time(value: Any) -> float:
    """UNIX seconds from an ISO 8601 string (UTC when it names no offset), a datetime or a
    number."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp()
    raise ValueError(f"a time must be ISO 8601 text, a datetime or UNIX seconds, not {value!r}")


def _epoch(at: float) -> int:
    return math.floor(at)


def _secs(since: float, until: float) -> int:
    """Whole seconds between two times, as Asterisk counts them (a difference of epochs)."""
    return max(0, _epoch(until) - _epoch(since))


def _ms(since: float | None, until: float) -> int:
    return 0 if since is None else max(0, round((until - since) * 1000))


def line(at: float, callid: Any, queue: Any, agent: Any, event: str, *data: Any) -> str:
    """One queue_log line (no line end)."""
    parts = [str(_epoch(at)), field(callid) or NONE, field(queue) or NONE,
             field(agent) or NONE, event]
    return "|".join(parts + [field(d) for d in data])


class _Offer:
    """One entry into a queue and what became of it."""

    __slots__ = ("group", "queued_at", "rings", "agent", "answered_at", "closed")

    def __init__(self, group: str, queued_at: float) -> None:
        self.group, self.queued_at = group, queued_at
        self.rings: dict[str, float] = {}          # agent -> when we rang them
        self.agent: str | None = None
        self.answered_at: float | None = None
        self.closed = False


class _CallLog:
    """Walks one call's timeline (events in their order, legs at their ends)."""

    def __init__(self, call: Mapping[str, Any]) -> None:
        self.callid = call.get("uniqueid") or NONE
        self.caller = call.get("caller_number") or ""
        self.out: list[str] = []
        self.offers: list[_Offer] = []
        self.ended = False
        self.events = [(str(e.get("kind") or ""), _time(e["at"]), e.get("detail") or {})
                       for e in call.get("events") or ()]
        self.legs = sorted((g for g in call.get("legs") or () if g.get("ended_at")),
                           key=lambda g: _time(g["ended_at"]))
        self.targets = [(at, d.get("agent"), d.get("target_agent"), d.get("target_group"))
                        for kind, at, d in self.events
                        if kind in ("transfer_completed", "consult_completed")]

    @property
    def open(self) -> _Offer | None:
        """The offer still waiting or talking, if any."""
        o = self.offers[-1] if self.offers else None
        return o if o is not None and not o.closed else None

    def emit(self, at: float, queue: str | None, agent: str | None, event: str,
             *data: Any) -> None:
        self.out.append(line(at, self.callid, queue, agent, event, *data))

    def exit(self, o: _Offer, at: float, event: str) -> None:
        """The caller leaves ``o``'s queue unanswered."""
        o.closed = True
        self.emit(at, o.group, NONE, event, POSITION, POSITION, _secs(o.queued_at, at))

    # ---- the timeline's events
    def queued(self, at: float, d: Mapping[str, Any]) -> None:
        o = self.open
        if o is not None and o.answered_at is None:         # moved on without a "sent"
            self.exit(o, at, "EXITWITHTIMEOUT")
        elif o is not None:                                   # taken back from its agent
            o.closed = True
        group = d.get("group") or NONE
        self.offers.append(_Offer(group, at))
        self.emit(at, group, NONE, "ENTERQUEUE", "", self.caller, POSITION)

    def offered(self, at: float, d: Mapping[str, Any]) -> None:
        if (o := self.open) is not None and o.answered_at is None and d.get("agent"):
            o.rings[d["agent"]] = at

    def ring_ended(self, event: str, at: float, d: Mapping[str, Any]) -> None:
        o, agent = self.open, d.get("agent")
        if o is not None and o.answered_at is None and agent:
            self.emit(at, o.group, agent, event, _ms(o.rings.pop(agent, None), at))

    def answered(self, at: float, d: Mapping[str, Any]) -> None:
        o, agent = self.open, d.get("agent")
        if o is None or o.answered_at is not None or not agent:
            return                          # no queue (outbound), or a repeated answer
        o.agent, o.answered_at = agent, at
        rung = o.rings.get(agent)
        self.emit(at, o.group, agent, "CONNECT", _secs(o.queued_at, at), "",
                  0 if rung is None else _secs(rung, at))

    def sent(self, at: float, d: Mapping[str, Any]) -> None:
        o = self.open
        detail = str(d.get("detail") or "")
        if o is None or o.answered_at is not None or detail.startswith("callback"):
            return                          # a callback keeps the caller's place
        m = _SENT_REASON.search(detail)
        self.exit(o, at, EXIT.get(m.group(1) if m else "", "EXITWITHTIMEOUT"))

    def end(self, at: float, reason: str) -> None:
        self.ended = True
        o = self.open
        if o is None:
            return
        if o.answered_at is None:
            if reason in EXIT:
                self.exit(o, at, EXIT[reason])
        elif reason in ("caller_hangup", "agent_hangup"):     # no leg on record
            o.closed = True
            self.emit(at, o.group, o.agent, LEG_END[reason], _secs(o.queued_at, o.answered_at),
                      _secs(o.answered_at, at), POSITION)

    # ---- the agents' legs
    def leg_ended(self, leg: Mapping[str, Any]) -> None:
        agent, at = leg.get("agent_id"), _time(leg["ended_at"])
        event = LEG_END.get(str(leg.get("reason")))
        if leg.get("role") not in _QUEUE_ROLES or event is None:
            return
        started = _time(leg["started_at"]) if leg.get("started_at") else at
        # a callback leg starts when the agent answers, before the customer does
        o = next((o for o in reversed(self.offers) if not o.closed and o.agent == agent
                  and o.answered_at is not None and o.answered_at <= at), None)
        if o is None:
            return
        o.closed = True
        hold, talk = _secs(o.queued_at, o.answered_at), _secs(o.answered_at, at)
        if event == "TRANSFER":
            ext, ctx = self._target(agent, started, at)
            self.emit(at, o.group, agent, event, ext, ctx, hold, talk, POSITION)
        else:
            self.emit(at, o.group, agent, event, hold, talk, POSITION)

    def _target(self, agent: Any, start: float, end: float) -> tuple[str, str]:
        for at, owner, to_agent, to_group in self.targets:
            if owner == agent and start - 1.0 <= at <= end + 1.0:
                return (to_agent, "agent") if to_agent else (to_group or "", "group")
        return "", ""

    def flush_legs(self, until: float) -> None:
        while self.legs and _time(self.legs[0]["ended_at"]) <= until:
            self.leg_ended(self.legs.pop(0))

    def run(self, end_reason: str | None, ended_at: Any) -> list[str]:
        handlers = {
            "queued": self.queued, "offered": self.offered, "answered": self.answered,
            "sent": self.sent,
            "no_answer": lambda at, d: self.ring_ended("RINGNOANSWER", at, d),
            "ring_cancelled": lambda at, d: self.ring_ended("RINGCANCELED", at, d),
            "ended": lambda at, d: self.end(at, str(d.get("reason") or end_reason or "")),
        }
        for kind, at, detail in self.events:
            self.flush_legs(at)
            if (handle := handlers.get(kind)) is not None:
                handle(at, detail)
        self.flush_legs(math.inf)
        if not self.ended and end_reason and ended_at:
            self.end(_time(ended_at), end_reason)
        return self.out


def call_lines(call: dict) -> list[str]:
    """One call record (as ``Store.get_call`` returns it) as queue_log lines, in order."""
    return _CallLog(call).run(call.get("end_reason"), call.get("ended_at"))


def _agent_row(row: Mapping[str, Any], reason_was: str) -> list[tuple[str, str]]:
    """(event, data) for one agent state row."""
    state, prev = row.get("state") or "offline", row.get("previous") or "offline"
    reason = str(row.get("reason") or "")
    if state == "offline":
        return [("REMOVEMEMBER", "")] if prev != "offline" else []
    out = [("ADDMEMBER", "")] if prev == "offline" else []
    if state in PAUSE_STATES:
        if prev not in PAUSE_STATES or prev != state or reason != reason_was:
            out.append(("PAUSE", reason or state))
    elif prev in PAUSE_STATES:
        out.append(("UNPAUSE", ""))
    return out


def agent_lines(rows: list[dict], *,
                groups: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """Agent state rows (``agent_id, state, reason, at, previous``) as member lines, in time
    order. ``groups``: each agent's skill groups, for one line per group as app_queue writes
    one per queue; without it (or for an agent it does not name) the queue is ``NONE``."""
    timed = sorted(((_time(r["at"]), i, r) for i, r in enumerate(rows)), key=lambda t: t[:2])
    reasons: dict[str, str] = {}
    out: list[str] = []
    for at, _, row in timed:
        agent = row.get("agent_id")
        for event, data in _agent_row(row, reasons.get(str(agent), "")):
            for queue in (groups or {}).get(agent) or (NONE,):
                out.append(line(at, NONE, queue, agent, event, data))
        reasons[str(agent)] = str(row.get("reason") or "")
    return out


__all__ = ["NONE", "LEG_END", "EXIT", "PAUSE_STATES", "field", "line", "call_lines",
           "agent_lines"]
