"""The ACD core: plain Python, no I/O, no asyncio, no clock of its own.

Events in, decisions out. The adapters (AMI, FastAGI, store, web) call one :class:`Acd` with
what happened; every call returns a list of decisions, in order, for them to carry out. The
core never talks to Asterisk, the database or the clock: every event carries ``now``
(seconds, one monotonic clock chosen by the adapter) and time-outs come back as timer
requests. So a test or a simulation drives it as fast as the CPU allows.

Construction::

    acd = Acd([GroupConfig("sales", members={"ann": 5, "bob": 3}, wrapup_seconds=10,
                           callback=CallbackSettings())], rng=random.Random())

Skill groups are fixed at construction (:class:`GroupConfig`: members with skill levels,
strategy, ring timeout, wrap-up, service-level threshold, overflow, service hours flag,
familiar-customer routing, announcements, callbacks).

Decisions (what each asks the adapter to do)
-------------------------------------------
:class:`RingAgent`
    Ring the agent's endpoint for the waiting caller (e.g. AMI Originate with the caller's
    number as caller id). Report ``agent_ringing`` when it rings, then ``agent_answered`` or
    ``ring_failed``. Never bridge on your own: wait for :class:`BridgeCall`, because the core
    may have taken the offer back (caller hung up, ring timer) while the phone was answered.
:class:`RingAgentForCallback`
    Ring the agent for a callback (nobody is on hold). Report as for :class:`RingAgent`.
:class:`CancelRing`
    Stop the ring, or hang up the agent's answered-but-unbridged leg. Idempotent.
:class:`BridgeCall`
    Connect the caller (or callback customer) with the agent's answered leg.
:class:`DialCustomer`
    Callback: the agent is on the line; dial the customer. Report ``customer_answered`` or
    ``customer_dial_failed``; if the agent hangs up first, abort and report ``agent_hung_up``.
:class:`SendToDestination`
    Take the caller out of the queue and send them to an IVR flow, a mailbox or a goodbye
    (the call has ended in the core). For a ``callback`` destination: tell the caller they
    will be called back and hang up; the core keeps the callback in the caller's place.
    (Overflow to another skill group happens inside the core: nothing to do.)
:class:`Announce`
    Play the waiting caller's position and/or estimated wait, then music on hold again.
:class:`ReleaseLegs`
    The call ended in the core (it follows the ``ended`` record, or :class:`OutboundEnded`):
    hang up every agent or customer leg of it that is left; ``caller_too``: the caller's
    channel as well (a conversation ended by a hangup).
:class:`RegroupCaller`
    The waiting caller overflowed into another group's queue (it follows the ``queued``
    record): the caller's channel must carry the new group and entry time.
:class:`StartTimer` / :class:`CancelTimer`
    Call ``timer_fired(key, now)`` when the clock reaches ``at``; forget a timer. A key set
    again replaces the old one; firing a cancelled or unknown key is harmless.
:class:`Notify`
    Tell the agent's screen: ``ring``, ``answered``, ``ended`` or ``state`` (JSON payload).
:class:`RecordCallEvent` / :class:`RecordAgentState`
    Append to the call's timeline / the agent's state history in the store. Each call's
    timeline has arrival, queue entries, each offer, ring and no answer, answer, end (with
    exactly one :class:`EndReason`), and the agent's wrap-up (recorded after the end).
Call control (hold, transfers, consults, survey, outbound calls) has its own decisions, all
in :mod:`acd.core.decisions` with the above: :data:`DECISION_TYPES` lists every decision
class and :data:`Decision` is their union.

Events the adapter feeds in (each returns decisions)
---------------------------------------------------
Agents: ``agent_login(agent, endpoint, now)``, ``agent_logout(agent, now)``,
``set_agent_state(agent, state, now, reason)`` (idle, busy, break, meeting, offline; during a
call it is pending until the call and its wrap-up end), ``end_wrapup(agent, now)``,
``contact_status(endpoint, reachable, now)`` (AMI ContactStatus; unreachable phones get no
calls), ``phone_in_use(endpoint, in_use, now)`` (the phone has a channel up: no calls until it
is free, as app_queue's ``ringinuse=no``), ``phone_lost(agent, cause, now)`` (the phone died while ringing or during a
conversation: a failed ring, or the caller back into the queue at the front and the agent on
break "phone lost").

Calls: ``call_arrived(call, caller_number, group, now, priority=, key_trail=,
verification=)``, ``agent_ringing(call, agent, now)``, ``agent_answered(call, agent, now)``,
``ring_failed(call, agent, cause, now)``, ``caller_hung_up(call, now)``,
``agent_hung_up(call, agent, now)``, ``callback_requested(call, number, now)`` (the caller
then hangs up; a later ``caller_hung_up`` for that leg is ignored),
``customer_answered(call, now)``, ``customer_dial_failed(call, cause, now)``.

Time and hours: ``timer_fired(key, now)``; ``set_group_open(group, open, now)`` (service
hours are evaluated by the adapter). Familiar customers: ``remember_contact(number, agent,
at)`` (the core also remembers its own answered calls).

Asterisk restarted: ``channels_lost(cause, now, keep=())`` ends every call with a caller on the
line as ``lost`` (after a ``lost`` record with the cause); ringing agents go back to idle,
talking ones to wrap-up; callbacks keep their place.

Restart: ``restore_agent(...)``, ``restore_waiting_call(...)`` (original entry time and
priority), ``restore_connected_call(...)``, then ``resume(now)`` to start offering calls in
the original order. Start no other event before ``resume``.

Late and repeated events are normal (Asterisk and the core race): events about a call that
has ended, or about an offer the core already took back, are ignored (a late answer gets a
:class:`CancelRing`). An event the core refuses raises an :class:`AcdError` with a stable
``id`` (see :mod:`acd.core.errors`) and changes nothing.

Queries (plain data, JSON-ready): ``snapshot_queues(now)``, ``snapshot_agents(now)``,
``call_info(call)``, ``is_eligible(call, agent)``, ``timers()``; ``reset_stats()``.
"""
from acd.core.acd import Acd, SendReason
from acd.core.agent_states import (MANUAL_STATES, SYSTEM_STATES, AgentEvent, AgentState)
from acd.core.calls import CallEvent, CallEventKind, CallRecord, CallState, EndReason
from acd.core.config import (CallbackSettings, Destination, DestinationKind, GroupConfig,
                             WidenStep)
