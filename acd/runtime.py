"""The ACD runtime: the adapter between the pure core (:mod:`acd.core`) and Asterisk.

It feeds the core what happens (AMI events, FastAGI queue sessions, the agents' requests,
timers, service hours) and carries out the core's decisions, in order:

=======================  ==================================================================
decision                 what the runtime does
=======================  ==================================================================
RingAgent(ForCallback)   AMI Originate ``PJSIP/<endpoint>`` (async, a ChannelId we choose,
                         the caller's number as caller id) into ``[acd-agent]``. Newstate
                         ringing -> ``agent_ringing`` (and the agent's screen gets the held
                         ``ring`` notification: the screen pops when the phone rings);
                         OriginateResponse answered -> ``agent_answered``; a failed
                         originate or a hangup before the answer -> ``ring_failed(cause)``.
CancelRing               AMI Hangup of the agent's leg (by its Uniqueid; again when the
                         channel shows up later); a callback's customer leg too.
BridgeCall               AMI Bridge of the caller (or the callback customer) with the
                         agent's answered leg, then ``ACD_BRIDGED=1`` on the caller. The
                         caller's FastAGI session ends by itself; once the bridge dissolves,
                         the dialplan hangs up both sides (each goes on at its priority + 1).
DialCustomer             AMI Originate to the customer (``customer_dial`` template) into
                         ``[acd-customer]``: answered -> ``customer_answered``, else
                         ``customer_dial_failed``.
SendToDestination        AMI Redirect of the caller to ``[acd-dest]`` (goodbye, callback
                         notice, the IVR) or ``[acd-voicemail]``.
Announce                 handed to the caller's FastAGI queue session (position / wait).
StartTimer/CancelTimer   ``loop.call_later`` on the wall clock (``clock``).
Notify                   ``hub.publish("agent:<id>", {"type": event, ...})``.
RecordCallEvent/         one store writer task, in order, retried while the database is
RecordAgentState         locked or full (:class:`~acd.store.writer.StoreWriter`).
=======================  ==================================================================

Call control (:mod:`acd.core.control`; the dialplan's ``[acd-hold]`` and ``[acd-survey]``):

=======================  ==================================================================
HoldCaller               ``ACD_OWNER`` and ``ACD_HELD_AT`` on the caller, then one AMI
                         Redirect of both sides (``ExtraChannel``): the caller to
                         ``acd-hold,caller`` (music on hold), the agent's leg to
                         ``acd-hold,agent`` (silence). AMI has no Hold action.
ResumeCaller/            AMI Bridge of the caller with the owner's (or the target's) leg;
BridgeTarget             a channel already in a bridge is moved out of it.
RingTarget               Originate to the target's phone into ``acd-hold,agent`` (silent
                         until bridged), ``ACD_ROLE`` transfer or consult; reported as any
                         ring (the core knows it is a target).
BridgeConsult            AMI Bridge of the owner's leg with the target's leg.
DropLeg                  AMI Hangup of the agent's leg after the call's earlier actions.
RequeueCaller            ``ACD_BRIDGED`` cleared, group, priority and entry time set, then
                         Redirect of the caller to ``acd-queue``: the queue script again.
InviteRating/            ``ACD_SURVEY=1`` on the caller: after the conversation the dialplan
SendToSurvey             takes them to ``[acd-survey]`` (FastAGI ``survey``); a held caller
                         is redirected there.
RingAgentForOutbound     Originate to the agent's phone into ``acd-agent``; then DialCustomer
                         (``outbound.dial``, caller id ``outbound.caller_id``) and BridgeCall.
RecordControl/RecordLeg  the call's timeline, and each agent's part (talk, hold, wrap-up).
=======================  ==================================================================

The first BridgeLeave of a conversation says who hung up; call control moves channels out of
bridges itself, so the leaves it causes (and those that follow as a two-party bridge
dissolves) are expected and ignored (:meth:`AcdRuntime._on_bridge_leave`). Held callers and
consults survive a restart: the rebuild reads ``acd-hold``'s channels and their variables
(``ACD_OWNER``, ``ACD_HELD_AT``, ``ACD_SURVEY``; ``ACD_CALL``, ``ACD_AGENT`` on the legs).

Callers wait in Asterisk, not in our memory: the queue script (``agi/queue.py``) registers a
caller through :meth:`AcdRuntime.caller_arrived` and reads ``ACD_GROUP``, ``ACD_PRIORITY`` and
``ACD_ENTERED`` (set once) from the channel. After a restart, the first AMI login rebuilds the
core from Asterisk's channels and the store (:meth:`AcdRuntime._rebuild`); every later login
compares Asterisk with what we know and feeds the core what it missed.

Asterisk itself stopping or restarting loses every channel in it. A clean stop is heard first
(SoftHangupRequest with the shutdown flag on every channel, then Shutdown); a crash is found
on the next login (CoreStatus's start time differs from the one we saw). Either way the calls
end as ``lost`` (:meth:`Acd.channels_lost`), the agents return to their true states, and the
phones count again once a qualify answers (Asterisk reads registrations back from its astdb;
a registration it lost comes back within ``asterisk.registration_seconds``). A phone whose
qualify fails while it rings or talks is lost (:meth:`Acd.phone_lost`): a failed ring, or the
caller back into the queue at the front. Only a qualify failure counts: a phone that
unregisters says BYE for its calls first.

Rules: the AMI event callback never blocks (AMI actions run as tasks, one chain per call so
that a call's actions keep their order); a refused event (:class:`~acd.core.AcdError`) is
logged and changes nothing; a failed AMI action is logged with its call and agent and fed
back to the core as the matching failure.
"""
from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from acd import log as acdlog
from acd.ami import events as ev
from acd.ami.client import AmiActionError, AmiError
from acd.core import (Acd, AcdError, Announce, BridgeCall, CallEventKind, CancelRing,
                      CancelTimer, Decision, DestinationKind, DialCustomer, EndReason, Notify,
                      RecordAgentState, RecordCallEvent, RingAgent, RingAgentForCallback,
                      SendToDestination, StartTimer)
from acd.core.control import (BridgeConsult, BridgeTarget, DropLeg, HoldCaller, InviteRating,
                              OutboundEnded, OutboundStarted, RecordControl, RecordLeg,
                              RecordLegWrapup, RequeueCaller, ResumeCaller,
                              RingAgentForOutbound, RingTarget, SendToSurvey)
from acd.core.transfers import TRANSFER_PRIORITY_BOOST
from acd.errors import UserError
from acd.hours import ServiceHours
from acd.store.writer import QueuedStore, StoreWriter

#: Where a callback customer is dialled; ``{number}`` is the checked number. The lead moves
#: this into the configuration; app.py picks the loopback test customers in tests.
CUSTOMER_DIAL = "PJSIP/{number}@acd-trunk"

QUEUE_CONTEXT = "acd-queue"
AGENT_CONTEXT = "acd-agent"
CUSTOMER_CONTEXT = "acd-customer"
DEST_CONTEXT = "acd-dest"
VOICEMAIL_CONTEXT = "acd-voicemail"
HOLD_CONTEXT = "acd-hold"          # held callers (exten caller), waiting agent legs (agent)
SURVEY_CONTEXT = "acd-survey"

#: A number we may dial or read back: digits, * and #, an optional leading +.
NUMBER = re.compile(r"^\+?[0-9*#]{1,32}$")
_BOX = re.compile(r"[^0-9A-Za-z_]")

#: ContactStatus values (and PJSIPShowContacts' Status) that mean the phone can ring.
_REACHABLE = frozenset({"reachable", "nonqualified", "unqualified", "created", "updated",
                        "unknown"})   # "Unqualified": the AMI docs' name for NonQualified
#: Every ContactStatus Asterisk sends (res_pjsip); any other is ignored (and logged).
_CONTACT_STATUSES = _REACHABLE | {"unreachable", "removed"}
#: OriginateResponse Reason -> cause for the core.
_ORIGINATE_REASON = {1: "hangup", 3: "no_answer", 5: "busy", 8: "congestion"}
#: Hangup Cause (Q.850) -> cause for the core.
_HANGUP_CAUSE = {17: "busy", 18: "no_answer", 19: "no_answer", 21: "rejected", 20: "unreachable",
                 3: "unreachable", 34: "congestion", 38: "congestion", 16: "hangup",
                 0: "cancelled"}

ENDED_WHILE_DOWN = "ended_while_server_down"
#: SoftHangupRequest's Cause is Asterisk's soft hangup flag; this one is a shutdown.
SOFTHANGUP_SHUTDOWN = 4
_CONNECTED_ENDS = frozenset({EndReason.CALLER_HANGUP, EndReason.AGENT_HANGUP})
RECONCILE_ATTEMPTS = 30    # a reconcile that cannot read Asterisk yet (booting) tries again
RECONCILE_RETRY_SECONDS = 1.0
JOIN_ATTEMPTS = 3          # a Bridge refused while a leg is in transition is tried again
JOIN_RETRY_SECONDS = 0.3
_GETVARS_AT_ONCE = 16


def _log(**bound: Any):
    return acdlog.get_logger(component="runtime", **bound)


def _utc(at: float) -> datetime:
    return datetime.fromtimestamp(at, timezone.utc)


def _f(x: Any, default: float | None = None) -> float | None:
    try:
        return float(x)
    except (TypeError, ValueError):
        return default


def _i(x: Any, default: int = 0) -> int:
    try:
        return int(str(x).strip())
    except (TypeError, ValueError):
        return default


def _cid_text(text: str) -> str:
    """Caller id text that cannot break an AMI header or the quoting of CallerID: control
    characters (CR and LF among them), quotes, angle brackets and backslashes are taken out."""
    return re.sub(r'[\x00-\x1f\x7f"<>\\]', "", text or "")[:80]


# --------------------------------------------------------------------------- state we keep

@dataclass(eq=False)
class _Leg:
    """A channel we originated: an agent's leg (ring) or a callback customer's leg."""
    uid: str                 # the ChannelId we chose = the channel's Uniqueid
    kind: str                # "agent" or "customer"
    call_id: str
    agent_id: str
    channel: str | None = None
    ringing: bool = False
    answered: bool = False
    bridged: bool = False
    gone: bool = False
    cancelled: bool = False  # we hung it up (or will, as soon as it exists)
    reported: bool = False   # the core knows how this ring / dial ended
    cause: int | None = None
    reason: int | None = None  # a failed Originate's Reason, while its Hangup is awaited


@dataclass(eq=False)
class _Caller:
    """A caller's channel in the queue (call id = its Uniqueid)."""
    call_id: str
    channel: str
    caller_number: str = ""
    caller_name: str = ""
    group: str = ""
    session: "CallerSession | None" = None
    gone: bool = False
    sent: bool = False       # redirected to a destination (or to the survey)
    bridged: bool = False
    survey: bool = False     # ACD_SURVEY is set: the survey follows the conversation


class CallerSession:
    """What the queue script (FastAGI) holds while a caller waits: announcements to play,
    the callback key, and a way to ask for the callback."""

    def __init__(self, runtime: "AcdRuntime", call_id: str) -> None:
        self.runtime = runtime
        self.call_id = call_id
        self._todo: deque[tuple[str, Any]] = deque()
        self.done = False        # sent on, bridged, or ended: the script just waits to be cut
        self.detached = False

    @property
    def callback_key(self) -> str | None:
        return self.runtime.callback_key(self.call_id)

    @property
    def caller_number(self) -> str:
        ctx = self.runtime._callers.get(self.call_id)
        return ctx.caller_number if ctx else ""

    def next_instruction(self) -> tuple[str, Any] | None:
        return self._todo.popleft() if self._todo else None

    def push(self, kind: str, data: Any) -> None:
        """Queue an instruction; a newer one of the same kind replaces the older."""
        self.drop(kind)
        self._todo.append((kind, data))

    def drop(self, kind: str) -> None:
        self._todo = deque(item for item in self._todo if item[0] != kind)

    def request_callback(self, number: str) -> None:
        """The caller confirmed ``number``: the call becomes a callback, keeping its place.
        Raises AcdError if the core refuses (then nothing changed)."""
        self.runtime.callback_requested(self.call_id, number)
        self.done = True

    def detach(self) -> None:
        self.detached = True
        ctx = self.runtime._callers.get(self.call_id)
        if ctx is not None and ctx.session is self:
            ctx.session = None


# --------------------------------------------------------------------------- the runtime

