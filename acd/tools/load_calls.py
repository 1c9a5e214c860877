"""A load run's calls as Asterisk saw them: one :class:`LoadCall` per call (its outcome and
the times of each step), filled by a :class:`CallTracker` from AMI events.

The times are the ``Timestamp`` Asterisk puts on every AMI event (``timestampevents = yes``,
microseconds, the machine's wall clock). Nothing is averaged here: the records are the result.
The driver is :mod:`acd.tools.load`; the bench reads the records.
"""
from __future__ import annotations

import asyncio
import shlex
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from acd.asterisk import dialplan as dp

# =========================================================================== records

#: Outcomes. Only ``completed`` is a success.
COMPLETED = "completed"
FAILURES = ("originate_failed", "no_incoming_leg", "not_queued", "sent_away", "not_connected",
            "dropped", "unfinished")
#: The dialplan contexts of the destinations a caller is sent to instead of an agent (the
#: group's closed, full, overload or maximum-wait destination).
DESTINATION_CONTEXTS = (dp.DEST_CONTEXT, dp.VOICEMAIL_CONTEXT)


@dataclass
class LoadCall:
    """One call's outcome and timings. Times are Asterisk's event timestamps (wall clock,
    seconds) unless named otherwise; ``None`` where the step did not happen."""

    n: int
    caller_number: str
    planned: float                    # offset in the run at which the caller was to dial
    trunk_uid: str                    # the caller's own channel (ChannelId we chose)
    sent_at: float | None = None      # Originate sent (our clock)
    call_uid: str | None = None       # the incoming leg's Uniqueid (our server's call id)
    call_channel: str | None = None
    incoming_at: float | None = None  # the incoming leg appeared (Newchannel)
    asked_at: float | None = None     # the flow asked for keys (GET DATA / Read)
    keyed_at: float | None = None     # the last key sent (our clock)
    queued_at: float | None = None    # the queueing application started (AGI queue / Queue)
    sent_away_at: float | None = None # sent to a destination (overload, closed...), not an agent
    agent: str | None = None
    agent_uid: str | None = None
    invite_at: float | None = None    # the connected agent's leg was created (its INVITE)
    bridged_at: float | None = None   # caller and agent in one bridge
    answered_at: float | None = None  # the agent's phone had the call up (our clock)
    talk_end_at: float | None = None  # the phone hung up after the talk time (our clock)
    agent_end_at: float | None = None # the agent's leg hung up
    ended_at: float | None = None     # the incoming leg hung up
    end_cause: int | None = None
    ring_at: float | None = None      # the ring event reached the agent's page (our clock)
    outcome: str = "unfinished"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def queue_to_invite(self) -> float | None:
        if self.queued_at is None or self.invite_at is None:
            return None
        return self.invite_at - self.queued_at


@dataclass
class AgentLeg:
    """A channel towards an agent's phone (``PJSIP/<agent>-...``)."""
    uid: str
    agent: str
    created: float
    ended: float | None = None
    call_uid: str | None = None       # the caller it was bridged with


def classify(rec: LoadCall) -> str:
    """The outcome of a call once the run is over: ``completed`` when the caller reached the
    queue, was connected with an agent, and the agent's phone hung up after the talk time
    (not the far end before it), and the caller's leg then ended."""
    if rec.outcome == "originate_failed":
        return rec.outcome
    if rec.call_uid is None:
        return "no_incoming_leg"
    if rec.queued_at is None:
        return "not_queued" if rec.ended_at is not None else "unfinished"
    if rec.bridged_at is None:
        return "sent_away" if rec.sent_away_at is not None else "not_connected"
    if rec.talk_end_at is None:
        return "dropped" if rec.ended_at is not None else "unfinished"
    if rec.ended_at is None:
        return "unfinished"
    return COMPLETED


# =========================================================================== following calls

def _ts(fields: dict[str, Any]) -> float:
    try:
        return float(fields.get("Timestamp") or time.time())
    except (TypeError, ValueError):
        return time.time()


#: The AMI events the tracker reads (an AMI Filter keeps the rest away from this process).
EVENTS = ("Newchannel", "Newexten", "BridgeEnter", "Hangup", "OriginateResponse",
          "AGIExecStart", "QueueCallerJoin")