from acd.core.decisions import (DECISION_TYPES, Announce, BridgeCall, BridgeConsult,
                                BridgeTarget, CancelRing, CancelTimer, Decision, DialCustomer,
                                DropLeg, HoldCaller, InviteRating, Notify, OutboundEnded,
                                OutboundStarted, RecordAgentState, RecordCallEvent,
                                RecordControl, RecordLeg, RecordLegWrapup, RegroupCaller,
                                ReleaseLegs, RequeueCaller, ResumeCaller, RingAgent,
                                RingAgentForCallback, RingAgentForOutbound, RingTarget,
                                SendToDestination, SendToSurvey, StartTimer)
from acd.core.errors import (AcdError, IllegalAgentTransition, IllegalCallTransition,
                             IllegalTransition, NotLoggedIn)
from acd.core.routing import Strategy

__all__ = [
    "Acd", "SendReason",
    "AgentState", "AgentEvent", "MANUAL_STATES", "SYSTEM_STATES",
    "CallState", "CallEvent", "CallEventKind", "CallRecord", "EndReason",
    "GroupConfig", "WidenStep", "CallbackSettings", "Destination", "DestinationKind",
    "Strategy",
    "Decision", "RingAgent", "RingAgentForCallback", "CancelRing", "BridgeCall",
    "DialCustomer", "SendToDestination", "Announce", "StartTimer", "CancelTimer", "Notify",
    "RecordCallEvent", "RecordAgentState",
    "DECISION_TYPES", "ReleaseLegs", "RegroupCaller", "HoldCaller", "ResumeCaller",
    "RingTarget", "BridgeTarget", "BridgeConsult", "DropLeg", "RequeueCaller", "SendToSurvey",
    "InviteRating", "RingAgentForOutbound", "OutboundStarted", "OutboundEnded",
    "RecordControl", "RecordLeg", "RecordLegWrapup",
    "AcdError", "IllegalTransition", "IllegalAgentTransition", "IllegalCallTransition",
    "NotLoggedIn",
]