class AcdRuntime:
    """See the module docstring. Plain values in; ``app.py`` wires it."""

    def __init__(self, acd: Acd, ami: Any, store: Any, hub: Any, *,
                 endpoints: Mapping[str, str], groups: Sequence[Any] = (),
                 names: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.time,
                 customer_dial: str = CUSTOMER_DIAL, hotline_number: str = "",
                 ring_grace: float = 2.0, hours_interval: float = 60.0,
                 outbound_caller_id: str = "", outbound_enabled: bool = True,
                 outbound_ring_timeout: float = 20.0,
                 outbound_dial_timeout: float = 45.0) -> None:
        self.acd = acd
        self.ami = ami
        self.store = store
        self.hub = hub
        self.clock = clock
        self.endpoints = dict(endpoints)                 # agent id -> PJSIP endpoint
        self._agent_of_endpoint = {ep: a for a, ep in self.endpoints.items()}
        self.names = dict(names or {})
        self.group_cfg = {g.name: g for g in groups}     # acd.config.GroupConfig
        self.customer_dial = customer_dial
        self.hotline_number = hotline_number
        self.ring_grace = ring_grace
        self.hours_interval = hours_interval
        self.outbound_caller_id = outbound_caller_id
        self.outbound_enabled = outbound_enabled
        self.outbound_ring_timeout = outbound_ring_timeout
        self.outbound_dial_timeout = outbound_dial_timeout
        self.writer = StoreWriter()
        self.ready = asyncio.Event()
        self._rebuilt = False
        self._rebuilding = False
        self._buffer: list[ev.AmiEvent] | None = []     # AMI events held until the rebuild
        self._callers: dict[str, _Caller] = {}
        self._expected: dict[str, float] = {}            # handed to the queue, not there yet
        self._legs: dict[str, _Leg] = {}
        self._leg_of: dict[tuple[str, str], str] = {}   # (call, agent) -> current agent leg
        self._customer_leg: dict[str, str] = {}         # call -> current customer leg
        self._held_ring: dict[tuple[str, str], Notify] = {}
        self._timers: dict[str, tuple[float, asyncio.TimerHandle]] = {}
        self._chains: dict[str, asyncio.Future] = {}
        self._tasks: set[asyncio.Task] = set()
        self._contacts: dict[str, dict[str, bool]] = {}  # endpoint -> contact uri -> reachable
        self._reachable: dict[str, bool] = {}
        self._phone_calls: dict[str, set[str]] = {}   # agent endpoint -> its channels up
        self._phone_of: dict[str, str] = {}             # and back: Uniqueid -> endpoint
        # the phones' channel events seen while CoreShowChannels is read (one list a reader)
        self._phone_logs: list[list[tuple[str, str, bool]]] = []
        self._pending_saved: dict[str, tuple[str | None, str]] = {}
        self._open: dict[str, bool] = {}
        # Bridges as Asterisk reports them, and the bridge leaves we caused (moves) or that
        # follow from another leave (a two-party bridge dissolves): those are no hangups.
        self._bridge_of: dict[str, str] = {}             # channel uniqueid -> bridge
        self._members: dict[str, set[str]] = {}          # bridge -> channel uniqueids
        self._expect_leave: Counter[tuple[str, str]] = Counter()  # (uniqueid, bridge or "*")
        self._joining: set[str] = set()                  # bridged by us, BridgeEnter to come
        self._snapshot_due = False
        self._leg_seq = 0
        self._boot = secrets.token_hex(4)       # leg ids differ from a previous process's
        self._loop: asyncio.AbstractEventLoop | None = None
        self._hours_task: asyncio.Task | None = None
        self._stopping = False
        self._ami_up = False
        self._asterisk_started: str | None = None   # CoreStatus: when Asterisk started
        self._asterisk_stopping = False             # it said it is shutting down
        self.log = _log()

    # ================================================================ life

    def attach(self) -> None:
        """Register with the AMI client (events and connection changes)."""
        self.ami.on_event(self.on_ami_event)
        self.ami.on_connection(self.on_ami_connection)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.writer.start()

    async def stop(self) -> None:
        self._stopping = True
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if self._hours_task is not None:
            self._hours_task.cancel()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.writer.stop()

    async def wait_ready(self) -> None:
        await self.ready.wait()

    async def quiesce(self) -> None:
        """Wait until every AMI action and store write started so far is done (tests,
        shutdown)."""
        while True:
            tasks = [t for t in self._tasks if t is not self._hours_task]
            if not tasks:
                break
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.writer.drain()

    # ================================================================ public API (HTTP layer)

    def login(self, agent_id: str) -> dict[str, Any]:
        endpoint = self._endpoint(agent_id)
        self._require_ready()
        self._apply(self.acd.agent_login(agent_id, endpoint, self.clock()))
        return self.agent(agent_id)

    def logout(self, agent_id: str) -> dict[str, Any]:
        self._endpoint(agent_id)
        self._require_ready()
        self._apply(self.acd.agent_logout(agent_id, self.clock()))
        return self.agent(agent_id)

    def set_state(self, agent_id: str, state: str, reason: str = "") -> dict[str, Any]:
        self._endpoint(agent_id)
        self._require_ready()
        self._apply(self.acd.set_agent_state(agent_id, state, self.clock(), reason))
        return self.agent(agent_id)

    def end_wrapup(self, agent_id: str) -> dict[str, Any]:
        self._endpoint(agent_id)
        self._require_ready()
        self._apply(self.acd.end_wrapup(agent_id, self.clock()))
        return self.agent(agent_id)

    # ---- call control: the agent's actions on their call. A refusal raises an AcdError
    # with a stable id and changes nothing; otherwise the agent's snapshot is returned.

    def hold(self, agent_id: str) -> dict[str, Any]:
        return self._control(agent_id, lambda now: self.acd.hold_call(agent_id, now))

    def resume(self, agent_id: str) -> dict[str, Any]:
        return self._control(agent_id, lambda now: self.acd.resume_call(agent_id, now))

    def transfer(self, agent_id: str, *, to_agent: str | None = None,
                 to_group: str | None = None) -> dict[str, Any]:
        return self._control(agent_id, lambda now: self.acd.transfer(
            agent_id, now, to_agent=to_agent, to_group=to_group))

    def cancel_transfer(self, agent_id: str) -> dict[str, Any]:
        return self._control(agent_id, lambda now: self.acd.cancel_transfer(agent_id, now))

    def consult(self, agent_id: str, *, to_agent: str | None = None,
                to_group: str | None = None) -> dict[str, Any]:
        return self._control(agent_id, lambda now: self.acd.consult(
            agent_id, now, to_agent=to_agent, to_group=to_group))

    def complete_consult(self, agent_id: str) -> dict[str, Any]:
        return self._control(agent_id, lambda now: self.acd.complete_consult(agent_id, now))

    def return_from_consult(self, agent_id: str) -> dict[str, Any]:
        return self._control(agent_id, lambda now: self.acd.return_from_consult(agent_id, now))

    def to_survey(self, agent_id: str) -> dict[str, Any]:
        return self._control(agent_id, lambda now: self.acd.to_survey(agent_id, now))

    def invite_rating(self, agent_id: str) -> dict[str, Any]:
        return self._control(agent_id, lambda now: self.acd.invite_rating(agent_id, now))

    def hangup(self, agent_id: str) -> dict[str, Any]:
        return self._control(agent_id, lambda now: self.acd.hang_up(agent_id, now))

    def dial(self, agent_id: str, number: str) -> dict[str, Any]:
        """The agent's outbound call: their phone rings first, then ``number`` is dialled
        with the configured caller id. The call is recorded like any other."""
        if not self.outbound_enabled:
            raise UserError("dial.not_configured", "Outbound calls need outbound.dial, the "
                                                   "way to reach customers.")
        self._leg_seq += 1
        call_id = f"out-{self._boot}-{self._leg_seq}"
        return self._control(agent_id, lambda now: self.acd.dial(
            agent_id, number, now, call_id=call_id, ring_timeout=self.outbound_ring_timeout,
            dial_timeout=self.outbound_dial_timeout))

    async def flush(self) -> None:
        """Wait until everything stored so far is written (the HTTP layer answers a call
        control action after its record is written: a crash then loses nothing)."""
        await self.writer.flush()

    def _control(self, agent_id: str, action: Callable[[float], list[Decision]]) -> dict[str, Any]:
        self._endpoint(agent_id)
        self._require_ready()
        self._apply(action(self.clock()))
        return self.agent(agent_id)

    def agent(self, agent_id: str) -> dict[str, Any]:
        """The agent's snapshot: state, pending state, reachable, and the current call."""
        self._endpoint(agent_id)
        return self._agent_view(agent_id, self.acd.snapshot_agents(self.clock()).get(agent_id))

    def agents(self) -> dict[str, Any]:
        snap = self.acd.snapshot_agents(self.clock())
        return {a: self._agent_view(a, snap.get(a)) for a in self.endpoints}

    def queues(self) -> dict[str, Any]:
        return self.acd.snapshot_queues(self.clock())

    def call_info(self, call_id: str) -> dict[str, Any]:
        return self.acd.call_info(call_id)

    def _agent_view(self, agent_id: str, snap: dict[str, Any] | None) -> dict[str, Any]:
        endpoint = self.endpoints[agent_id]
        if snap is None:       # configured, in no skill group, never logged in
            snap = {"state": "offline", "reason": "", "since": None, "in_state_for": None,
                    "endpoint": None, "reachable": self._reachable.get(endpoint, False),
                    "available": False, "unavailable_reason": "logged out", "pending": None,
                    "pending_reason": None, "call_id": None, "groups": {},
                    "calls_answered": 0, "idle_since": None}
        out = {"agent_id": agent_id, "name": self.names.get(agent_id, agent_id),
               "phone": endpoint, **snap}
        out["reachable"] = self._reachable.get(endpoint, False)
        call_id = snap.get("call_id")
        out["call"] = None
        out["control"] = None
        if call_id:
            try:
                info = self.acd.call_info(call_id)
                info.pop("timeline", None)
                out["call"] = info
            except AcdError:
                pass
            out["control"] = self.acd.control_info(call_id)
        return out

    def _endpoint(self, agent_id: str) -> str:
        endpoint = self.endpoints.get(agent_id)
        if endpoint is None:
            raise UserError("agent.unknown", f"There is no agent {agent_id!r}.")
        return endpoint

    def _require_ready(self) -> None:
        if not self.ready.is_set():
            raise UserError("acd.starting", "The ACD is still taking up its state from "
                                            "Asterisk and the database; try again in a moment.")

    def callback_key(self, call_id: str) -> str | None:
        """The key that asks for a callback in the call's current group (None: none)."""
        try:
            group = self.acd.call_info(call_id)["group"]
        except AcdError:
            return None
        g = self.group_cfg.get(group)
        return g.callback.key if g is not None and g.callback is not None else None

    # ================================================================ the queue script

    async def caller_arrived(self, *, uniqueid: str, channel: str, caller_number: str,
                             caller_name: str, did: str, group: str, priority: int,
                             entered: float) -> CallerSession | None:
        """A caller's queue session (FastAGI) starts. A caller the core knows (a session
        that came back after a restart or a cut) is attached again; a new one enters the
        queue of ``group`` at ``entered`` (the ACD_ENTERED the script set). None: the call is
        over for the ACD (the script sends the caller away). AcdError: refused."""
        await self.wait_ready()
        log = self.log.bind(call=uniqueid, channel=channel)
        ctx = self._callers.get(uniqueid)
        state = self._call_state(uniqueid)
        if state is not None:
            if state == "connected" and ctx is not None and not ctx.gone:
                # Requeued (a transfer to a group) and answered before this session came up:
                # the Bridge on its way cuts the session; it waits for that.
                ctx.channel = channel
                session = self._new_session(ctx)
                session.done = True
                return session
            if state not in ("waiting", "ringing"):
                return None     # ended, a callback, or connected: not for the queue any more
            if ctx is None:
                ctx = self._callers[uniqueid] = _Caller(uniqueid, channel, caller_number,
                                                        caller_name, group)
            ctx.channel = channel
            ctx.gone = False
            session = self._new_session(ctx)
            log.info("runtime.caller_attached", state=state)
            return session
        self._expected.pop(uniqueid, None)
        number = caller_number if NUMBER.match(caller_number or "") else ""
        # Known before the first await, so that a hangup meanwhile is seen (ctx.gone).
        ctx = self._callers[uniqueid] = _Caller(uniqueid, channel, number, caller_name, group)
        session = self._new_session(ctx)
        # Through the writer: a locked or full database holds the record back (in order,
        # before the call's events), never the caller. The key trail is only read.
        self.writer.submit("call_arrived", self.store.call_arrived, uniqueid=uniqueid,
                           channel=channel, caller_number=caller_number,
                           caller_name=caller_name, did=did, at=_utc(entered),
                           bind={"call": uniqueid})
        try:
            # After a bounded flush (the IVR's keys are queued on the same writer), plus
            # what is still queued during an outage.
            stored = await QueuedStore(self.store, self.writer).get_call(uniqueid)
        except Exception as exc:  # noqa: BLE001 - the store is out: queue without the trail
            log.warning("runtime.key_trail_unread", error=str(exc).splitlines()[0][:200])
            stored = None
        key_trail = [k["keys"] for k in stored["key_trail"]] if stored else []
        if ctx.gone:
            log.info("runtime.caller_gone_before_queue")
            self.writer.submit("call_ended", self.store.call_ended, uniqueid,
                               reason=EndReason.ABANDONED.value, at=_utc(self.clock()),
                               bind={"call": uniqueid})
            return None
        try:
            out = self.acd.call_arrived(uniqueid, number, group, entered,
                                        priority=priority, key_trail=key_trail)
        except AcdError as exc:
            self._callers.pop(uniqueid, None)
            # The caller is sent away by the script; the record gets its one end reason.
            now = _utc(self.clock())
            self.writer.submit("refused", self.store.call_event, uniqueid, "refused", at=now,
                               detail={"group": group, "error": exc.id}, bind={"call": uniqueid})
            self.writer.submit("call_ended", self.store.call_ended, uniqueid, reason="refused",
                               at=now, bind={"call": uniqueid})
            raise
        log.info("runtime.caller_queued", group=group, priority=priority)
        self._apply(out)
        # The caller's entry is on record before their session goes on: a crash from here
        # on leaves a whole record behind.
        await self.writer.flush()
        return session

    def expect_caller(self, uniqueid: str) -> None:
        """The IVR hands this call to the queue: should the caller hang up before the queue
        script registers them, the call record still gets its end reason."""
        self._expected[uniqueid] = self.clock()

    def _new_session(self, ctx: _Caller) -> CallerSession:
        if ctx.session is not None:
            ctx.session.detached = True
        session = CallerSession(self, ctx.call_id)
        ctx.session = session
        return session

    def _call_state(self, call_id: str) -> str | None:
        try:
            return str(self.acd.call_info(call_id)["state"])
        except AcdError:
            return None

    def callback_requested(self, call_id: str, number: str) -> None:
        self._apply(self.acd.callback_requested(call_id, number, self.clock()))
        ctx = self._callers.get(call_id)
        if ctx is not None:
            ctx.sent = True

    # ================================================================ AMI in

    def on_ami_connection(self, up: bool) -> None:
        self._ami_up = up
        if not up:
            self.log.warning("runtime.ami_down")
            return
        if not self._rebuilt:
            self._spawn(self._rebuild(), "rebuild")
        else:
            self._spawn(self._reconcile(), "reconcile")

    def on_ami_event(self, event: ev.AmiEvent) -> None:
        """The AMI event callback: never blocks, never raises."""
        if self._buffer is not None:
            self._buffer.append(event)
            return
        try:
            self._dispatch(event)
        except Exception:
            self.log.exception("runtime.event_failed", event_name=event.name,
                               channel=getattr(event, "channel", None))

    def _dispatch(self, e: ev.AmiEvent) -> None:
        if isinstance(e, ev.Newstate):
            self._on_newstate(e)
        elif isinstance(e, ev.Newchannel):
            self._phone_channel(e.channel or "", e.uniqueid or "", True)
            leg = self._legs.get(e.uniqueid or "")
            if leg is not None:
                leg.channel = e.channel
                if leg.cancelled:
                    self._hangup(leg.uid, leg.call_id, leg.agent_id)
        elif isinstance(e, ev.OriginateResponse):
            self._on_originate_response(e)
        elif isinstance(e, ev.Hangup):
            self._on_hangup(e)
        elif (e.name == "SoftHangupRequest" and _i(e.fields.get("Cause")) == SOFTHANGUP_SHUTDOWN
              or e.name == "Shutdown"):
            self._asterisk_shutdown()
        elif e.name in ("HangupRequest", "SoftHangupRequest"):
            leg = self._legs.get(str(e.fields.get("Uniqueid", "")))
            cause = _i(e.fields.get("Cause"), -1)
            if leg is not None and cause > 0 and leg.cause is None:
                leg.cause = cause
        elif isinstance(e, ev.ContactStatus):
            self._on_contact_status(e.endpoint_name or e.aor or "", e.uri or "",
                                    e.contact_status or "")
        elif isinstance(e, ev.BridgeEnter):
            self._on_bridge_enter(e)
        elif isinstance(e, ev.BridgeLeave):
            self._on_bridge_leave(e)
        elif isinstance(e, ev.Rename):
            self._on_rename(e)
        elif isinstance(e, ev.UserEvent) and e.user_event == "AcdVoicemail":
            call_id = str(e.headers.get("Call", "") or e.uniqueid or "")
            if call_id:
                self.writer.submit("voicemail", self.store.call_event, call_id, "voicemail",
                                   at=_utc(self.clock()),
                                   detail={"file": str(e.headers.get("File", "")),
                                           "mailbox": str(e.headers.get("Mailbox", ""))},
                                   bind={"call": call_id})

    def _on_newstate(self, e: ev.Newstate) -> None:
        leg = self._legs.get(e.uniqueid or "")
        if leg is None:
            return
        leg.channel = e.channel or leg.channel
        if leg.cancelled:
            self._hangup(leg.uid, leg.call_id, leg.agent_id)
            return
        if e.channel_state == ev.CHANNEL_STATE_RINGING and not leg.ringing and leg.kind == "agent":
            leg.ringing = True
            self._feed("agent_ringing", self.acd.agent_ringing, leg.call_id, leg.agent_id,
                       call=leg.call_id, agent=leg.agent_id)
            self._release_ring(leg.call_id, leg.agent_id)

    def _on_originate_response(self, e: ev.OriginateResponse) -> None:
        leg = self._legs.get(e.uniqueid or "")
        if leg is None:
            return
        log = self.log.bind(call=leg.call_id, agent=leg.agent_id, leg=leg.uid)
        ok = (e.response or "").lower() == "success" and e.reason == 4
        if ok:
            leg.answered = True
            if e.channel:
                leg.channel = e.channel
            if leg.cancelled or leg.reported or not self._is_current(leg):
                self._hangup(leg.uid, leg.call_id, leg.agent_id)
                return
            leg.reported = True
            log.info("runtime.leg_answered", kind=leg.kind, channel=leg.channel)
            if leg.kind == "agent":
                self._release_ring(leg.call_id, leg.agent_id)
                self._feed("agent_answered", self.acd.agent_answered, leg.call_id,
                           leg.agent_id, call=leg.call_id, agent=leg.agent_id)
            else:
                self._feed("customer_answered", self.acd.customer_answered, leg.call_id,
                           call=leg.call_id, agent=leg.agent_id)
            return
        known = e.reason in _ORIGINATE_REASON or (
            leg.cause is not None and leg.cause in _HANGUP_CAUSE and leg.cause not in (0, 16))
        if not known and leg.channel is not None and not leg.gone:
            # No cause yet (Reason 0): the channel's Hangup, which follows, carries it (a
            # rejected ring is busy or rejected, not just "failed").
            leg.reason = e.reason
            return
        cause = self._cause(leg, e.reason)
        log.info("runtime.leg_failed", kind=leg.kind, reason=e.reason, cause=cause)
        self._leg_failed(leg, cause)
        if leg.channel is None:       # never got a channel: nothing will hang up later
            self._forget_leg(leg)

    def _cause(self, leg: _Leg, reason: int | None) -> str:
        if leg.cause is not None and leg.cause in _HANGUP_CAUSE and leg.cause not in (0, 16):
            return _HANGUP_CAUSE[leg.cause]
        if reason in _ORIGINATE_REASON:
            return _ORIGINATE_REASON[reason]
        if leg.channel is None:
            return "unreachable"
        return "failed"

    def _leg_failed(self, leg: _Leg, cause: str) -> None:
        """A ring or customer dial ended without an answer: tell the core once."""
        if leg.reported or leg.cancelled or not self._is_current(leg):
            leg.reported = True
            return
        leg.reported = True
        if leg.kind == "agent":
            self._drop_ring(leg.call_id, leg.agent_id)
            self._feed("ring_failed", self.acd.ring_failed, leg.call_id, leg.agent_id, cause,
                       call=leg.call_id, agent=leg.agent_id)
        else:
            self._feed("customer_dial_failed", self.acd.customer_dial_failed, leg.call_id,
                       cause, call=leg.call_id, agent=leg.agent_id)

    def _on_hangup(self, e: ev.Hangup) -> None:
        uid = e.uniqueid or ""
        self._phone_channel(e.channel or "", uid, False)
        self._bridge_of.pop(uid, None)
        self._joining.discard(uid)
        for tok in [x for x in self._expect_leave if x[0] == uid]:
            del self._expect_leave[tok]
        leg = self._legs.get(uid)
        if leg is not None:
            leg.gone = True
            if leg.cause is None and e.cause is not None:
                leg.cause = e.cause
            self._leg_gone(leg)
            return
        ctx = self._callers.get(uid)
        if ctx is not None and (e.channel == ctx.channel or not e.channel):
            self._caller_gone(ctx)
        elif ctx is None and self._expected.pop(uid, None) is not None:
            self.log.info("runtime.caller_gone_before_queue", call=uid)
            self.writer.submit("call_ended", self.store.call_ended, uid, reason="caller_hangup",
                               at=_utc(self.clock()), bind={"call": uid})

    def _leg_gone(self, leg: _Leg) -> None:
        log = self.log.bind(call=leg.call_id, agent=leg.agent_id, leg=leg.uid)
        current = self._is_current(leg)
        if leg.answered and current and not leg.cancelled:
            log.info("runtime.leg_hangup", kind=leg.kind, cause=leg.cause)
            if leg.kind == "agent":
                self._feed("agent_hung_up", self.acd.agent_hung_up, leg.call_id, leg.agent_id,
                           call=leg.call_id, agent=leg.agent_id)
                # A callback's customer still being dialled: abort that dial.
                cust = self._legs.get(self._customer_leg.get(leg.call_id, ""))
                if cust is not None and not cust.answered:
                    cust.cancelled = True
                    self._hangup(cust.uid, cust.call_id, cust.agent_id)
            else:
                self._feed("caller_hung_up", self.acd.caller_hung_up, leg.call_id,
                           call=leg.call_id, agent=leg.agent_id)
        elif not leg.answered:
            self._leg_failed(leg, self._cause(leg, leg.reason))
        self._forget_leg(leg)

    def _caller_gone(self, ctx: _Caller) -> None:
        ctx.gone = True
        self._callers.pop(ctx.call_id, None)
        if ctx.session is not None:
            ctx.session.done = True
        if ctx.sent or self._call_state(ctx.call_id) is None:
            return          # sent on already, or not registered yet (caller_arrived sees it)
        self.log.info("runtime.caller_hangup", call=ctx.call_id, channel=ctx.channel)
        self._feed("caller_hung_up", self.acd.caller_hung_up, ctx.call_id, call=ctx.call_id)

    def _on_bridge_enter(self, e: ev.BridgeEnter) -> None:
        uid = e.uniqueid or ""
        bridge = e.bridge_uniqueid or ""
        if uid and bridge:
            self._bridge_of[uid] = bridge
            self._members.setdefault(bridge, set()).add(uid)
            self._joining.discard(uid)
        leg = self._legs.get(uid)
        if leg is not None:
            leg.bridged = True
        ctx = self._callers.get(uid)
        if ctx is not None:
            ctx.bridged = True

    def _on_bridge_leave(self, e: ev.BridgeLeave) -> None:
        """Whoever leaves a conversation's bridge first hung up (the other side follows: the
        dialplan hangs it up). The Hangup events come later, in either order, so the first
        BridgeLeave is what tells the caller's hangup from the agent's.

        Call control moves channels between bridges itself (hold, resume, transfers): a leave
        we caused is expected and no hangup, and so are the leaves that follow from any leave
        (the others in a two-party bridge are put out as it dissolves)."""
        uid = e.uniqueid or ""
        bridge = e.bridge_uniqueid or ""
        members = self._members.get(bridge)
        if members is not None:
            members.discard(uid)
            for other in members:
                self._expect_leave[(other, bridge)] += 1
            if not members:
                del self._members[bridge]
        if self._bridge_of.get(uid) == bridge:
            del self._bridge_of[uid]
        for tok in ((uid, bridge), (uid, "*")):
            if self._expect_leave.get(tok):
                self._unexpect([tok])
                return
        leg = self._legs.get(uid)
        if leg is not None and leg.answered and self._is_current(leg) and not leg.cancelled:
            self.log.info("runtime.left_bridge", call=leg.call_id, agent=leg.agent_id,
                          kind=leg.kind)
            if leg.kind == "agent":
                self._feed("agent_hung_up", self.acd.agent_hung_up, leg.call_id, leg.agent_id,
                           call=leg.call_id, agent=leg.agent_id)
            else:
                self._feed("caller_hung_up", self.acd.caller_hung_up, leg.call_id,
                           call=leg.call_id, agent=leg.agent_id)
            return
        ctx = self._callers.get(uid)
        if ctx is not None and ctx.bridged and not ctx.sent and e.channel == ctx.channel:
            self.log.info("runtime.left_bridge", call=ctx.call_id, kind="caller")
            self._feed("caller_hung_up", self.acd.caller_hung_up, ctx.call_id,
                       call=ctx.call_id)

    def _on_rename(self, e: ev.Rename) -> None:
        uid = e.uniqueid or ""
        if not e.new_name or "<ZOMBIE>" in e.new_name or e.new_name.startswith("Surrogate/"):
            return
        leg = self._legs.get(uid)
        if leg is not None:
            leg.channel = e.new_name
        ctx = self._callers.get(uid)
        if ctx is not None:
            ctx.channel = e.new_name

    def _on_contact_status(self, endpoint: str, uri: str, status: str) -> None:
        if endpoint not in self._agent_of_endpoint:
            return
        s = status.strip().lower()
        if s not in _CONTACT_STATUSES or not uri:   # not Asterisk's: the phone is as it was
            self.log.warning("runtime.contact_status_ignored", endpoint=endpoint, uri=uri[:200],
                             status=status[:40])
            return
        contacts = self._contacts.setdefault(endpoint, {})
        if s == "removed":
            contacts.pop(uri, None)
        else:
            contacts[uri] = s in _REACHABLE
        was = self._reachable.get(endpoint)
        self._set_reachable(endpoint, any(contacts.values()))
        if (s == "unreachable" and was and not self._reachable[endpoint]
                and self._buffer is None and not self._asterisk_stopping):
            # The phone stopped answering (its qualify failed): a ring or a conversation on
            # it cannot go on. The core takes the caller back (see Acd.phone_lost).
            agent = self._agent_of_endpoint[endpoint]
            self.log.warning("runtime.phone_lost", agent=agent, endpoint=endpoint, uri=uri)
            self._feed("phone_lost", self.acd.phone_lost, agent, "unreachable", agent=agent)

    def _endpoint_of(self, channel: str) -> str | None:
        """The agent endpoint a channel belongs to (``PJSIP/1001-0000002a``), or None."""
        if not channel.startswith("PJSIP/"):
            return None
        ep = channel[6:].rpartition("-")[0]
        return ep if ep in self._agent_of_endpoint else None

    def _phone_channel(self, channel: str, uid: str, up: bool) -> None:
        """A channel of an agent's phone came or went: the core hears when the phone turns
        in use or free (no ring reaches a phone still closing its last call)."""
        if not uid:
            return
        # A hangup finds its phone by the channel's Uniqueid, whatever the name is by then.
        ep = self._phone_of.get(uid) if not up else None
        ep = ep or self._endpoint_of(channel)
        if ep is None:
            return
        for seen in self._phone_logs:
            seen.append((ep, uid, up))
        calls = self._phone_calls.setdefault(ep, set())
        before = bool(calls)
        if up:
            calls.add(uid)
            self._phone_of[uid] = ep
        else:
            calls.discard(uid)
            self._phone_of.pop(uid, None)
        if bool(calls) != before:
            self._feed("phone_in_use", self.acd.phone_in_use, ep, bool(calls),
                       agent=self._agent_of_endpoint.get(ep))

    async def _channels_and_since(self) -> tuple[list[dict[str, Any]],
                                                 list[tuple[str, str, bool]]]:
        """CoreShowChannels, and the phones' channel events seen while it was read (for
        :meth:`_phones_in_use`: a Hangup that overtakes the list is not undone by it)."""
        seen: list[tuple[str, str, bool]] = []
        self._phone_logs.append(seen)
        try:
            return await self._channels(), seen
        finally:
            self._phone_logs.remove(seen)

    def _phones_in_use(self, channels: Iterable[Mapping[str, Any]],
                       since: Sequence[tuple[str, str, bool]] = ()) -> None:
        """Take the phones' channels up from CoreShowChannels (start-up and reconcile), then
        what was seen while it was read (``since``); tell the core of each phone whose use
        changed."""
        now: dict[str, set[str]] = {}
        for c in channels:
            ep = self._endpoint_of(str(c.get("Channel") or ""))
            if ep is not None and c.get("Uniqueid"):
                now.setdefault(ep, set()).add(str(c["Uniqueid"]))
        for ep, uid, up in since:
            if up:
                now.setdefault(ep, set()).add(uid)
            else:
                now.get(ep, set()).discard(uid)
        self._phone_of = {uid: ep for ep, uids in now.items() for uid in uids}
        for ep in set(now) | set(self._phone_calls):
            was = bool(self._phone_calls.get(ep))
            self._phone_calls[ep] = now.get(ep, set())
            if was != bool(now.get(ep)):
                self._feed("phone_in_use", self.acd.phone_in_use, ep, bool(now.get(ep)),
                           agent=self._agent_of_endpoint.get(ep))

    def _set_reachable(self, endpoint: str, reachable: bool) -> None:
        if self._reachable.get(endpoint) == reachable:
            return
        self._reachable[endpoint] = reachable
        self.log.info("runtime.phone", endpoint=endpoint, reachable=reachable)
        if self._buffer is None:
            self._feed("contact_status", self.acd.contact_status, endpoint, reachable,
                       agent=self._agent_of_endpoint.get(endpoint))

    # ---- Asterisk stopped or restarted under us

    def _asterisk_shutdown(self) -> None:
        """Asterisk says it is shutting down (SoftHangupRequest with the shutdown flag on
        every channel, then the Shutdown event): its calls are lost, and no phone can ring
        until it is back (the reconnect reads the phones again)."""
        if self._asterisk_stopping or self._buffer is not None:
            return
        self._asterisk_stopping = True
        self.log.warning("runtime.asterisk_stopping")
        self._contacts = {}
        for ep in self._agent_of_endpoint:
            self._set_reachable(ep, False)
        self._asterisk_lost("asterisk_shutdown")

    def _asterisk_lost(self, cause: str, keep: Collection[str] = ()) -> None:
        """Every channel in Asterisk is gone: forget our callers and legs (their hangups, if
        any come, are no news) and let the core end the calls as lost. Outbound calls are
        left to their legs' hangups; ``keep``: calls already in the new Asterisk."""
        outbound = {leg.call_id for leg in self._legs.values()
                    if (self.acd.control_info(leg.call_id) or {}).get("outbound")}
        self.log.warning("runtime.asterisk_lost", cause=cause, callers=len(self._callers),
                         legs=len(self._legs))
        for leg in list(self._legs.values()):
            if leg.call_id not in outbound and leg.call_id not in keep:
                leg.gone = leg.reported = True
                self._forget_leg(leg)
        for ctx in list(self._callers.values()):
            if ctx.call_id in keep:
                continue
            ctx.gone = True
            if ctx.session is not None:
                ctx.session.done = True
            del self._callers[ctx.call_id]
        self._held_ring.clear()
        self._bridge_of.clear()
        self._members.clear()
        self._expect_leave.clear()
        self._joining.clear()
        now = _utc(self.clock())
        for uid in list(self._expected):       # handed to the queue, never arrived there
            del self._expected[uid]
            self.writer.submit("lost", self.store.call_event, uid, "lost", at=now,
                               detail={"detail": cause}, bind={"call": uid})
            self.writer.submit("call_ended", self.store.call_ended, uid,
                               reason=EndReason.LOST.value, at=now, bind={"call": uid})
        self._feed("channels_lost", lambda now: self.acd.channels_lost(cause, now, keep=keep))

    async def _core_started(self) -> str | None:
        """When the running Asterisk started (AMI CoreStatus), to tell a restart from a cut
        link; None if it cannot be read."""
        try:
            r = await self.ami.action("CoreStatus")
        except AmiActionError:
            return None
        date, at = r.get("CoreStartupDate"), r.get("CoreStartupTime")
        return f"{date} {at}" if date and at else None

    # ================================================================ feeding the core

    def _feed(self, what: str, fn: Callable[..., list[Decision]], *args: Any,
              **bind: Any) -> list[Decision]:
        """Call a core event with ``now``; log a refusal; carry out the decisions."""
        try:
            out = fn(*args, self.clock())
        except AcdError as exc:
            self.log.warning("runtime.event_refused", event_name=what, error=exc.id,
                             message=exc.message, **bind)
            return []
        except Exception:
            self.log.exception("runtime.core_error", event_name=what, **bind)
            return []
        self._apply(out)
        return out

    def _apply(self, decisions: Iterable[Decision]) -> None:
        """Carry out decisions in order. AMI actions become tasks (a chain per call)."""
        changed = False
        for d in decisions:
            try:
                changed |= self._do(d)
            except Exception:
                self.log.exception("runtime.decision_failed", decision=type(d).__name__,
                                   call=getattr(d, "call_id", None),
                                   agent=getattr(d, "agent_id", None))
        if changed:
            self._snapshot_soon()

    def _do(self, d: Decision) -> bool:
        if isinstance(d, StartTimer):
            self._start_timer(d.key, d.at)
            return False
        if isinstance(d, CancelTimer):
            entry = self._timers.pop(d.key, None)
            if entry is not None:
                entry[1].cancel()
            return False
        if isinstance(d, Notify):
            self._notify(d)
            return d.event == "state"
        if isinstance(d, RecordCallEvent):
            self._record_call(d)
            return True
        if isinstance(d, RecordAgentState):
            self.writer.submit("agent_state", self.store.agent_state, d.agent_id, d.state.value,
                               reason=d.reason, at=_utc(d.at), previous=d.previous.value,
                               call_uniqueid=d.call_id, bind={"agent": d.agent_id})
            return True
        if isinstance(d, (RingAgent, RingAgentForCallback)):
            self._ring(d)
        elif isinstance(d, CancelRing):
            self._cancel_ring(d.call_id, d.agent_id)
        elif isinstance(d, BridgeCall):
            self._chain(d.call_id, self._bridge(d.call_id, d.agent_id))
        elif isinstance(d, DialCustomer):
            self._dial_customer(d)
        elif isinstance(d, SendToDestination):
            self._send(d)
        elif isinstance(d, Announce):
            ctx = self._callers.get(d.call_id)
            if ctx is not None and ctx.session is not None and not ctx.session.detached:
                ctx.session.push("announce", (d.position, d.estimated_wait))
            return False
        else:
            return self._do_control(d)
        return True

    # ---- timers

    def _start_timer(self, key: str, at: float) -> None:
        old = self._timers.pop(key, None)
        if old is not None:
            old[1].cancel()
        loop = self._loop or asyncio.get_running_loop()
        handle = loop.call_later(max(0.0, at - self.clock()), self._fire, key)
        self._timers[key] = (at, handle)

    def _fire(self, key: str) -> None:
        if self._timers.pop(key, None) is None or self._stopping:
            return
        self._feed("timer_fired", self.acd.timer_fired, key, timer=key)

    def timers(self) -> dict[str, float]:
        """The timers we hold for the core: key -> due time (for tests and supervisors)."""
        return {k: at for k, (at, _) in self._timers.items()}

    def fire_timer(self, key: str) -> None:
        """Fire a timer now (tests drive time this way with an injected clock)."""
        entry = self._timers.get(key)
        if entry is not None:
            entry[1].cancel()
            self._fire(key)

    # ---- notifications

    def _notify(self, d: Notify) -> None:
        key = (str(d.payload.get("call_id", "")), d.agent_id)
        if d.event == "ring":
            leg = self._legs.get(self._leg_of.get(key, ""))
            if leg is not None and (leg.ringing or leg.answered):
                self._publish(d)
            else:                      # the screen pops when the phone rings
                self._held_ring[key] = d
            return
        if d.event == "answered":
            self._release_ring(*key)
        elif d.event == "ended":
            self._held_ring.pop(key, None)
        elif d.event == "state":
            self._save_pending(d)
        self._publish(d)

    def _release_ring(self, call_id: str, agent_id: str) -> None:
        held = self._held_ring.pop((call_id, agent_id), None)
        if held is not None:
            self._publish(held)

    def _drop_ring(self, call_id: str, agent_id: str) -> None:
        self._held_ring.pop((call_id, agent_id), None)

    def _publish(self, d: Notify) -> None:
        try:
            self.hub.publish(f"agent:{d.agent_id}", {"type": d.event, **d.payload})
        except Exception:
            self.log.exception("runtime.publish_failed", agent=d.agent_id)

    def _save_pending(self, d: Notify) -> None:
        pending = d.payload.get("pending")
        reason = d.payload.get("pending_reason") or ""
        if self._pending_saved.get(d.agent_id, (None, "")) == (pending, reason):
            return
        self._pending_saved[d.agent_id] = (pending, reason)
        self.writer.submit("agent_pending", self.store.agent_pending, d.agent_id, pending,
                           reason=reason, at=_utc(self.clock()), bind={"agent": d.agent_id})

    def _snapshot_soon(self) -> None:
        """Publish the supervisors' snapshot once per loop turn, after the last change."""
        if self._snapshot_due:
            return
        self._snapshot_due = True
        loop = self._loop or asyncio.get_running_loop()
        loop.call_soon(self._publish_snapshot)

    def _publish_snapshot(self) -> None:
        self._snapshot_due = False
        try:
            now = self.clock()
            self.hub.publish("supervisor", {"type": "snapshot",
                                            "queues": self.acd.snapshot_queues(now),
                                            "agents": self.acd.snapshot_agents(now)})
        except Exception:
            self.log.exception("runtime.snapshot_failed")

    # ---- records

    def _record_call(self, d: RecordCallEvent) -> None:
        rec = d.record
        call_id = d.call_id
        at = _utc(rec.at)
        bind = {"call": call_id}
        if rec.kind is CallEventKind.ENDED:
            reason = rec.end_reason.value if rec.end_reason else "ended"
            self.writer.submit("call_ended", self.store.call_ended, call_id, reason=reason,
                               at=at, bind=bind)
            self.log.info("runtime.call_ended", call=call_id, reason=reason, agent=rec.agent_id)
            self._after_end(call_id, rec.end_reason)
            return
        detail: dict[str, Any] = {"group": rec.group}
        if rec.agent_id:
            detail["agent"] = rec.agent_id
        if rec.detail:
            detail["detail"] = rec.detail
        kind = "acd_arrived" if rec.kind is CallEventKind.ARRIVED else rec.kind.value
        self.writer.submit(kind, self.store.call_event, call_id, kind, at=at, detail=detail,
                           bind=bind)
        if rec.kind is CallEventKind.QUEUED:
            self.writer.submit("call_group", self.store.call_update, call_id,
                               skill_group=rec.group, bind=bind)
            ctx = self._callers.get(call_id)
            if ctx is not None and rec.group and ctx.group != rec.group and not ctx.gone:
                # Overflow into another group: the channel carries where it waits now.
                ctx.group = rec.group
                self._chain(call_id, self._setvars(ctx.channel, call_id, ACD_GROUP=rec.group,
                                                   ACD_ENTERED=f"{rec.at:.6f}"))
        elif rec.kind is CallEventKind.ANSWERED:
            self.writer.submit("call_answered", self.store.call_update, call_id,
                               answered_at=at, bind=bind)

    def _after_end(self, call_id: str, reason: EndReason | None) -> None:
        """The call ended in the core: no leg of it may stay up. After a conversation the
        caller's side goes too (the dialplan hangs it up as well, once the bridge is gone)."""
        # A caller on their way to the survey must have left the bridge (or have ACD_SURVEY
        # set) before their agent's leg goes: then the legs go after the call's actions so
        # far; else at once.
        ctx = self._callers.get(call_id)
        after_actions = ctx is not None and ctx.sent and not ctx.gone
        for leg in [leg for leg in self._legs.values() if leg.call_id == call_id]:
            if not leg.gone and not leg.cancelled:
                leg.cancelled = True
                if after_actions:
                    self._chain(call_id, self._hangup_action(leg.uid, call_id, leg.agent_id))
                else:
                    self._hangup(leg.uid, call_id, leg.agent_id)
        if ctx is not None and reason in _CONNECTED_ENDS and not ctx.gone and not ctx.sent:
            self._hangup(ctx.channel, call_id, None)
        if ctx is not None and ctx.session is not None:
            ctx.session.done = True

    # ================================================================ AMI out

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task:
        loop = self._loop or asyncio.get_running_loop()
        task = loop.create_task(coro, name=f"runtime-{name}")  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error("runtime.task_failed", task=task.get_name(), exc_info=task.exception())

    def _chain(self, key: str, coro: Awaitable[Any]) -> None:
        """Run ``coro`` after the earlier actions of the same call (their order matters)."""
        before = self._chains.get(key)

        async def run() -> None:
            if before is not None and not before.done():
                await asyncio.gather(before, return_exceptions=True)
            await coro

        task = self._spawn(run(), f"call-{key}")
        self._chains[key] = task
        task.add_done_callback(lambda t, k=key: self._chains.pop(k, None)
                               if self._chains.get(k) is t else None)

    async def _action(self, name: str, *, call: str | None = None, agent: str | None = None,
                      quiet_errors: tuple[str, ...] = (), **fields: Any) -> Any:
        """One AMI action; errors are logged with the call and agent, then raised."""
        try:
            return await self.ami.action(name, **fields)
        except AmiActionError as exc:
            if not any(q in (exc.message or "") for q in quiet_errors):
                self.log.warning("runtime.action_failed", action=name, call=call, agent=agent,
                                 error=exc.message)
            raise
        except AmiError as exc:
            if self._stopping or getattr(self.ami, "closing", False):
                # our own stop closed the link under it: nothing to report as an error
                self.log.info("runtime.action_dropped_at_stop", action=name, call=call,
                              agent=agent, error=str(exc))
            else:
                self.log.error("runtime.action_failed", action=name, call=call, agent=agent,
                               error=str(exc))
            raise

    def _hangup(self, channel: str, call_id: str | None, agent_id: str | None) -> None:
        self._spawn(self._hangup_action(channel, call_id, agent_id), "hangup")

    async def _hangup_action(self, channel: str, call_id: str | None,
                             agent_id: str | None) -> None:
        try:
            await self._action("Hangup", call=call_id, agent=agent_id,
                               quiet_errors=("No such channel",), Channel=channel)
        except AmiError:
            pass

    async def _setvars(self, channel: str, call_id: str, **values: str) -> None:
        for name, value in values.items():
            try:
                await self._action("Setvar", call=call_id, Channel=channel, Variable=name,
                                   Value=value)
            except AmiError:
                return

    def _new_leg(self, kind: str, call_id: str, agent_id: str) -> _Leg:
        self._leg_seq += 1
        uid = f"acd-{self._boot}-{self._leg_seq}-{kind[0]}{agent_id}"[:60]
        leg = _Leg(uid, kind, call_id, agent_id)
        self._legs[uid] = leg
        return leg

    def _is_current(self, leg: _Leg) -> bool:
        if leg.kind == "agent":
            return self._leg_of.get((leg.call_id, leg.agent_id)) == leg.uid
        return self._customer_leg.get(leg.call_id) == leg.uid

    def _forget_leg(self, leg: _Leg) -> None:
        self._legs.pop(leg.uid, None)
        if leg.kind == "agent" and self._leg_of.get((leg.call_id, leg.agent_id)) == leg.uid:
            del self._leg_of[(leg.call_id, leg.agent_id)]
        if leg.kind == "customer" and self._customer_leg.get(leg.call_id) == leg.uid:
            del self._customer_leg[leg.call_id]

    def _ring(self, d: RingAgent | RingAgentForCallback) -> None:
        old = self._legs.get(self._leg_of.get((d.call_id, d.agent_id), ""))
        if old is not None:
            old.cancelled = True
            self._hangup(old.uid, old.call_id, old.agent_id)
        leg = self._new_leg("agent", d.call_id, d.agent_id)
        self._leg_of[(d.call_id, d.agent_id)] = leg.uid
        if isinstance(d, RingAgent):
            ctx = self._callers.get(d.call_id)
            cid_num = _cid_text(d.caller_number)
            cid_name = _cid_text(ctx.caller_name if ctx else "") or cid_num
        else:
            cid_num = _cid_text(d.number)
            cid_name = f"Callback {cid_num}"
        self.log.info("runtime.ring", call=d.call_id, agent=d.agent_id, leg=leg.uid,
                      endpoint=d.endpoint, callback=isinstance(d, RingAgentForCallback))

        async def originate() -> None:
            try:
                await self._action(
                    "Originate", call=d.call_id, agent=d.agent_id,
                    Channel=f"PJSIP/{d.endpoint}", Context=AGENT_CONTEXT, Exten="s",
                    Priority=1, Timeout=int((d.timeout + self.ring_grace) * 1000),
                    CallerID=f'"{cid_name}" <{cid_num}>' if cid_num else None,
                    Async="true", ChannelId=leg.uid,
                    Variable=[f"ACD_CALL={d.call_id}", f"ACD_AGENT={d.agent_id}",
                              f"ACD_LEG={leg.uid}", f"ACD_GROUP={d.group}"])
            except AmiError as exc:
                self._leg_failed(leg, "originate_failed")
                if isinstance(exc, AmiActionError):   # refused: no channel will appear
                    self._forget_leg(leg)
        self._chain(d.call_id, originate())

    def _cancel_ring(self, call_id: str, agent_id: str) -> None:
        self._drop_ring(call_id, agent_id)
        uids = [self._leg_of.get((call_id, agent_id), "")]
        cust = self._customer_leg.get(call_id)
        if cust is not None and self._legs[cust].agent_id == agent_id:
            uids.append(cust)
        for uid in uids:
            leg = self._legs.get(uid)
            if leg is None or leg.cancelled:
                continue
            leg.cancelled = True
            self.log.info("runtime.cancel_ring", call=call_id, agent=agent_id, leg=uid,
                          kind=leg.kind)
            if not leg.gone:
                self._hangup(uid, call_id, agent_id)

    async def _bridge(self, call_id: str, agent_id: str) -> None:
        log = self.log.bind(call=call_id, agent=agent_id)
        leg = self._legs.get(self._leg_of.get((call_id, agent_id), ""))
        cust = self._legs.get(self._customer_leg.get(call_id, ""))
        ctx = self._callers.get(call_id)
        if leg is None or leg.channel is None:
            log.error("runtime.bridge_no_agent_leg")
            return
        if cust is not None and cust.answered:
            other = cust.channel
        elif ctx is not None and not ctx.gone:
            other = ctx.channel
        else:
            log.warning("runtime.bridge_no_caller")
            return
        caller_side = ctx is not None and other == ctx.channel
        if caller_side and ctx.session is not None:
            ctx.session.done = True
        try:
            await self._action("Bridge", call=call_id, agent=agent_id, Channel1=other,
                               Channel2=leg.channel, Tone="no")
            self._joined(leg.uid, call_id if caller_side else (cust.uid if cust else ""))
            log.info("runtime.bridged", caller_channel=other, agent_channel=leg.channel)
        except AmiError:
            return          # a leg went: its Hangup ends the call; a reconnect re-bridges
        if caller_side:
            # After the bridge the caller goes on at the queue's next priority, which hangs
            # up when this is set. Set after (not before) the Bridge: a caller in the retry
            # loop must never see it while still waiting. Should the bridge end before this
            # lands, the queue script finds the call over and says goodbye.
            try:
                await self._action("Setvar", call=call_id, agent=agent_id, Channel=other,
                                   Variable="ACD_BRIDGED", Value="1")
            except AmiError:
                pass

    def _dial_customer(self, d: DialCustomer) -> None:
        if not NUMBER.match(d.number or ""):
            self.log.warning("runtime.bad_callback_number", call=d.call_id, agent=d.agent_id)
            self._spawn(self._later_feed("customer_dial_failed", self.acd.customer_dial_failed,
                                         d.call_id, "invalid_number", call=d.call_id),
                        "dial-failed")
            return
        old = self._legs.get(self._customer_leg.get(d.call_id, ""))
        if old is not None and not old.gone:
            old.cancelled = True
            self._hangup(old.uid, d.call_id, d.agent_id)
        leg = self._new_leg("customer", d.call_id, d.agent_id)
        self._customer_leg[d.call_id] = leg.uid
        self.log.info("runtime.dial_customer", call=d.call_id, agent=d.agent_id, leg=leg.uid)

        async def originate() -> None:
            try:
                await self._action(
                    "Originate", call=d.call_id, agent=d.agent_id,
                    Channel=self.customer_dial.format(number=d.number),
                    Context=CUSTOMER_CONTEXT, Exten="s", Priority=1,
                    Timeout=int(d.timeout * 1000), CallerID=self._outbound_cid(),
                    Async="true", ChannelId=leg.uid,
                    Variable=[f"ACD_CALL={d.call_id}", f"ACD_AGENT={d.agent_id}",
                              f"ACD_LEG={leg.uid}"])
            except AmiError:
                self._leg_failed(leg, "originate_failed")
                self._forget_leg(leg)
        self._chain(d.call_id, originate())

    async def _later_feed(self, what: str, fn: Callable[..., list[Decision]], *args: Any,
                          **bind: Any) -> None:
        await asyncio.sleep(0)
        self._feed(what, fn, *args, **bind)

    def _send(self, d: SendToDestination) -> None:
        ctx = self._callers.get(d.call_id)
        dest = d.destination
        kind = DestinationKind(dest.kind)
        log = self.log.bind(call=d.call_id)
        log.info("runtime.send", destination=str(dest), reason=d.reason)
        if ctx is None or ctx.gone:
            return
        if kind is DestinationKind.GROUP:
            return
        ctx.sent = True
        if ctx.session is not None:
            ctx.session.done = True
        setvars: dict[str, str] = {}
        if kind is DestinationKind.VOICEMAIL:
            context, exten = VOICEMAIL_CONTEXT, "s"
            setvars["ACD_VM_BOX"] = _BOX.sub("_", dest.target)[:40] or "default"
        elif kind is DestinationKind.CALLBACK:
            context, exten = DEST_CONTEXT, "callback"
        elif kind is DestinationKind.IVR:
            context, exten = DEST_CONTEXT, "ivr"
            if dest.target and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", dest.target):
                setvars["ACD_FLOW"] = dest.target      # the flow runner starts this flow
        else:
            context, exten = DEST_CONTEXT, "hangup"
            if dest.target and re.fullmatch(r"[A-Za-z0-9_/-]{1,64}", dest.target):
                setvars["ACD_SOUND"] = dest.target
        channel = ctx.channel

        async def redirect() -> None:
            await self._setvars(channel, d.call_id, **setvars)
            try:
                await self._action("Redirect", call=d.call_id, Channel=channel,
                                   Context=context, Exten=exten, Priority=1)
            except AmiError:
                pass
        self._chain(d.call_id, redirect())

    # ================================================================ call control out

    def _do_control(self, d: Any) -> bool:
        """Carry out a call-control decision (see :mod:`acd.core.control`)."""
        if isinstance(d, RecordControl):
            detail = dict(d.detail)
            if d.agent_id:
                detail["agent"] = d.agent_id
            self.writer.submit(d.kind, self.store.call_event, d.call_id, d.kind, at=_utc(d.at),
                               detail=detail, bind={"call": d.call_id})
            return True
        if isinstance(d, RecordLeg):
            self.writer.submit("call_leg", self.store.call_leg, d.call_id, agent_id=d.agent_id,
                               role=d.role, started_at=_utc(d.started_at),
                               ended_at=_utc(d.ended_at), talk=d.talk, hold=d.hold,
                               reason=d.reason, bind={"call": d.call_id, "agent": d.agent_id})
            return False
        if isinstance(d, RecordLegWrapup):
            self.writer.submit("call_leg_wrapup", self.store.call_leg_wrapup, d.call_id,
                               d.agent_id, d.seconds, bind={"call": d.call_id,
                                                            "agent": d.agent_id})
            return False
        if isinstance(d, HoldCaller):
            self._hold(d.call_id, d.agent_id)
        elif isinstance(d, ResumeCaller):
            self._join(d.call_id, d.agent_id, "resume")
        elif isinstance(d, BridgeTarget):
            self._join(d.call_id, d.agent_id, "transfer")
        elif isinstance(d, RingTarget):
            ctx = self._callers.get(d.call_id)
            cid_num = _cid_text(d.caller_number)
            cid_name = _cid_text(ctx.caller_name if ctx else "") or cid_num
            self._originate_agent(d.call_id, d.agent_id, d.endpoint, d.timeout, cid_num,
                                  cid_name, HOLD_CONTEXT, "agent", role=d.role)
        elif isinstance(d, BridgeConsult):
            self._bridge_consult(d.call_id, d.agent_id, d.target_id)
        elif isinstance(d, DropLeg):
            self._drop_leg(d.call_id, d.agent_id)
        elif isinstance(d, RequeueCaller):
            self._requeue(d)
        elif isinstance(d, InviteRating):
            ctx = self._callers.get(d.call_id)
            if ctx is not None and not ctx.gone:
                ctx.survey = True
                self._chain(d.call_id, self._setvars(ctx.channel, d.call_id, ACD_SURVEY="1"))
        elif isinstance(d, SendToSurvey):
            self._to_survey(d.call_id, d.redirect)
        elif isinstance(d, RingAgentForOutbound):
            self._originate_agent(d.call_id, d.agent_id, d.endpoint, d.timeout,
                                  _cid_text(d.number), "Outbound call", AGENT_CONTEXT, "s",
                                  role="outbound")
        elif isinstance(d, OutboundStarted):
            self.log.info("runtime.outbound", call=d.call_id, agent=d.agent_id)
            self.writer.submit("outbound", self.store.outbound_call, uniqueid=d.call_id,
                               agent_id=d.agent_id, number=d.number, at=_utc(d.at),
                               bind={"call": d.call_id, "agent": d.agent_id})
        elif isinstance(d, OutboundEnded):
            self.log.info("runtime.outbound_ended", call=d.call_id, agent=d.agent_id,
                          reason=d.reason, cause=d.cause or None)
            if d.cause:
                self.writer.submit("outbound_failed", self.store.call_event, d.call_id,
                                   "dial_failed", at=_utc(d.at), detail={"cause": d.cause},
                                   bind={"call": d.call_id})
            self.writer.submit("call_ended", self.store.call_ended, d.call_id, reason=d.reason,
                               at=_utc(d.at), bind={"call": d.call_id})
            self._after_end(d.call_id, None)
        else:
            return False
        return True

    def _outbound_cid(self) -> str | None:
        """Caller id of calls to customers: ``outbound.caller_id``, else the hotline."""
        if self.outbound_caller_id:
            return self.outbound_caller_id
        return f"<{self.hotline_number}>" if self.hotline_number else None

    def _owner_leg(self, call_id: str, agent_id: str) -> _Leg | None:
        return self._legs.get(self._leg_of.get((call_id, agent_id), ""))

    def _expect_move(self, uid: str) -> tuple[str, str] | None:
        """We are about to move this channel out of its bridge (if it is in one): its leave
        is no hangup. A channel we bridged whose BridgeEnter has not come yet is expected to
        leave whatever bridge it is in (``*``)."""
        bridge = self._bridge_of.get(uid) or ("*" if uid in self._joining else None)
        if bridge is None:
            return None
        self._expect_leave[(uid, bridge)] += 1
        return (uid, bridge)

    def _joined(self, *uids: str) -> None:
        """We bridged these channels: until their BridgeEnter comes, a move expects them in
        some bridge."""
        for uid in uids:
            if uid and uid not in self._bridge_of:
                self._joining.add(uid)

    def _unexpect(self, tokens: Iterable[tuple[str, str] | None]) -> None:
        for tok in tokens:
            if tok is not None and self._expect_leave.get(tok):
                self._expect_leave[tok] -= 1
                if not self._expect_leave[tok]:
                    del self._expect_leave[tok]

    def _hold(self, call_id: str, agent_id: str) -> None:
        """The caller to music on hold, the owner's leg to silence: one dual Redirect."""
        ctx = self._callers.get(call_id)
        leg = self._owner_leg(call_id, agent_id)
        log = self.log.bind(call=call_id, agent=agent_id)
        if ctx is None or ctx.gone or leg is None or leg.channel is None or leg.gone:
            log.error("runtime.hold_no_legs")
            return
        held_at = f"{self.clock():.6f}"

        async def run() -> None:
            caller, agent = ctx.channel, leg.channel
            await self._setvars(caller, call_id, ACD_OWNER=agent_id, ACD_HELD_AT=held_at)
            tokens = [self._expect_move(call_id), self._expect_move(leg.uid)]
            try:
                await self._action("Redirect", call=call_id, agent=agent_id, Channel=caller,
                                   Context=HOLD_CONTEXT, Exten="caller", Priority=1,
                                   ExtraChannel=agent, ExtraContext=HOLD_CONTEXT,
                                   ExtraExten="agent", ExtraPriority=1)
                log.info("runtime.held", caller_channel=caller, agent_channel=agent)
            except AmiError:
                self._unexpect(tokens)
        self._chain(call_id, run())

    def _join(self, call_id: str, agent_id: str, why: str) -> None:
        """Bridge the caller with this agent's leg (resume, or a transfer's target)."""
        ctx = self._callers.get(call_id)
        leg = self._owner_leg(call_id, agent_id)
        log = self.log.bind(call=call_id, agent=agent_id)
        if ctx is None or ctx.gone or leg is None or leg.channel is None or leg.gone:
            log.error("runtime.join_no_legs", why=why)
            return

        async def run() -> None:
            # The agent's leg first: should the caller not join, Asterisk puts the agent's
            # leg out of the new bridge (back to waiting), never the caller (whose dialplan
            # would end the call after a bridge). A leg in transition (a consult bridge
            # dissolving) can refuse for a moment: try again while the core still wants it.
            for attempt in range(JOIN_ATTEMPTS):
                if leg.channel is None or leg.gone or ctx.gone or (
                        attempt and not self._wants_join(call_id, agent_id)):
                    return
                if attempt == 0:
                    await self._setvars(ctx.channel, call_id, ACD_OWNER=agent_id,
                                        ACD_HELD_AT="")
                tokens = [self._expect_move(call_id), self._expect_move(leg.uid)]
                try:
                    await self._action("Bridge", call=call_id, agent=agent_id,
                                       Channel1=leg.channel, Channel2=ctx.channel, Tone="no")
                    self._joined(call_id, leg.uid)
                    log.info("runtime.joined", why=why, caller_channel=ctx.channel,
                             agent_channel=leg.channel)
                    return
                except AmiError as exc:
                    self._unexpect(tokens)
                    if "does not exist" in str(exc):
                        return                  # a leg went: its Hangup says what next
                await asyncio.sleep(JOIN_RETRY_SECONDS)
            log.error("runtime.join_failed", why=why)
        self._chain(call_id, run())

    def _wants_join(self, call_id: str, agent_id: str) -> bool:
        info = self.acd.control_info(call_id)
        return bool(info and info["state"] == "talking" and info["owner"] == agent_id)

    def _bridge_consult(self, call_id: str, agent_id: str, target_id: str) -> None:
        owner = self._owner_leg(call_id, agent_id)
        target = self._owner_leg(call_id, target_id)
        log = self.log.bind(call=call_id, agent=agent_id, target=target_id)
        if owner is None or target is None or owner.channel is None or target.channel is None:
            log.error("runtime.consult_no_legs")
            return

        async def run() -> None:
            tokens = [self._expect_move(owner.uid), self._expect_move(target.uid)]
            try:
                await self._action("Bridge", call=call_id, agent=agent_id,
                                   Channel1=owner.channel, Channel2=target.channel, Tone="no")
                self._joined(owner.uid, target.uid)
                log.info("runtime.consulting")
            except AmiError:
                self._unexpect(tokens)
        self._chain(call_id, run())

    def _drop_leg(self, call_id: str, agent_id: str) -> None:
        """Hang up the agent's leg once the call's earlier actions are done; no event of it
        is reported any more."""
        leg = self._owner_leg(call_id, agent_id)
        if leg is None or leg.gone or leg.cancelled:
            return
        leg.cancelled = True
        self._drop_ring(call_id, agent_id)
        self.log.info("runtime.drop_leg", call=call_id, agent=agent_id, leg=leg.uid)
        self._chain(call_id, self._hangup_action(leg.uid, call_id, agent_id))

    def _requeue(self, d: RequeueCaller) -> None:
        """The caller waits in a queue again: the queue script takes them up."""
        ctx = self._callers.get(d.call_id)
        if ctx is None or ctx.gone:
            return
        ctx.group = d.group
        ctx.bridged = False
        ctx.sent = False

        async def run() -> None:
            channel = ctx.channel
            await self._setvars(channel, d.call_id, ACD_BRIDGED="", ACD_OWNER="",
                                ACD_HELD_AT="", ACD_GROUP=d.group,
                                ACD_PRIORITY=str(d.priority),
                                ACD_ENTERED=f"{d.entered_at:.6f}")
            tokens = [self._expect_move(d.call_id)]
            try:
                await self._action("Redirect", call=d.call_id, Channel=channel,
                                   Context=QUEUE_CONTEXT, Exten="s", Priority=1)
                self.log.info("runtime.requeued", call=d.call_id, group=d.group)
            except AmiError:
                self._unexpect(tokens)
        self._chain(d.call_id, run())

    def _to_survey(self, call_id: str, redirect: bool) -> None:
        ctx = self._callers.get(call_id)
        if ctx is None or ctx.gone:
            return
        ctx.sent = True
        ctx.survey = True
        if ctx.session is not None:
            ctx.session.done = True
        self.log.info("runtime.to_survey", call=call_id, redirect=redirect)
        if not redirect:
            return            # the dialplan takes the caller there after the bridge
        async def run() -> None:
            channel = ctx.channel
            await self._setvars(channel, call_id, ACD_SURVEY="1")
            tokens = [self._expect_move(call_id)]
            try:
                await self._action("Redirect", call=call_id, Channel=channel,
                                   Context=SURVEY_CONTEXT, Exten="s", Priority=1)
            except AmiError:
                self._unexpect(tokens)
        self._chain(call_id, run())

    def _originate_agent(self, call_id: str, agent_id: str, endpoint: str, timeout: float,
                         cid_num: str, cid_name: str, context: str, exten: str, *,
                         role: str) -> None:
        """Ring an agent's phone for call control (a target, or their outbound call)."""
        old = self._legs.get(self._leg_of.get((call_id, agent_id), ""))
        if old is not None and not old.gone:
            old.cancelled = True
            self._hangup(old.uid, old.call_id, old.agent_id)
        leg = self._new_leg("agent", call_id, agent_id)
        self._leg_of[(call_id, agent_id)] = leg.uid
        self.log.info("runtime.ring", call=call_id, agent=agent_id, leg=leg.uid,
                      endpoint=endpoint, role=role)

        async def originate() -> None:
            try:
                await self._action(
                    "Originate", call=call_id, agent=agent_id, Channel=f"PJSIP/{endpoint}",
                    Context=context, Exten=exten, Priority=1,
                    Timeout=int((timeout + self.ring_grace) * 1000),
                    CallerID=f'"{cid_name}" <{cid_num}>' if cid_num else None,
                    Async="true", ChannelId=leg.uid,
                    Variable=[f"ACD_CALL={call_id}", f"ACD_AGENT={agent_id}",
                              f"ACD_LEG={leg.uid}", f"ACD_ROLE={role}"])
            except AmiError as exc:
                self._leg_failed(leg, "originate_failed")
                if isinstance(exc, AmiActionError):
                    self._forget_leg(leg)
        self._chain(call_id, originate())

    # ================================================================ restart and reconnect

    async def _channels(self) -> list[dict[str, Any]]:
        return await self.ami.action_list("CoreShowChannels", timeout=30)

    async def _contact_list(self) -> list[dict[str, Any]]:
        try:
            return await self.ami.action_list("PJSIPShowContacts", timeout=30)
        except AmiActionError as exc:
            if "no contacts" in (exc.message or "").lower():
                return []
            raise

    async def _getvars(self, channel: str, names: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for name in names:
            try:
                r = await self.ami.action("Getvar", Channel=channel, Variable=name)
                out[name] = str(r.get("Value") or "")
            except AmiActionError:
                out[name] = ""
        return out

    def _load_contacts(self, contacts: list[dict[str, Any]],
                       proven: bool = False) -> dict[str, bool]:
        """The agents' phones from PJSIPShowContacts. ``proven``: right after Asterisk came
        back from a crash, count only contacts a qualify answered: a registration younger
        than astdb's next commit (about a second) is lost, and the one Asterisk read back
        may be a phone's older address (its qualify, or the phone's next registration, tells;
        ringing it would put the agent on a no-answer break for nothing)."""
        self._contacts = {}
        for c in contacts:
            ep = str(c.get("Endpoint") or c.get("AOR") or "")
            if ep in self._agent_of_endpoint:
                status = str(c.get("Status", "")).lower()
                if proven:
                    self.log.info("runtime.contact_after_restart", endpoint=ep,
                                  uri=c.get("Uri"), status=status)
                self._contacts.setdefault(ep, {})[str(c.get("Uri", ""))] = (
                    status == "reachable" if proven else status in _REACHABLE)
        return {ep: any(self._contacts.get(ep, {}).values()) for ep in self._agent_of_endpoint}

    async def _rebuild(self) -> None:
        """First AMI login: take the state up from Asterisk and the store, then resume.

        Everything is read first; if the AMI link drops while reading, nothing was changed
        and the next login tries again. Then the core is restored in one go and resumed."""
        if self._rebuilding or self._rebuilt:
            return
        self._rebuilding = True
        log = self.log.bind(phase="rebuild")
        try:
            started = self.clock()
            try:
                snap = await self._read_state()
            except AmiError as exc:
                log.warning("runtime.rebuild_postponed", error=str(exc))
                return
            except Exception:
                log.exception("runtime.rebuild_read_failed")
                snap = None
            counts: dict[str, int] = {}
            if snap is not None:
                try:
                    counts = await self._restore(snap, log)
                except Exception:
                    log.exception("runtime.rebuild_failed")
            self._finish_rebuild(snap["reachable"] if snap else {})
            log.info("runtime.rebuilt", took=round(self.clock() - started, 3), **counts)
        finally:
            self._rebuilding = False

    async def _read_state(self) -> dict[str, Any]:
        """Asterisk's channels (with the ACD variables of ours), phones, and the store."""
        started = self.clock()
        self._asterisk_started = await self._core_started()
        channels = await self._channels()
        reachable = self._load_contacts(await self._contact_list())
        # Our legs still ringing are not in our contexts yet (the endpoint's until answered):
        # their Uniqueid, chosen by us, finds them (see _new_leg).
        wanted = [c for c in channels if c.get("Context") in (
            QUEUE_CONTEXT, AGENT_CONTEXT, CUSTOMER_CONTEXT, HOLD_CONTEXT)
            or str(c.get("Uniqueid", "")).startswith("acd-")]
        sem = asyncio.Semaphore(_GETVARS_AT_ONCE)
        caller_vars = ("ACD_GROUP", "ACD_PRIORITY", "ACD_ENTERED", "ACD_BRIDGED")
        control_vars = ("ACD_OWNER", "ACD_HELD_AT", "ACD_SURVEY")
        leg_vars = ("ACD_CALL", "ACD_AGENT", "ACD_ROLE")

        async def read(c: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
            context = c.get("Context")
            if context == QUEUE_CONTEXT:      # call control's variables only when connected
                names = caller_vars + (control_vars if c.get("BridgeId") else ())
            elif context == HOLD_CONTEXT:     # a held caller, or an agent's waiting leg
                names = (leg_vars if c.get("Exten") == "agent" else
                         caller_vars + control_vars if c.get("Exten") == "caller" else
                         leg_vars + caller_vars + control_vars)
            else:
                names = leg_vars
            async with sem:
                return c, await self._getvars(str(c["Channel"]), names)
        found = await asyncio.gather(*(read(c) for c in wanted))
        await self.writer.flush(10.0)    # replayed and queued writes first (bounded)
        return {"started": started, "channels": channels, "found": found,
                "reachable": reachable,
                "states": await self.store.latest_agent_states(),
                "pending": await self.store.latest_agent_pending(),
                "open_calls": {c["uniqueid"]: c for c in await self.store.open_calls()}}

    async def _restore(self, snap: dict[str, Any], log: Any) -> dict[str, int]:
        now = self.clock()
        reachable: dict[str, bool] = snap["reachable"]
        open_calls: dict[str, dict[str, Any]] = snap["open_calls"]
        present = {str(c.get("Uniqueid")) for c in snap["channels"]}
        found: list[tuple[dict[str, Any], dict[str, str]]] = snap["found"]
        out: list[Decision] = []
        self._phones_in_use(snap["channels"])     # before the agents: no ring to a busy phone

        # Bridges as they are now (call control tells moves from hangups by them).
        for c, _ in found:
            if c.get("BridgeId"):
                uid, bridge = str(c["Uniqueid"]), str(c["BridgeId"])
                self._bridge_of[uid] = bridge
                self._members.setdefault(bridge, set()).add(uid)

        def is_leg(c: dict[str, Any], v: dict[str, str]) -> bool:      # an agent's leg
            return (c.get("Context") in (AGENT_CONTEXT, HOLD_CONTEXT) and bool(v.get("ACD_AGENT"))
                    and bool(v.get("ACD_CALL")))

        def is_caller(c: dict[str, Any], v: dict[str, str]) -> bool:
            return c.get("Context") in (QUEUE_CONTEXT, HOLD_CONTEXT) and not v.get("ACD_AGENT")

        # Connected calls: a caller (or a callback or outbound customer) bridged with an
        # agent's leg. Consults: two agents' legs of one call bridged together.
        bridges: dict[str, list[tuple[dict[str, Any], dict[str, str]]]] = {}
        for c, v in found:
            if c.get("BridgeId"):
                bridges.setdefault(str(c["BridgeId"]), []).append((c, v))
        connected: dict[str, tuple[dict, dict, dict, dict]] = {}
        consults: dict[str, list[tuple[dict, dict]]] = {}
        for members in bridges.values():
            legs = [(c, v) for c, v in members if is_leg(c, v)]
            others = [(c, v) for c, v in members
                      if c.get("Context") == CUSTOMER_CONTEXT or is_caller(c, v)]
            if len(legs) == 1 and others:
                connected[legs[0][1]["ACD_CALL"]] = (legs[0][0], legs[0][1], others[0][0],
                                                     others[0][1])
            elif len(legs) == 2 and not others and (
                    legs[0][1]["ACD_CALL"] == legs[1][1]["ACD_CALL"]):
                consults[legs[0][1]["ACD_CALL"]] = legs
        # Held callers: alone in acd-hold with music; their agent's leg waits (or consults).
        held: dict[str, tuple[dict, dict, list[tuple[dict, dict]]]] = {}
        for c, v in found:
            uid = str(c["Uniqueid"])
            if (c.get("Context") == HOLD_CONTEXT and is_caller(c, v) and not c.get("BridgeId")
                    and uid not in connected):
                legs = [(lc, lv) for lc, lv in found if is_leg(lc, lv) and lv["ACD_CALL"] == uid
                        and (not lc.get("BridgeId") or uid in consults)]
                held[uid] = (c, v, legs)
        talking = {v["ACD_AGENT"] for (_, v, _, _) in connected.values()}
        for uid, (c, v, legs) in held.items():
            talking |= {lv["ACD_AGENT"] for _, lv in legs}

        # Agents: their newest stored state; phones from PJSIPShowContacts.
        restored: set[str] = set()
        for agent_id, row in snap["states"].items():
            if agent_id not in self.endpoints or row["state"] == "offline":
                continue
            endpoint = self.endpoints[agent_id]
            since = row["at"].timestamp()
            pend = snap["pending"].get(agent_id) or {}
            pend_state, pend_reason = pend.get("state"), pend.get("reason", "")
            self._pending_saved[agent_id] = (pend_state, pend_reason)
            state, reason = row["state"], row["reason"]
            kw: dict[str, Any] = {"reachable": reachable.get(endpoint),
                                  "calls_answered": await self._answered_since_login(agent_id)}
            if agent_id in talking or state in ("talking", "ringing"):
                # Talking: restored in the state to take afterwards, then the call.
                state, reason = (pend_state, pend_reason) if pend_state else ("idle", "")
            elif state == "wrapup":
                group = await self._call_group(row.get("call_uniqueid"))
                kw["wrapup_until"] = since + self._wrapup_seconds(group)
                if pend_state:
                    kw["pending"], kw["pending_reason"] = pend_state, pend_reason
            try:
                out += self.acd.restore_agent(agent_id, endpoint, state, since, reason=reason,
                                              **kw)
                restored.add(agent_id)
                log.info("runtime.agent_restored", agent=agent_id, state=state)
            except AcdError as exc:
                log.warning("runtime.restore_refused", agent=agent_id, error=exc.id,
                            message=exc.message)

        def ensure_agent(agent_id: str) -> list[Decision]:
            if agent_id in restored:
                return []
            endpoint = self.endpoints.get(agent_id, agent_id)
            done = self.acd.restore_agent(agent_id, endpoint, "idle", now,
                                          reachable=reachable.get(endpoint))
            restored.add(agent_id)
            return done

        async def call_kw(call_id: str, caller_c: dict[str, Any], caller_v: dict[str, str],
                          stored: dict[str, Any]) -> dict[str, Any]:
            number = str(stored.get("caller_number") or caller_c.get("CallerIDNum") or "")
            kw2: dict[str, Any] = {
                "caller_number": number if NUMBER.match(number) else "",
                "priority": _i(caller_v.get("ACD_PRIORITY"), 0),
                "key_trail": [k["keys"] for k in stored.get("key_trail", [])]}
            if stored.get("answered_at"):
                kw2["answered_at"] = datetime.fromisoformat(stored["answered_at"]).timestamp()
            if stored.get("arrived_at"):
                kw2["arrived_at"] = datetime.fromisoformat(stored["arrived_at"]).timestamp()
            entered = _f(caller_v.get("ACD_ENTERED"))
            if entered is not None:
                kw2["entered_at"] = entered
            return kw2

        def keep_leg(c: dict[str, Any], call_id: str, agent_id: str, kind: str = "agent",
                     bridged: bool = True) -> _Leg:
            leg = _Leg(str(c["Uniqueid"]), kind, call_id, agent_id, channel=str(c["Channel"]),
                       ringing=True, answered=True, bridged=bridged, reported=True)
            self._legs[leg.uid] = leg
            if kind == "agent":
                self._leg_of[(call_id, agent_id)] = leg.uid
            else:
                self._customer_leg[call_id] = leg.uid
            return leg

        kept: set[str] = set()           # calls restored (their records stay open)
        for call_id, (agent_c, agent_v, other_c, other_v) in connected.items():
            agent_id = agent_v["ACD_AGENT"]
            stored = open_calls.get(call_id) or await self.store.get_call(call_id) or {}
            if agent_v.get("ACD_ROLE") == "outbound":
                try:
                    out += ensure_agent(agent_id)
                    answered = (datetime.fromisoformat(stored["answered_at"]).timestamp()
                                if stored.get("answered_at") else None)
                    out += self.acd.restore_outbound(call_id, agent_id,
                                                     str(stored.get("caller_number") or ""),
                                                     now, answered_at=answered)
                except AcdError as exc:
                    log.warning("runtime.restore_refused", call=call_id, agent=agent_id,
                                error=exc.id, message=exc.message)
                    continue
                keep_leg(agent_c, call_id, agent_id)
                keep_leg(other_c, call_id, agent_id, kind="customer")
                kept.add(call_id)
                log.info("runtime.outbound_call_restored", call=call_id, agent=agent_id)
                continue
            is_callback = other_c.get("Context") == CUSTOMER_CONTEXT
            group = other_v.get("ACD_GROUP") or stored.get("skill_group") or ""
            kw2 = await call_kw(call_id, other_c, other_v, stored)
            if is_callback:
                kw2["callback_number"] = self._callback_number(stored) or kw2["caller_number"]
            try:
                out += ensure_agent(agent_id)
                out += self.acd.restore_connected_call(call_id, agent_id, group, now, **kw2)
                if other_v.get("ACD_SURVEY"):
                    out += self.acd.restore_control(call_id, now, invited=True)
            except AcdError as exc:
                log.warning("runtime.restore_refused", call=call_id, agent=agent_id,
                            error=exc.id, message=exc.message)
                continue
            keep_leg(agent_c, call_id, agent_id)
            if is_callback:
                keep_leg(other_c, call_id, agent_id, kind="customer")
            else:
                self._callers[call_id] = _Caller(call_id, str(other_c["Channel"]),
                                                 kw2["caller_number"],
                                                 str(other_c.get("CallerIDName") or ""),
                                                 group, bridged=True,
                                                 survey=bool(other_v.get("ACD_SURVEY")))
            kept.add(call_id)
            log.info("runtime.connected_call_restored", call=call_id, agent=agent_id)

        # Rings answered while we were away: the agent's leg up in acd-agent, alone, its
        # caller still in the queue. The conversation goes on (bridged once resumed).
        answered_rings: list[tuple[str, str, str, bool]] = []
        in_queue = {str(c["Uniqueid"]): (c, v) for c, v in found
                    if c.get("Context") == QUEUE_CONTEXT and not c.get("BridgeId")
                    and not v.get("ACD_BRIDGED") and v.get("ACD_GROUP")}
        for c, v in found:
            call_id = v.get("ACD_CALL", "")
            if not (is_leg(c, v) and c.get("Context") == AGENT_CONTEXT and not c.get("BridgeId")
                    and _i(c.get("ChannelState")) == ev.CHANNEL_STATE_UP
                    and call_id in in_queue and call_id not in kept
                    and v.get("ACD_ROLE") != "outbound"):
                continue
            agent_id = v["ACD_AGENT"]
            caller_c, caller_v = in_queue[call_id]
            stored = open_calls.get(call_id) or {}
            kw2 = await call_kw(call_id, caller_c, caller_v, stored)
            try:
                out += ensure_agent(agent_id)
                out += self.acd.restore_connected_call(call_id, agent_id, caller_v["ACD_GROUP"],
                                                       now, **kw2)
            except AcdError as exc:
                log.warning("runtime.restore_refused", call=call_id, agent=agent_id,
                            error=exc.id, message=exc.message)
                continue
            keep_leg(c, call_id, agent_id, bridged=False)
            self._callers[call_id] = _Caller(call_id, str(caller_c["Channel"]),
                                             kw2["caller_number"],
                                             str(caller_c.get("CallerIDName") or ""),
                                             caller_v["ACD_GROUP"])
            kept.add(call_id)
            answered_rings.append((call_id, agent_id, caller_v["ACD_GROUP"],
                                   "answered_at" not in kw2))
            log.info("runtime.answered_ring_restored", call=call_id, agent=agent_id)

        # Held callers: the call goes on with its agent (holding, or consulting another).
        resumes: list[tuple[str, str]] = []
        for call_id, (c, v, legs) in held.items():
            stored = open_calls.get(call_id) or await self.store.get_call(call_id) or {}
            group = v.get("ACD_GROUP") or stored.get("skill_group") or ""
            by_agent = {lv["ACD_AGENT"]: (lc, lv) for lc, lv in legs}
            owner = v.get("ACD_OWNER") or ""
            consult = consults.get(call_id)
            target = None
            if consult is not None and owner in by_agent:
                target = next(lv["ACD_AGENT"] for _, lv in consult if lv["ACD_AGENT"] != owner)
            elif owner not in by_agent:
                # The agent hung up while we were away: another agent's leg of the call
                # waiting in silence (a consulted agent) takes the caller; else the queue.
                owner = next(iter(by_agent), "")
                if owner:
                    resumes.append((call_id, owner))
            kw2 = await call_kw(call_id, c, v, stored)
            self._callers[call_id] = _Caller(call_id, str(c["Channel"]), kw2["caller_number"],
                                             str(c.get("CallerIDName") or ""), group,
                                             survey=bool(v.get("ACD_SURVEY")))
            kept.add(call_id)
            if not owner:
                try:
                    out += self.acd.restore_waiting_call(
                        call_id, kw2["caller_number"], group,
                        kw2["priority"] + TRANSFER_PRIORITY_BOOST, now, now,
                        key_trail=kw2["key_trail"], arrived_at=kw2.get("arrived_at"))
                except AcdError as exc:
                    log.warning("runtime.restore_refused", call=call_id, error=exc.id,
                                message=exc.message)
                    continue
                self._requeue(RequeueCaller(call_id, group,
                                            kw2["priority"] + TRANSFER_PRIORITY_BOOST, now))
                log.info("runtime.held_caller_requeued", call=call_id, group=group)
                continue
            try:
                out += ensure_agent(owner)
                out += self.acd.restore_connected_call(call_id, owner, group, now, **kw2)
                if target is not None:
                    out += ensure_agent(target)
                since = self._event_time(stored, "consult_answered")
                out += self.acd.restore_control(
                    call_id, now, held=(call_id, owner) not in resumes,
                    held_since=_f(v.get("ACD_HELD_AT")), invited=bool(v.get("ACD_SURVEY")),
                    consult_agent=target, consult_since=since)
            except AcdError as exc:
                log.warning("runtime.restore_refused", call=call_id, agent=owner, error=exc.id,
                            message=exc.message)
                continue
            for agent_id in ((owner, target) if target else (owner,)):
                lc, _ = by_agent.get(agent_id) or next(
                    (x for x in (consult or []) if x[1]["ACD_AGENT"] == agent_id), (None, None))
                if lc is not None:
                    keep_leg(lc, call_id, agent_id, bridged=bool(lc.get("BridgeId")))
            log.info("runtime.held_call_restored", call=call_id, agent=owner,
                     consulting=target)
        for call_id, agent_id in resumes:       # after resume(): bridge the caller again
            self._join(call_id, agent_id, "restore")

        # Waiting callers, in their original order (entry time; ties: channel order).
        waiting = []
        for c, v in found:
            uid = str(c["Uniqueid"])
            entered = _f(v.get("ACD_ENTERED"))
            if (c.get("Context") != QUEUE_CONTEXT or uid in connected or v.get("ACD_BRIDGED")
                    or uid in kept or entered is None or not v.get("ACD_GROUP")):
                continue
            waiting.append((entered, uid, c, v))
        waiting.sort(key=lambda w: (w[0], w[1]))
        for entered, uid, c, v in waiting:
            stored = open_calls.get(uid) or {}
            number = str(c.get("CallerIDNum") or "")
            number = number if NUMBER.match(number) else ""
            kw3: dict[str, Any] = {"key_trail": [k["keys"] for k in stored.get("key_trail", [])]}
            if stored.get("arrived_at"):
                kw3["arrived_at"] = datetime.fromisoformat(stored["arrived_at"]).timestamp()
            try:
                out += self.acd.restore_waiting_call(uid, number, v["ACD_GROUP"],
                                                     _i(v.get("ACD_PRIORITY"), 0), entered,
                                                     now, **kw3)
            except AcdError as exc:
                log.warning("runtime.restore_refused", call=uid, error=exc.id,
                            message=exc.message)
                continue
            self._callers[uid] = _Caller(uid, str(c["Channel"]), number,
                                         str(c.get("CallerIDName") or ""), v["ACD_GROUP"])
            log.info("runtime.waiting_call_restored", call=uid, group=v["ACD_GROUP"],
                     entered=entered)

        # Callbacks waiting for their turn live only in the store (the caller hung up).
        callbacks = 0
        for call_id, stored in open_calls.items():
            number = self._callback_number(stored)
            if not number or call_id in present or call_id in connected:
                continue
            queued = [e for e in stored["events"] if e["kind"] == "queued"]
            requested = [e for e in stored["events"] if e["kind"] == "callback_requested"]
            if not queued or not requested:
                continue
            detail = queued[-1].get("detail") or {}
            prio = _i(str(detail.get("detail", "")).removeprefix("priority "), 0)
            try:
                out += self.acd.restore_waiting_call(
                    call_id, stored.get("caller_number") or "",
                    detail.get("group") or stored.get("skill_group") or "", prio,
                    datetime.fromisoformat(queued[-1]["at"]).timestamp(), now,
                    arrived_at=datetime.fromisoformat(stored["arrived_at"]).timestamp(),
                    key_trail=[k["keys"] for k in stored["key_trail"]],
                    callback_number=number,
                    callback_requested_at=datetime.fromisoformat(requested[-1]["at"]).timestamp(),
                    callback_attempts=sum(1 for e in stored["events"] if e["kind"] == "dialing"))
                callbacks += 1
                log.info("runtime.callback_restored", call=call_id)
            except AcdError as exc:
                log.warning("runtime.restore_refused", call=call_id, error=exc.id,
                            message=exc.message)

        # Calls that ended while we were away get their one end reason now.
        for call_id, stored in open_calls.items():
            if (call_id in present or call_id in self._callers or call_id in connected
                    or call_id in kept or self._callback_number(stored)):
                continue
            if datetime.fromisoformat(stored["arrived_at"]).timestamp() > snap["started"] - 1:
                continue     # arrived while we were reading: not ours to close
            self.writer.submit("call_ended", self.store.call_ended, call_id,
                               reason=ENDED_WHILE_DOWN, at=_utc(now), bind={"call": call_id})
            log.warning("runtime.call_ended_while_down", call=call_id)

        # Legs nobody will bridge any more (a ring or a dial under way when we stopped).
        for c, v in found:
            if (c.get("Context") != QUEUE_CONTEXT and v.get("ACD_CALL")
                    and v["ACD_CALL"] not in connected and str(c["Uniqueid"]) not in self._legs
                    and (not c.get("BridgeId") or v["ACD_CALL"] in consults)):
                self._hangup(str(c["Uniqueid"]), v["ACD_CALL"], v.get("ACD_AGENT"))
                log.info("runtime.orphan_leg_hungup", call=v["ACD_CALL"], channel=c["Channel"])

        self._apply(out)
        for call_id, agent_id, group, unseen in answered_rings:
            if unseen:               # the answer itself was not seen: now, on record
                at = _utc(now)
                self.writer.submit("answered", self.store.call_event, call_id, "answered",
                                   at=at, detail={"group": group, "agent": agent_id,
                                                  "detail": "answered while away"},
                                   bind={"call": call_id})
                self.writer.submit("call_answered", self.store.call_update, call_id,
                                   answered_at=at, bind={"call": call_id})
                self.writer.submit("agent_state", self.store.agent_state, agent_id, "talking",
                                   reason="", at=at, previous="ringing", call_uniqueid=call_id,
                                   bind={"agent": agent_id})
            self._chain(call_id, self._bridge(call_id, agent_id))
        return {"agents": len(restored), "connected": len(connected) + len(answered_rings),
                "waiting": len(waiting),
                "callbacks": callbacks, "held": len(held)}

    def _finish_rebuild(self, reachable: Mapping[str, bool]) -> None:
        now = self.clock()
        self._rebuilt = True
        try:
            self._apply(self.acd.resume(now))
        except Exception:
            self.log.exception("runtime.resume_failed")
        for ep, ok in reachable.items():
            self._reachable[ep] = ok
            self._feed("contact_status", self.acd.contact_status, ep, ok,
                       agent=self._agent_of_endpoint.get(ep))
        # A pending state used up while we were away is cleared in the store too.
        for agent_id, snap in self.acd.snapshot_agents(now).items():
            have = (snap["pending"], snap["pending_reason"] or "")
            if agent_id in self._pending_saved and self._pending_saved[agent_id] != have:
                self._save_pending(Notify(agent_id, "state", {"pending": have[0],
                                                              "pending_reason": have[1]}))
        self._check_hours()
        held, self._buffer = self._buffer or [], None
        for e in held:
            self.on_ami_event(e)
        self.ready.set()
        self._hours_task = self._spawn(self._hours_loop(), "hours")
        self._snapshot_soon()

    async def _answered_since_login(self, agent_id: str) -> int:
        rows = await self.store.agent_states(agent_id)
        n = 0
        for r in rows:
            if r["previous"] == "offline" or r["state"] == "offline":
                n = 0
            elif r["state"] == "talking":
                n += 1
        return n

    async def _call_group(self, call_id: str | None) -> str | None:
        if not call_id:
            return None
        stored = await self.store.get_call(call_id)
        return stored.get("skill_group") if stored else None

    def _wrapup_seconds(self, group: str | None) -> float:
        try:
            return float(self.acd._groups[group].cfg.wrapup_seconds)  # noqa: SLF001
        except (KeyError, AttributeError):
            return 0.0

    @staticmethod
    def _event_time(stored: Mapping[str, Any], kind: str) -> float | None:
        """When the stored call's newest ``kind`` event happened (None: never)."""
        at = None
        for e in stored.get("events", []):
            if e["kind"] == kind and e.get("at"):
                at = datetime.fromisoformat(e["at"]).timestamp()
        return at

    @staticmethod
    def _callback_number(stored: Mapping[str, Any]) -> str | None:
        """The number of the stored call's callback request (None: it is no callback)."""
        number = None
        for e in stored.get("events", []):
            if e["kind"] == "callback_requested":
                number = str((e.get("detail") or {}).get("detail") or "")
        return number or None

    async def _reconcile(self) -> None:
        """A later AMI login: feed the core what happened while the link was down.

        Asterisk may still be booting when the link comes back (AMI answers before its
        modules are loaded): a failed read is tried again while the link stays up."""
        log = self.log.bind(phase="reconcile")
        for attempt in range(RECONCILE_ATTEMPTS):
            if attempt:
                await asyncio.sleep(RECONCILE_RETRY_SECONDS)
                if not self._ami_up:
                    return
            try:
                started = await self._core_started()
                channels, seen = await self._channels_and_since()
                contacts = await self._contact_list()
                break
            except AmiError as exc:
                log.warning("runtime.reconcile_failed", error=str(exc), attempt=attempt + 1)
        else:
            return
        present = {str(c.get("Uniqueid")): c for c in channels}
        self._phones_in_use(channels, seen)   # first: an agent freed below rings a free phone
        restarted = started is not None and self._asterisk_started not in (None, started)
        # After a crash, only a qualify's answer proves a phone (see _load_contacts); after a
        # clean stop Asterisk wrote its registrations out, and they are the phones' own.
        reachable = self._load_contacts(contacts,
                                        proven=restarted and not self._asterisk_stopping)
        # What we knew before this login (a ring the core starts from here on is no news).
        legs, callers = list(self._legs.values()), list(self._callers.values())
        answered_before = {leg.uid for leg in legs if leg.answered}
        if restarted:
            # Asterisk restarted while the link was down (a crash, or a stop we did not hear
            # of): whatever it held is lost, even if no event told us. (A caller who reached
            # the new Asterisk already is kept.) The phones first: the agents freed may ring.
            log.warning("runtime.asterisk_restarted", was=self._asterisk_started, now=started)
            for ep, ok in reachable.items():
                self._set_reachable(ep, ok)
            self._asterisk_lost("asterisk_restart", keep=set(present))
        self._asterisk_started = started or self._asterisk_started
        self._asterisk_stopping = False
        # Callers first: when both sides of a connected call went while we were away, who hung
        # up first cannot be read back from Asterisk; the caller's hangup ends the call, and
        # the agent's leg, gone too, is just forgotten below.
        for ctx in callers:
            if self._callers.get(ctx.call_id) is not ctx:
                continue
            c = present.get(ctx.call_id)
            if c is None:
                log.info("runtime.missed", what="caller_hangup", call=ctx.call_id)
                self._caller_gone(ctx)
            else:
                ctx.channel = str(c.get("Channel") or ctx.channel)
        for leg in legs:
            if self._legs.get(leg.uid) is not leg:
                continue
            c = present.get(leg.uid)
            if c is None:
                if not leg.gone:
                    leg.gone = True
                    if self._call_state(leg.call_id) == "ended":
                        self._forget_leg(leg)
                        continue
                    log.info("runtime.missed", what="leg_hangup", call=leg.call_id,
                             agent=leg.agent_id, leg=leg.uid)
                    self._leg_gone(leg)
                continue
            leg.channel = str(c.get("Channel") or leg.channel)
            if leg.cancelled or (leg.reported and not leg.answered):
                self._hangup(leg.uid, leg.call_id, leg.agent_id)
            elif (not leg.answered and _i(c.get("ChannelState")) == ev.CHANNEL_STATE_UP
                  and c.get("Context") in (AGENT_CONTEXT, CUSTOMER_CONTEXT)):
                self._on_originate_response(ev.OriginateResponse(
                    response="Success", reason=4, uniqueid=leg.uid, channel=leg.channel))
        # Connected calls whose Bridge was lost with the link: bridge them again (not while
        # call control keeps the two sides apart: hold, transfer, consult).
        for (call_id, agent_id), uid in list(self._leg_of.items()):
            leg = self._legs.get(uid)
            if leg is None or not leg.answered or leg.cancelled or uid not in answered_before:
                continue        # (a ring answered while we were away is bridged as it is fed)
            control = self.acd.control_info(call_id)
            if control is not None and control["outbound"]:
                if control["state"] != "connected":
                    continue
            elif self._call_state(call_id) != "connected" or (control is not None and (
                    control["state"] != "talking" or control["owner"] != agent_id)):
                continue
            other_uid = self._customer_leg.get(call_id) or call_id
            a, b = present.get(leg.uid), present.get(other_uid)
            if a is not None and b is not None and (not a.get("BridgeId")
                                                    or a.get("BridgeId") != b.get("BridgeId")):
                log.warning("runtime.rebridge", call=call_id, agent=agent_id)
                self._chain(call_id, self._bridge(call_id, agent_id))
        for ep, ok in reachable.items():
            self._set_reachable(ep, ok)
        log.info("runtime.reconciled", channels=len(channels))

    # ================================================================ service hours

    def _check_hours(self) -> None:
        now = self.clock()
        at = _utc(now)
        for name, g in self.group_cfg.items():
            if not g.hours and not g.holidays:
                continue
            try:
                is_open = ServiceHours.of(g).is_open(at)
            except Exception:
                self.log.exception("runtime.hours_failed", group=name)
                continue
            if self._open.get(name) == is_open:
                continue
            self._open[name] = is_open
            self.log.info("runtime.group_hours", group=name, open=is_open)
            self._feed("set_group_open", self.acd.set_group_open, name, is_open, group=name)

    async def check_phones(self) -> None:
        """An idle agent whose phone counts as in use: read Asterisk's channels again, in case
        a Hangup never came (only a lost event or a forged one could cause that)."""
        busy = [self._agent_of_endpoint[ep] for ep, calls in self._phone_calls.items() if calls]
        if not self._ami_up or not busy:
            return
        agents = self.acd.snapshot_agents(self.clock())
        if not any(agents.get(a, {}).get("state") == "idle" for a in busy):
            return
        try:
            channels, seen = await self._channels_and_since()
        except AmiError as exc:
            self.log.warning("runtime.phone_check_failed", error=str(exc))
            return
        self._phones_in_use(channels, seen)

    async def _hours_loop(self) -> None:
        while True:
            await asyncio.sleep(self.hours_interval)
            self._check_hours()
            try:
                await self.check_phones()
            except Exception:
                self.log.exception("runtime.phone_check_failed")
            old = self.clock() - 3600        # handed over by the IVR, never seen since
            for uid in [u for u, at in self._expected.items() if at < old]:
                del self._expected[uid]


__all__ = ["AcdRuntime", "CallerSession", "CUSTOMER_DIAL", "NUMBER",
           "ENDED_WHILE_DOWN"]