def asks_for_keys(command: str) -> bool:
    """An AGI command of the IVR that takes the caller's keys: ``GET DATA``, ``WAIT FOR
    DIGIT``, or a prompt played with escape digits (a YAML menu's ``STREAM FILE name "12"``)."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    head = [w.upper() for w in words[:3]]
    if head[:2] == ["GET", "DATA"] or head == ["WAIT", "FOR", "DIGIT"]:
        return True
    return head[:2] == ["STREAM", "FILE"] and len(words) > 3 and words[3] != ""


class CallTracker:
    """Follows every call of the run through AMI events. ``on_event`` never blocks."""

    def __init__(self, agents: Iterable[str]) -> None:
        self.agents = set(agents)
        self.by_trunk: dict[str, LoadCall] = {}
        self.by_number: dict[str, LoadCall] = {}
        self.by_call: dict[str, LoadCall] = {}
        self.legs: dict[str, AgentLeg] = {}
        self.bridges: dict[str, set[str]] = defaultdict(set)
        self.on_ask: Callable[[LoadCall], None] | None = None
        self.changed = asyncio.Event()
        self.events = 0

    def add(self, rec: LoadCall) -> None:
        self.by_trunk[rec.trunk_uid] = rec
        self.by_number[rec.caller_number] = rec

    def on_event(self, e: Any) -> None:
        self.events += 1
        f = e.fields
        name = e.name
        if name == "Newexten":
            rec = self.by_call.get(str(f.get("Uniqueid", "")))
            if rec is None:
                return
            app = str(f.get("Application", ""))
            data = str(f.get("AppData", ""))
            # The queue script's URL, before its arguments (AGI(agi://host/queue,group,...)).
            script = data.split(",", 1)[0]
            if rec.queued_at is None and (app == "Queue" or (app == "AGI" and script.endswith("/queue"))):
                rec.queued_at = _ts(f)
                self.changed.set()
            elif (rec.queued_at is not None and rec.sent_away_at is None
                  and rec.bridged_at is None and f.get("Context") in DESTINATION_CONTEXTS):
                rec.sent_away_at = _ts(f)
            elif app == "Read" and rec.asked_at is None:
                self._asked(rec, f)
        elif name == "AGIExecStart":
            rec = self.by_call.get(str(f.get("Uniqueid", "")))
            if (rec is not None and rec.asked_at is None and rec.queued_at is None
                    and asks_for_keys(str(f.get("Command", "")))):
                self._asked(rec, f)
        elif name == "Newchannel":
            chan = str(f.get("Channel", ""))
            uid = str(f.get("Uniqueid", ""))
            if chan.startswith("PJSIP/acd-caller-"):
                rec = self.by_number.get(str(f.get("CallerIDNum", "")))
                if rec is not None and rec.call_uid is None:
                    rec.call_uid, rec.call_channel, rec.incoming_at = uid, chan, _ts(f)
                    self.by_call[uid] = rec
            elif chan.startswith("PJSIP/"):
                agent = chan[6:].rsplit("-", 1)[0]
                if agent in self.agents:
                    self.legs[uid] = AgentLeg(uid, agent, _ts(f))
        elif name == "BridgeEnter":
            bridge = str(f.get("BridgeUniqueid", ""))
            members = self.bridges[bridge]
            members.add(str(f.get("Uniqueid", "")))
            calls = [self.by_call[u] for u in members if u in self.by_call]
            legs = [self.legs[u] for u in members if u in self.legs]
            if calls and legs:
                rec, leg = calls[0], legs[0]
                if rec.bridged_at is None:
                    rec.bridged_at = _ts(f)
                    rec.agent, rec.agent_uid, rec.invite_at = leg.agent, leg.uid, leg.created
                    leg.call_uid = rec.call_uid
                    self.changed.set()
        elif name == "Hangup":
            uid = str(f.get("Uniqueid", ""))
            leg = self.legs.get(uid)
            if leg is not None:
                leg.ended = _ts(f)
                rec = self.by_call.get(leg.call_uid or "")
                if rec is not None and rec.agent_uid == uid:
                    rec.agent_end_at = leg.ended
                return
            rec = self.by_call.get(uid)
            if rec is not None:
                rec.ended_at = _ts(f)
                try:
                    rec.end_cause = int(f.get("Cause"))
                except (TypeError, ValueError):
                    rec.end_cause = None
                self.changed.set()
        elif name == "OriginateResponse":
            rec = self.by_trunk.get(str(f.get("Uniqueid", "")))
            if rec is not None and str(f.get("Response", "")).lower() != "success":
                rec.outcome = "originate_failed"
                self.changed.set()

    def _asked(self, rec: LoadCall, f: dict[str, Any]) -> None:
        rec.asked_at = _ts(f)
        if self.on_ask is not None:
            self.on_ask(rec)


def outcome_counts(records: Iterable[LoadCall]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in records:
        out[r.outcome] = out.get(r.outcome, 0) + 1
    return out


class Follower:
    """Sends an AMI connection's events to the current :class:`CallTracker` (one per run),
    after asking Asterisk (AMI ``Filter``, again after every reconnect) to send this
    connection only the events trackers read. Counts the connection's losses."""

    def __init__(self, ami: Any) -> None:
        self.ami = ami
        self.tracker: CallTracker | None = None
        self.disconnects = 0
        ami.on_event(self._event)
        ami.on_connection(self._connection)

    async def start(self) -> None:
        await self._filter()

    async def _filter(self) -> None:
        for name in EVENTS:
            await self.ami.action("Filter", Operation="Add", Filter=f"Event: {name}")

    def _event(self, e: Any) -> None:
        if self.tracker is not None:
            self.tracker.on_event(e)

    async def _connection(self, up: bool) -> None:
        if not up:
            self.disconnects += 1
        elif self.disconnects:
            try:
                await self._filter()
            except Exception:       # lost again meanwhile: the next login filters again
                pass
