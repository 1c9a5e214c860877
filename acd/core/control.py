"""Call control in the core: hold, transfers, consults, the survey, rating invitations, the
agent's hangup and outbound calls. Plain Python, no I/O; part of :class:`acd.core.Acd`.

The state machines are the tables of :mod:`acd.core.transfers`; this module carries them out
against the ACD's agents (whose states change only through :mod:`acd.core.agent_states`:
a transfer or consult target is offered the call, answers, talks, wraps up) and calls.

Agent actions (each returns decisions; a refusal raises an :class:`~acd.core.AcdError` with a
stable id and changes nothing): :meth:`CallControl.hold_call`, ``resume_call``, ``transfer`` (to an
idle agent or a skill group), ``consult`` (an idle agent, or a group's next free agent),
``cancel_transfer``, ``complete_consult``, ``return_from_consult``, ``to_survey``,
``invite_rating``, ``hang_up``, ``dial`` (outbound).

What happens to the legs is fed in through the ACD's usual events (``agent_ringing``,
``agent_answered``, ``ring_failed``, ``agent_hung_up``, ``caller_hung_up``,
``customer_answered``, ``customer_dial_failed``): the core knows which leg is a transfer or
consult target and which call is an outbound call, so the adapter reports legs the same way
for every call.

Decisions (what each asks the adapter to do)
-------------------------------------------
:class:`HoldCaller`       take the caller and the owner's leg apart: the caller to music on
                          hold, the owner's leg to silence (AMI dual Redirect)
:class:`ResumeCaller`     bridge the caller with the owner's leg again
:class:`RingTarget`       ring a transfer or consult target (report as for RingAgent); its
                          answered leg waits in silence until bridged
:class:`BridgeTarget`     bridge the caller with the target's leg (the target owns the call)
:class:`BridgeConsult`    bridge the owner's leg with the target's leg
:class:`DropLeg`          hang up this agent's leg of the call, after the actions before it;
                          no further event is expected for it
:class:`RequeueCaller`    the caller waits in ``group``'s queue again (with ``priority`` and
                          ``entered_at``), the owner's leg is dropped (a DropLeg follows)
:class:`SendToSurvey`     the caller goes to the satisfaction survey: ``redirect`` (the caller
                          holds) or by the dialplan after the bridge (see InviteRating)
:class:`InviteRating`     the caller goes to the survey once their conversation is over
:class:`RingAgentForOutbound`  ring the agent's own phone for their outbound call; report
                          ``agent_answered`` or ``ring_failed``; then :class:`DialCustomer`
                          and :class:`BridgeCall` as for a callback
:class:`OutboundStarted` / :class:`OutboundEnded`  the outbound call's record: start, end (one
                          end reason); at the end no leg of it may stay up
:class:`RecordControl`    a line of the call's timeline (hold, resume, transfer_*, consult_*,
                          ...); ``detail`` is JSON-ready
:class:`RecordLeg` / :class:`RecordLegWrapup`  an agent's part of a call: talk and hold
                          seconds when it ends, wrap-up seconds when the wrap-up ends
Notify events on the agent's screen: ``hold`` (``held`` true or false), ``transfer`` (``kind``
transfer or consult, ``event`` started ... failed, ``target``, ``cause``), ``rating_invited``,
``outbound`` (``state``), and the usual ``ring``, ``answered``, ``ended`` for targets.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from acd.core import transfers as tf
from acd.core.agent_states import AgentEvent, AgentState
from acd.core.calls import Call, CallEvent, CallEventKind, CallState
from acd.core.decisions import (BridgeCall, BridgeConsult, BridgeTarget, CancelRing,
                                DialCustomer, DropLeg, HoldCaller, InviteRating, Notify,
                                OutboundEnded, OutboundStarted, RecordControl, RecordLeg,
                                RecordLegWrapup, ReleaseLegs, RequeueCaller, ResumeCaller,
                                RingAgentForOutbound, RingTarget, SendToSurvey)
from acd.core.errors import DuplicateCall, NotLoggedIn, RestoreInvalid, UnknownGroup
from acd.core.numbers import is_number
from acd.core.timers import T_OBRING, T_WRAPUP, T_XFER, timer_key
from acd.core.transfers import (CALLER_HOLDS, TRANSFER_STATES, ControlAction, ControlState,
                                OutboundEvent, OutboundState, Transfer, TransferEvent)

if TYPE_CHECKING:
    from acd.core.acd import _Agent

_NO_ANSWER = frozenset({"no_answer", "noanswer", "no answer", "timeout"})
#: An agent may make an outbound call from these states (not on a call or wrapping up).
_DIAL_FROM = frozenset({AgentState.IDLE, AgentState.BUSY, AgentState.BREAK,
                        AgentState.MEETING})


# =============================================================================== state

@dataclass(slots=True, eq=False)
class _Ctl:
    """Call control of one connected call."""
    call_id: str
    state: ControlState = ControlState.TALKING
    previous: ControlState = ControlState.TALKING
    transfer: Transfer | None = None
    invited: bool = False
    surveyed: bool = False


@dataclass(slots=True, eq=False)
class _LegStat:
    call_id: str
    agent_id: str
    role: str
    started: float
    hold: float = 0.0
    held_since: float | None = None


@dataclass(slots=True, eq=False)
class _Outbound:
    call_id: str
    agent_id: str
    number: str
    dial_timeout: float
    wrapup_seconds: float
    started_at: float
    state: OutboundState = OutboundState.AGENT_RINGING
    answered_at: float | None = None
    ended_at: float | None = None
    end_reason: str | None = None


# =============================================================================== the mixin

class CallControl:
    """Call control, mixed into :class:`acd.core.Acd` (it uses the ACD's agents, calls,
    timers and records). See the module docstring."""

    def _init_control(self) -> None:
        self._ctl: dict[str, _Ctl] = {}
        self._outbound: dict[str, _Outbound] = {}
        self._outbound_ended: OrderedDict[str, _Outbound] = OrderedDict()
        self._legstats: dict[tuple[str, str], _LegStat] = {}
        self._wrapping: dict[str, tuple[str, float]] = {}     # agent -> (call, wrap-up start)

    # ------------------------------------------------------------------ the owner's actions

    def hold_call(self, agent_id: str, now: float) -> list:
        """Put the agent's caller on hold: music for the caller, silence for the agent."""
        self._begin()
        agent, call, ctl = self._owned(agent_id)
        tf.next_state(call.call_id, ctl.state, ControlAction.HOLD)
        self._set_control(call, ctl, ControlState.HELD, now)
        self._out.append(HoldCaller(call.call_id, agent_id))
        self._rec(call.call_id, now, "hold", agent_id)
        self._out.append(Notify(agent_id, "hold", {"call_id": call.call_id, "held": True}))
        return self._settle(now)

    def resume_call(self, agent_id: str, now: float) -> list:
        """Take the held caller back: the agent and the caller talk again."""
        self._begin()
        agent, call, ctl = self._owned(agent_id)
        tf.next_state(call.call_id, ctl.state, ControlAction.RESUME)
        self._set_control(call, ctl, ControlState.TALKING, now)
        self._out.append(ResumeCaller(call.call_id, agent_id))
        self._rec(call.call_id, now, "resume", agent_id)
        self._out.append(Notify(agent_id, "hold", {"call_id": call.call_id, "held": False}))
        return self._settle(now)

    def phone_lost(self, agent_id: str, cause: str, now: float) -> list:
        """The agent's phone died (``cause``: e.g. ``unreachable``, its qualify failed) while
        it rang or while the agent talked, without the agent hanging up.

        Ringing: a failed ring (the no-answer path: the caller goes to the next agent).
        Talking with a caller (held or not, no transfer or consult under way): the caller
        goes back to their group's queue at the front, as a transfer to the group does, and
        the agent's leg is dropped; the agent's part ends (wrap-up), then the agent goes to
        break with the reason ``phone lost`` (not idle while the phone is dead) unless they
        chose their next state already. Anything else is left to the legs' own hangups."""
        self._begin()
        agent = self._agents.get(agent_id)
        call = self._calls.get(agent.call_id or "") if agent is not None else None
        if agent is None or call is None or call.agent_id != agent_id:
            return self._settle(now)
        call_id = call.call_id
        if call.state in (CallState.RINGING, CallState.CALLBACK_RINGING):
            self._unanswered(call, now, cause, cancel_leg=True)
            return self._settle(now)
        ctl = self._ctl.get(call_id)
        if (call.state is not CallState.CONNECTED or call.callback is not None
                or call_id in self._outbound or (ctl is not None and ctl.transfer is not None)):
            return self._settle(now)
        if ctl is not None:
            self._set_control(call, ctl, ControlState.TALKING, now)   # closes the hold clock
        group = call.group
        priority = call.priority + tf.TRANSFER_PRIORITY_BOOST
        self._requeue_caller(call, group, priority, now)
        self._out.append(DropLeg(call_id, agent_id))
        self._record(call, now, CallEventKind.REQUEUED, agent_id=agent_id, detail=cause)
        self._release(agent, call, now, "phone_lost")
        self._ctl.pop(call_id, None)
        self._queue_again(call, group, priority, now)
        if agent.pending is None and agent.state is not AgentState.OFFLINE:
            self._agent_event(agent, AgentEvent.GO_BREAK, now, "phone lost")
        return self._settle(now)

    def transfer(self, agent_id: str, now: float, *, to_agent: str | None = None,
                 to_group: str | None = None) -> list:
        """Transfer the caller to an idle agent (who is rung while the caller holds; the
        transfer can be cancelled until they answer; when they do, this agent drops) or to
        a skill group (the caller waits in its queue ahead of new arrivals; this agent
        drops at once)."""
        self._begin()
        agent, call, ctl = self._owned(agent_id)
        if bool(to_agent) == bool(to_group):
            raise tf.TargetMissing()
        if to_group:
            tf.next_state(call.call_id, ctl.state, ControlAction.TRANSFER_GROUP)
            g = self._groups.get(to_group)
            if g is None:
                raise UnknownGroup(to_group)
            if not g.open:
                raise tf.GroupClosed(to_group)
            self._transfer_to_group(agent, call, ctl, to_group, now)
            return self._settle(now)
        tf.next_state(call.call_id, ctl.state, ControlAction.TRANSFER)
        target = self._target(agent_id, str(to_agent))
        self._start_transfer(agent, call, ctl, "transfer", target, None, now)
        return self._settle(now)

    def consult(self, agent_id: str, now: float, *, to_agent: str | None = None,
                to_group: str | None = None) -> list:
        """Consult an idle agent, or the next free agent of a skill group (its strategy
        picks), while the caller holds. Then complete (the consulted agent gets the
        caller) or return to the caller."""
        self._begin()
        agent, call, ctl = self._owned(agent_id)
        if bool(to_agent) == bool(to_group):
            raise tf.TargetMissing()
        tf.next_state(call.call_id, ctl.state, ControlAction.CONSULT)
        if to_group:
            g = self._groups.get(to_group)
            if g is None:
                raise UnknownGroup(to_group)
            picked = g.idle.pick(0, {agent_id}, self._rng)
            if picked is None:
                raise tf.NoAgentAvailable(to_group)
            target = self._agents[picked]
            target.last_offer[to_group] = self._next_seq()
        else:
            target = self._target(agent_id, str(to_agent))
        self._start_transfer(agent, call, ctl, "consult", target, to_group, now)
        return self._settle(now)

    def cancel_transfer(self, agent_id: str, now: float) -> list:
        """Cancel the transfer or consult whose target has not answered yet."""
        self._begin()
        agent, call, ctl = self._owned(agent_id)
        move = tf.next_state(call.call_id, ctl.state, ControlAction.CANCEL, ctl.previous)
        self._ring_ended(call, ctl, now, move, "cancelled", failed=False)
        return self._settle(now)

    def complete_consult(self, agent_id: str, now: float) -> list:
        """The consulted agent gets the caller; this agent drops."""
        self._begin()
        agent, call, ctl = self._owned(agent_id)
        move = tf.next_state(call.call_id, ctl.state, ControlAction.COMPLETE)
        self._hand_over(call, ctl, move, now, "transferred")
        return self._settle(now)

    def return_from_consult(self, agent_id: str, now: float) -> list:
        """Back to the caller: the consulted agent drops (or stops ringing)."""
        self._begin()
        agent, call, ctl = self._owned(agent_id)
        move = tf.next_state(call.call_id, ctl.state, ControlAction.RETURN)
        t = ctl.transfer
        assert t is not None
        target = self._agents[t.target_agent]
        # The caller joins this agent first (out of the consult bridge), then the consulted
        # agent's leg goes: a leg leaving a dissolving bridge cannot be bridged at once.
        self._out.append(ResumeCaller(call.call_id, agent_id))
        if ctl.state is ControlState.CONSULTING:
            self._out.append(DropLeg(call.call_id, target.agent_id))
            self._release(target, call, now, "consult_ended")
        else:
            self._cancel_target_ring(call, target, now, "cancelled")
        self._cancel_timer(timer_key(T_XFER, call.call_id))
        ctl.transfer = None
        self._transfer_events(call, ctl, t, move.events, now, cause="returned")
        self._set_control(call, ctl, ControlState.TALKING, now)
        return self._settle(now)

    def to_survey(self, agent_id: str, now: float) -> list:
        """The caller goes to the satisfaction survey; this agent drops."""
        self._begin()
        agent, call, ctl = self._owned(agent_id)
        tf.next_state(call.call_id, ctl.state, ControlAction.SURVEY)
        ctl.surveyed = True
        if not ctl.invited:
            self._out.append(InviteRating(call.call_id))
        self._out.append(SendToSurvey(call.call_id, redirect=ctl.state is ControlState.HELD))
        self._rec(call.call_id, now, "to_survey", agent_id)
        self._end(call, CallEvent.AGENT_HANGUP, now)
        self._after_call(agent, call, now, "survey")
        return self._settle(now)

    def invite_rating(self, agent_id: str, now: float) -> list:
        """Once the agent hangs up, the caller goes to the satisfaction survey."""
        self._begin()
        agent, call, ctl = self._owned(agent_id)
        tf.next_state(call.call_id, ctl.state, ControlAction.INVITE_RATING)
        if not ctl.invited:
            ctl.invited = True
            self._out.append(InviteRating(call.call_id))
            self._rec(call.call_id, now, "rating_invited", agent_id)
        self._out.append(Notify(agent_id, "rating_invited", {"call_id": call.call_id}))
        return self._settle(now)

    def hang_up(self, agent_id: str, now: float) -> list:
        """End the agent's call (or their outbound call). Not during a transfer or consult:
        cancel or complete it first."""
        self._begin()
        agent = self._agents.get(agent_id)
        if agent is not None and agent.call_id in self._outbound:
            out = self._outbound[agent.call_id]
            if out.agent_id == agent_id and out.state is not OutboundState.ENDED:
                self._outbound_event(out, OutboundEvent.AGENT_HANGUP, now)
                return self._settle(now)
        agent, call, ctl = self._owned(agent_id)
        tf.next_state(call.call_id, ctl.state, ControlAction.HANGUP)
        self._rec(call.call_id, now, "agent_hangup_request", agent_id)
        self._end(call, CallEvent.AGENT_HANGUP, now)
        self._after_call(agent, call, now)
        return self._settle(now)

    def dial(self, agent_id: str, number: str, now: float, *, call_id: str,
             ring_timeout: float = 20.0, dial_timeout: float = 45.0,
             wrapup_seconds: float = 0.0) -> list:
        """The agent's outbound call to ``number``: the agent's phone rings first, then the
        customer is dialled. ``call_id`` is chosen by the adapter (it names the record)."""
        self._begin()
        agent = self._agents.get(agent_id)
        if agent is None or agent.state is AgentState.OFFLINE:
            raise NotLoggedIn(agent_id, "offline", "dial")
        if not is_number(number):
            raise tf.BadNumber()
        if agent.state not in _DIAL_FROM:
            raise tf.OnACall(agent_id, f"state {agent.state.value!r}")
        if (why := self._phone_unusable(agent)) is not None:
            raise tf.OnACall(agent_id, why)
        if (call_id in self._calls or call_id in self._ended or call_id in self._outbound
                or call_id in self._outbound_ended):
            raise DuplicateCall(call_id)
        out = _Outbound(call_id, agent_id, number, dial_timeout, wrapup_seconds, now)
        self._outbound[call_id] = out
        self._out.append(OutboundStarted(call_id, agent_id, number, now))
        # From busy, break or meeting: through idle (the agent table offers calls to idle
        # agents only); their state comes back after the call, as a pending state.
        back = None if agent.state is AgentState.IDLE else (agent.state, agent.reason)
        if back is not None:
            self._agent_event(agent, AgentEvent.GO_IDLE, now, "outbound call")
        agent.call_id = call_id
        self._agent_event(agent, AgentEvent.OFFER, now)
        if back is not None and agent.pending is None:
            agent.pending = back
            self._notify_state(agent)
        assert agent.endpoint is not None
        self._out.append(RingAgentForOutbound(call_id, agent_id, agent.endpoint, ring_timeout,
                                              number))
        self._start_timer(timer_key(T_OBRING, call_id), now + ring_timeout)
        self._out.append(Notify(agent_id, "outbound", {"call_id": call_id, "number": number,
                                                       "state": out.state.value}))
        return self._settle(now)

    # ------------------------------------------------------------------ restore

    def restore_control(self, call_id: str, now: float, *, held: bool = False,
                        held_since: float | None = None, invited: bool = False,
                        consult_agent: str | None = None,
                        consult_since: float | None = None) -> list:
        """After a restart (the call restored with ``restore_connected_call``): the caller
        holds (``held``), or the owner consults ``consult_agent`` (restored first with
        ``restore_agent``; answered: their legs are bridged) while the caller holds; the
        caller was invited to rate the call. A failed consult returns to hold."""
        self._begin()
        call = self._calls.get(call_id)
        if call is None or call.state is not CallState.CONNECTED or call.agent_id is None:
            raise RestoreInvalid(f"Call {call_id!r} must be restored as connected first.")
        ctl = self._ctl_of(call)
        ctl.invited = invited
        owner = self._agents[call.agent_id]
        if consult_agent:
            target = self._agents.get(consult_agent)
            if target is None or target.state not in (AgentState.IDLE, AgentState.BUSY,
                                                       AgentState.BREAK, AgentState.MEETING):
                    raise RestoreInvalid(f"Agent {consult_agent!r} must be restored in a manual "
                                     "state first.")
            since = now if consult_since is None else consult_since
            if target.state is not AgentState.IDLE and target.pending is None:
                target.pending = (target.state, target.reason)
            target.call_id = call_id
            target.reason = ""
            target.handle_started = since
            target.handle_group = call.group
            self._force_agent_state(target, AgentState.TALKING, since)
            ctl.transfer = Transfer("consult", consult_agent, None, since, answered_at=since)
            ctl.previous = ControlState.HELD
            ctl.state = ControlState.CONSULTING
            self._legstats[(call_id, consult_agent)] = _LegStat(call_id, consult_agent,
                                                                "consult", since)
            held = True
        elif held:
            ctl.state = ControlState.HELD
        if held:
            stat = self._leg_of(owner, call)
            stat.held_since = now if held_since is None else held_since
        return self._take()

    def restore_outbound(self, call_id: str, agent_id: str, number: str, now: float, *,
                         answered_at: float | None = None) -> list:
        """After a restart: the agent's outbound call is connected (agent restored first in
        a manual state)."""
        self._begin()
        agent = self._agents.get(agent_id)
        if agent is None or agent.state not in (AgentState.IDLE, AgentState.BUSY,
                                                AgentState.BREAK, AgentState.MEETING):
            raise RestoreInvalid(f"Agent {agent_id!r} must be restored in a manual state.")
        if call_id in self._outbound or call_id in self._calls:
            raise DuplicateCall(call_id)
        since = now if answered_at is None else answered_at
        out = _Outbound(call_id, agent_id, number, 0.0, 0.0, since,
                        state=OutboundState.CONNECTED, answered_at=since)
        self._outbound[call_id] = out
        if agent.state is not AgentState.IDLE and agent.pending is None:
            agent.pending = (agent.state, agent.reason)
        agent.call_id = call_id
        agent.reason = ""
        self._force_agent_state(agent, AgentState.TALKING, since)
        self._legstats[(call_id, agent_id)] = _LegStat(call_id, agent_id, "outbound", since)
        return self._take()

    # ------------------------------------------------------------------ queries

    def control_info(self, call_id: str) -> dict[str, Any] | None:
        """The call's control state (connected calls) or the outbound call; None if neither.
        JSON-ready."""
        out = self._outbound.get(call_id) or self._outbound_ended.get(call_id)
        if out is not None:
            return {"call_id": call_id, "outbound": True, "state": out.state.value,
                    "agent_id": out.agent_id, "number": out.number,
                    "answered_at": out.answered_at, "end_reason": out.end_reason}
        ctl = self._ctl.get(call_id)
        call = self._calls.get(call_id)
        if call is None or call.state is not CallState.CONNECTED:
            return None
        state = ctl.state if ctl else ControlState.TALKING
        t = ctl.transfer if ctl else None
        return {"call_id": call_id, "outbound": False, "state": state.value,
                "held": state in CALLER_HOLDS, "owner": call.agent_id,
                "invited": bool(ctl and ctl.invited),
                "transfer": None if t is None else {
                    "kind": t.kind, "target_agent": t.target_agent,
                    "target_group": t.target_group, "started_at": t.started_at,
                    "answered_at": t.answered_at, "ownerless": t.ownerless}}

    def is_outbound(self, call_id: str) -> bool:
        return call_id in self._outbound or call_id in self._outbound_ended

    # ------------------------------------------------------------------ hooks from Acd
    # Each returns None when the event is not call control's; else the decisions.

    def _control_ringing(self, call_id: str, agent_id: str, now: float) -> list | None:
        if call_id in self._outbound or call_id in self._outbound_ended:
            self._begin()
            return self._settle(now)
        call, ctl, t = self._target_of(call_id, agent_id)
        if t is None:
            return None
        self._begin()
        if ctl.state in (ControlState.TRANSFER_RINGING, ControlState.CONSULT_RINGING):
            move = tf.next_state(call_id, ctl.state, ControlAction.TARGET_RINGING)
            self._transfer_events(call, ctl, t, move.events, now)
        return self._settle(now)

    def _control_answered(self, call_id: str, agent_id: str, now: float) -> list | None:
        out = self._outbound.get(call_id)
        if out is not None or call_id in self._outbound_ended:
            self._begin()
            if out is not None and out.agent_id == agent_id and (
                    out.state is OutboundState.AGENT_RINGING):
                self._outbound_event(out, OutboundEvent.AGENT_ANSWERED, now)
                return self._settle(now)
            if out is None or out.agent_id != agent_id:
                return [CancelRing(call_id, agent_id)]
            return self._settle(now)
        call, ctl, t = self._target_of(call_id, agent_id)
        if t is None:
            return None
        self._begin()
        if ctl.state not in (ControlState.TRANSFER_RINGING, ControlState.CONSULT_RINGING):
            return self._settle(now)              # a repeated event
        target = self._agents[agent_id]
        self._cancel_timer(timer_key(T_XFER, call_id))
        move = tf.next_state(call_id, ctl.state, ControlAction.TARGET_ANSWERED)
        self._agent_event(target, AgentEvent.ANSWER, now)
        target.calls_answered += 1
        target.handle_started = now
        target.handle_group = call.group
        t.answered_at = now
        self._legstats[(call_id, agent_id)] = _LegStat(call_id, agent_id, t.kind, now)
        if ctl.state is ControlState.TRANSFER_RINGING:       # a transfer: hand over now
            self._hand_over(call, ctl, move, now, "transferred")
        else:                                                # a consult: the agents talk
            assert call.agent_id is not None
            self._out.append(BridgeConsult(call_id, call.agent_id, agent_id))
            self._out.append(Notify(agent_id, "answered", {"call_id": call_id,
                                                           "consult": True,
                                                           "from_agent": call.agent_id}))
            self._transfer_events(call, ctl, t, move.events, now)
            ctl.state = move.target
        return self._settle(now)

    def _control_ring_failed(self, call_id: str, agent_id: str, cause: str,
                             now: float) -> list | None:
        out = self._outbound.get(call_id)
        if out is not None or call_id in self._outbound_ended:
            self._begin()
            if out is not None and out.agent_id == agent_id and (
                    out.state is OutboundState.AGENT_RINGING):
                self._outbound_event(out, OutboundEvent.AGENT_FAILED, now, cause)
            return self._settle(now)
        call, ctl, t = self._target_of(call_id, agent_id)
        if t is None:
            return None
        self._begin()
        if ctl.state in (ControlState.TRANSFER_RINGING, ControlState.CONSULT_RINGING):
            move = tf.next_state(call_id, ctl.state, ControlAction.TARGET_FAILED,
                                 ctl.previous)
            self._ring_ended(call, ctl, now, move, (cause or "failed").strip().lower(),
                             failed=True)
        return self._settle(now)

    def _control_agent_hung_up(self, call_id: str, agent_id: str, now: float) -> list | None:
        out = self._outbound.get(call_id)
        if out is not None or call_id in self._outbound_ended:
            self._begin()
            if out is not None and out.agent_id == agent_id:
                if out.state is OutboundState.AGENT_RINGING:
                    self._outbound_event(out, OutboundEvent.AGENT_FAILED, now, "rejected")
                elif out.state is not OutboundState.ENDED:
                    self._outbound_event(out, OutboundEvent.AGENT_HANGUP, now)
            return self._settle(now)
        call = self._calls.get(call_id)
        ctl = self._ctl.get(call_id)
        if call is None or ctl is None or call.state is not CallState.CONNECTED:
            return None
        t = ctl.transfer
        if t is not None and t.target_agent == agent_id:        # the target's leg
            self._begin()
            if ctl.state is ControlState.CONSULTING:
                move = tf.next_state(call_id, ctl.state, ControlAction.TARGET_HANGUP,
                                     ctl.previous)
                target = self._agents[agent_id]
                self._release(target, call, now, "agent_hangup")
                ctl.transfer = None
                self._transfer_events(call, ctl, t, move.events, now, cause="target_hangup")
                self._back_to(call, ctl, move.target, now)
            elif ctl.state in (ControlState.TRANSFER_RINGING, ControlState.CONSULT_RINGING):
                move = tf.next_state(call_id, ctl.state, ControlAction.TARGET_FAILED,
                                     ctl.previous)
                self._ring_ended(call, ctl, now, move, "rejected", failed=True)
            return self._settle(now)
        if call.agent_id != agent_id or ctl.state not in TRANSFER_STATES:
            return None                   # the owner outside a transfer: the usual end
        self._begin()
        owner = self._agents[agent_id]
        move = tf.next_state(call_id, ctl.state, ControlAction.OWNER_HANGUP)
        assert t is not None
        if ctl.state is ControlState.CONSULTING:
            self._hand_over(call, ctl, move, now, "agent_hangup")
            return self._settle(now)
        # Ringing: the caller stays on hold; whoever answers gets them.
        self._release(owner, call, now, "agent_hangup")
        call.agent_id = None
        t.ownerless = True
        t.kind = "transfer"
        ctl.state = move.target
        self._rec(call_id, now, "owner_left", agent_id, {"target": t.target_agent})
        return self._settle(now)

    def _control_customer_answered(self, call_id: str, now: float) -> list | None:
        out = self._outbound.get(call_id)
        if out is None and call_id not in self._outbound_ended:
            return None
        self._begin()
        if out is not None and out.state is OutboundState.DIALING:
            self._outbound_event(out, OutboundEvent.CUSTOMER_ANSWERED, now)
        return self._settle(now)

    def _control_customer_failed(self, call_id: str, cause: str, now: float) -> list | None:
        out = self._outbound.get(call_id)
        if out is None and call_id not in self._outbound_ended:
            return None
        self._begin()
        if out is not None and out.state is OutboundState.DIALING:
            self._outbound_event(out, OutboundEvent.CUSTOMER_FAILED, now,
                                 (cause or "failed").strip().lower())
        return self._settle(now)

    def _control_caller_hung_up(self, call_id: str, now: float) -> list | None:
        """For an outbound call, the far end (the customer) hung up."""
        out = self._outbound.get(call_id)
        if out is None and call_id not in self._outbound_ended:
            return None
        self._begin()
        if out is not None and out.state is OutboundState.CONNECTED:
            self._outbound_event(out, OutboundEvent.CUSTOMER_HANGUP, now)
        elif out is not None and out.state is OutboundState.DIALING:
            self._outbound_event(out, OutboundEvent.CUSTOMER_FAILED, now, "hangup")
        return self._settle(now)

    def _control_timer(self, kind: str, ident: str, now: float) -> None:
        if kind == T_OBRING:
            out = self._outbound.get(ident)
            if out is not None and out.state is OutboundState.AGENT_RINGING:
                self._outbound_event(out, OutboundEvent.AGENT_FAILED, now, "no_answer")
            return
        call = self._calls.get(ident)
        ctl = self._ctl.get(ident)
        if (call is None or ctl is None or ctl.transfer is None
                or ctl.state not in (ControlState.TRANSFER_RINGING,
                                     ControlState.CONSULT_RINGING)):
            return
        move = tf.next_state(ident, ctl.state, ControlAction.TARGET_FAILED, ctl.previous)
        self._ring_ended(call, ctl, now, move, "no_answer", failed=True)

    def _control_call_ending(self, call: Call, event: CallEvent, now: float) -> None:
        """Acd._end: the call is about to end. Release a transfer or consult target, and
        send the caller to the survey if the agent invited them (and they are still on)."""
        ctl = self._ctl.pop(call.call_id, None)
        if ctl is None:
            return
        t = ctl.transfer
        if t is not None:
            self._cancel_timer(timer_key(T_XFER, call.call_id))
            target = self._agents.get(t.target_agent)
            cause = "caller_hangup" if event is CallEvent.CALLER_HANGUP else "call_ended"
            if target is not None and target.call_id == call.call_id:
                if ctl.state is ControlState.CONSULTING:
                    self._out.append(DropLeg(call.call_id, target.agent_id))
                    self._release(target, call, now, cause)
                else:
                    self._cancel_target_ring(call, target, now, cause)
            ctl.transfer = None
            self._transfer_events(call, ctl, t, (TransferEvent.FAILED,), now, cause=cause)
        if (event is CallEvent.AGENT_HANGUP and ctl.invited and not ctl.surveyed):
            ctl.surveyed = True
            self._out.append(SendToSurvey(call.call_id,
                                          redirect=ctl.state is not ControlState.TALKING))
            self._rec(call.call_id, now, "to_survey", call.agent_id)

    def _control_after_call(self, agent: "_Agent", call: Call, now: float,
                            reason: str | None) -> None:
        """Acd._after_call: the agent's part of the call is over (before the wrap-up)."""
        why = reason or (call.end_reason.value if call.end_reason else "ended")
        self._leg_closed(agent, call.call_id, now, why)

    def _control_wrapup_ended(self, agent: "_Agent", now: float) -> None:
        """Acd._finish_wrapup: the agent's wrap-up is over."""
        entry = self._wrapping.pop(agent.agent_id, None)
        if entry is not None and entry[0] == agent.call_id:
            self._out.append(RecordLegWrapup(entry[0], agent.agent_id,
                                             max(0.0, now - entry[1])))

    # ------------------------------------------------------------------ internals

    def _owned(self, agent_id: str) -> tuple["_Agent", Call, _Ctl]:
        """The agent, their connected call and its control; raise if they have none."""
        agent = self._agents.get(agent_id)
        if agent is None or agent.state is AgentState.OFFLINE:
            raise NotLoggedIn(agent_id, "offline", "call_control")
        call = self._calls.get(agent.call_id or "")
        if (call is None or call.state is not CallState.CONNECTED
                or call.agent_id != agent_id or agent.state is not AgentState.TALKING):
            raise tf.NoCall(agent_id, agent.state.value)
        return agent, call, self._ctl_of(call)

    def _ctl_of(self, call: Call) -> _Ctl:
        ctl = self._ctl.get(call.call_id)
        if ctl is None:
            ctl = self._ctl[call.call_id] = _Ctl(call.call_id)
        return ctl

    def _target(self, owner_id: str, agent_id: str) -> "_Agent":
        if agent_id == owner_id:
            raise tf.TargetIsSelf(owner_id)
        target = self._agents.get(agent_id)
        if target is None or target.state is AgentState.OFFLINE:
            raise tf.TargetUnavailable(agent_id, "not logged in")
        if not target.available:
            why = (target.state.value if target.state is not AgentState.IDLE
                   else self._phone_unusable(target) or "idle")
            raise tf.TargetUnavailable(agent_id, why)
        return target

    def _target_of(self, call_id: str, agent_id: str):
        """(call, control, transfer) if ``agent_id`` is the call's transfer or consult
        target; else (None, None, None)."""
        call = self._calls.get(call_id)
        ctl = self._ctl.get(call_id)
        if call is None or ctl is None or ctl.transfer is None:
            return None, None, None
        if ctl.transfer.target_agent != agent_id or call.agent_id == agent_id:
            return None, None, None
        return call, ctl, ctl.transfer

    def _leg_of(self, agent: "_Agent", call: Call) -> _LegStat:
        key = (call.call_id, agent.agent_id)
        stat = self._legstats.get(key)
        if stat is None:
            started = (agent.handle_started if agent.handle_started is not None
                       else call.answered_at if call.answered_at is not None else 0.0)
            role = "callback" if call.callback is not None else "answer"
            stat = self._legstats[key] = _LegStat(call.call_id, agent.agent_id, role, started)
        return stat

    def _set_control(self, call: Call, ctl: _Ctl, state: ControlState, now: float) -> None:
        """Move the call's control state; the owner's hold clock follows the caller."""
        was = ctl.state in CALLER_HOLDS
        ctl.state = state
        if call.agent_id is None:
            return
        stat = self._leg_of(self._agents[call.agent_id], call)
        holds = state in CALLER_HOLDS
        if holds and not was:
            stat.held_since = now
        elif was and not holds and stat.held_since is not None:
            stat.hold += max(0.0, now - stat.held_since)
            stat.held_since = None

    def _start_transfer(self, owner: "_Agent", call: Call, ctl: _Ctl, kind: str,
                        target: "_Agent", group: str | None, now: float) -> None:
        call_id = call.call_id
        ctl.previous = ctl.state
        if ctl.state is ControlState.TALKING:
            self._out.append(HoldCaller(call_id, owner.agent_id))
        new = (ControlState.TRANSFER_RINGING if kind == "transfer"
               else ControlState.CONSULT_RINGING)
        self._set_control(call, ctl, new, now)
        t = ctl.transfer = Transfer(kind, target.agent_id, group, now)
        target.call_id = call_id
        self._agent_event(target, AgentEvent.OFFER, now)
        timeout = self._groups[call.group].cfg.ring_timeout
        assert target.endpoint is not None
        self._out.append(RingTarget(call_id, target.agent_id, target.endpoint, timeout,
                                    call.caller_number, kind, owner.agent_id))
        self._start_timer(timer_key(T_XFER, call_id), now + timeout)
        self._out.append(Notify(target.agent_id, "ring", {
            "call_id": call_id, "caller_number": call.caller_number, "group": call.group,
            "priority": call.priority, "key_trail": list(call.key_trail),
            "verification": call.verification, "waited": 0.0, "callback": False,
            "number": None, kind: {"from_agent": owner.agent_id}}))
        self._transfer_events(call, ctl, t, (TransferEvent.STARTED,), now)

    def _transfer_to_group(self, owner: "_Agent", call: Call, ctl: _Ctl, group: str,
                           now: float) -> None:
        call_id = call.call_id
        t = Transfer("transfer", "", group, now)
        self._set_control(call, ctl, ControlState.TALKING, now)   # closes the hold clock
        priority = call.priority + tf.TRANSFER_PRIORITY_BOOST
        self._requeue_caller(call, group, priority, now)
        self._out.append(DropLeg(call_id, owner.agent_id))
        self._transfer_events(call, ctl, t, (TransferEvent.STARTED, TransferEvent.COMPLETED),
                              now)
        self._release(owner, call, now, "transferred")
        self._ctl.pop(call_id, None)
        self._queue_again(call, group, priority, now)

    def _requeue_caller(self, call: Call, group: str, priority: int, now: float) -> None:
        """Ask for the caller's channel back in ``group``'s queue (it then carries the
        group, so the ``queued`` record that follows needs no RegroupCaller)."""
        if call.channel_group is not None:
            call.channel_group = group
        self._out.append(RequeueCaller(call.call_id, group, priority, now))

    def _queue_again(self, call: Call, group: str, priority: int, now: float) -> None:
        """The core's call waits in ``group`` again, ahead by ``priority`` (call control's own
        move of the call: a transfer to a group, a caller whose agent's phone died)."""
        target = tf.call_move(call.call_id, call.state, tf.CALL_REQUEUE)
        self._detach(call)
        call.state = target
        call.agent_id = None
        call.priority = priority
        self._enter_group(call, group, now)

    def _ring_ended(self, call: Call, ctl: _Ctl, now: float, move: tf.Move, cause: str,
                    failed: bool) -> None:
        """The target's phone stopped ringing unanswered (cancelled or failed)."""
        t = ctl.transfer
        assert t is not None
        target = self._agents[t.target_agent]
        self._cancel_timer(timer_key(T_XFER, call.call_id))
        if failed:
            self._out.append(CancelRing(call.call_id, target.agent_id))
            self._out.append(Notify(target.agent_id, "ended", {"call_id": call.call_id,
                                                               "reason": cause}))
            target.call_id = None
            if cause in _NO_ANSWER and self._groups[call.group].cfg.no_answer_break:
                self._agent_event(target, AgentEvent.NO_ANSWER, now, "no answer")
            else:
                self._agent_event(target, AgentEvent.RING_CANCELLED, now, keep_idle=True)
        else:
            self._cancel_target_ring(call, target, now, cause)
        ctl.transfer = None
        self._transfer_events(call, ctl, t, move.events, now, cause=cause)
        if t.ownerless:                     # nobody to go back to: the caller's queue again
            self._requeue_ownerless(call, ctl, now)
            return
        self._back_to(call, ctl, move.target, now)

    def _cancel_target_ring(self, call: Call, target: "_Agent", now: float,
                            why: str) -> None:
        self._out.append(CancelRing(call.call_id, target.agent_id))
        self._out.append(Notify(target.agent_id, "ended", {"call_id": call.call_id,
                                                           "reason": why}))
        target.call_id = None
        self._agent_event(target, AgentEvent.RING_CANCELLED, now, keep_idle=True)

    def _back_to(self, call: Call, ctl: _Ctl, state: ControlState, now: float) -> None:
        """After a transfer or consult ended without a hand-over: talking (bridge the owner
        again) or held (the caller keeps the music)."""
        assert call.agent_id is not None
        self._set_control(call, ctl, state, now)
        if state is ControlState.TALKING:
            self._out.append(ResumeCaller(call.call_id, call.agent_id))
        self._out.append(Notify(call.agent_id, "hold", {"call_id": call.call_id,
                                                        "held": state is ControlState.HELD}))

    def _hand_over(self, call: Call, ctl: _Ctl, move: tf.Move, now: float, why: str) -> None:
        """The transfer or consult target gets the caller; the owner (if still there)
        drops and wraps up."""
        t = ctl.transfer
        assert t is not None
        call_id = call.call_id
        target = self._agents[t.target_agent]
        old = self._agents[call.agent_id] if call.agent_id else None
        if old is not None:
            self._set_control(call, ctl, ControlState.TALKING, now)   # close the old hold
        ctl.state = ControlState.TALKING
        ctl.transfer = None
        self._out.append(BridgeTarget(call_id, target.agent_id))
        if old is not None:
            self._out.append(DropLeg(call_id, old.agent_id))
            self._release(old, call, now, why)
        call.agent_id = target.agent_id
        self._remember(call.caller_number, target.agent_id, now)
        self._out.append(Notify(target.agent_id, "answered", {
            "call_id": call_id, "callback": False, t.kind: {"from_agent":
                                                            old.agent_id if old else None}}))
        self._transfer_events(call, ctl, t, move.events, now,
                              owner=old.agent_id if old else None)

    def _requeue_ownerless(self, call: Call, ctl: _Ctl, now: float) -> None:
        """An ownerless transfer failed: the caller goes back to their group's queue."""
        call_id = call.call_id
        group = call.group
        priority = call.priority + tf.TRANSFER_PRIORITY_BOOST
        self._ctl.pop(call_id, None)
        self._requeue_caller(call, group, priority, now)
        self._rec(call_id, now, "requeued", None, {"group": group})
        self._queue_again(call, group, priority, now)

    def _release(self, agent: "_Agent", call: Call, now: float, reason: str) -> None:
        """The agent's part is over: wrap-up (the group's), then their next state."""
        self._after_call(agent, call, now, reason)

    def _leg_closed(self, agent: "_Agent", call_id: str, now: float, reason: str) -> None:
        key = (call_id, agent.agent_id)
        stat = self._legstats.pop(key, None)
        if stat is None:
            call = self._calls.get(call_id) or self._ended.get(call_id)
            if call is None or call.answered_at is None or agent.handle_started is None:
                return                        # never talked (e.g. a failed callback attempt)
            started = agent.handle_started
            role = "callback" if call.callback is not None else "answer"
            stat = _LegStat(call_id, agent.agent_id, role, started)
        hold = stat.hold
        if stat.held_since is not None:
            hold += max(0.0, now - stat.held_since)
        total = max(0.0, now - stat.started)
        self._out.append(RecordLeg(call_id, agent.agent_id, stat.role, stat.started, now,
                                   max(0.0, total - hold), hold, reason))
        self._wrapping[agent.agent_id] = (call_id, now)

    def _transfer_events(self, call: Call, ctl: _Ctl, t: Transfer,
                         events: tuple[TransferEvent, ...], now: float, *, cause: str = "",
                         owner: str | None = None) -> None:
        owner = owner if owner is not None else call.agent_id
        for ev in events:
            detail: dict[str, Any] = {"target_agent": t.target_agent or None,
                                      "target_group": t.target_group}
            if cause:
                detail["cause"] = cause
            self._rec(call.call_id, now, f"{t.kind}_{ev.value}", owner, detail)
            payload = {"call_id": call.call_id, "kind": t.kind, "event": ev.value,
                       "target_agent": t.target_agent or None, "target_group": t.target_group,
                       "cause": cause or None}
            if owner:
                self._out.append(Notify(owner, "transfer", payload))
            if t.target_agent and t.target_agent != owner and ev in (
                    TransferEvent.COMPLETED,):
                self._out.append(Notify(t.target_agent, "transfer", payload))

    def _rec(self, call_id: str, now: float, kind: str, agent_id: str | None,
             detail: dict[str, Any] | None = None) -> None:
        self._out.append(RecordControl(call_id, now, kind, agent_id, dict(detail or {})))

    # ------------------------------------------------------------------ outbound

    def _outbound_event(self, out: _Outbound, event: OutboundEvent, now: float,
                        cause: str = "") -> None:
        move = tf.next_outbound(out.call_id, out.state, event)
        agent = self._agents[out.agent_id]
        call_id = out.call_id
        before = out.state
        out.state = move.target
        if event is OutboundEvent.AGENT_ANSWERED:
            self._cancel_timer(timer_key(T_OBRING, call_id))
            self._agent_event(agent, AgentEvent.ANSWER, now)
            agent.handle_started = now
            agent.handle_group = None
            self._out.append(DialCustomer(call_id, out.agent_id, out.number, out.dial_timeout))
            self._rec(call_id, now, "dialing", out.agent_id, {"number": out.number})
        elif event is OutboundEvent.CUSTOMER_ANSWERED:
            out.answered_at = now
            self._legstats[(call_id, out.agent_id)] = _LegStat(call_id, out.agent_id,
                                                               "outbound", now)
            self._out.append(BridgeCall(call_id, out.agent_id))
            self._rec(call_id, now, "answered", out.agent_id)
        self._out.append(Notify(out.agent_id, "outbound", {
            "call_id": call_id, "number": out.number, "state": out.state.value,
            "cause": cause or None}))
        if move.target is not OutboundState.ENDED:
            return
        self._cancel_timer(timer_key(T_OBRING, call_id))
        out.ended_at = now
        out.end_reason = move.end_reason
        self._outbound.pop(call_id, None)
        self._outbound_ended[call_id] = out
        while len(self._outbound_ended) > self._keep_ended:
            self._outbound_ended.popitem(last=False)
        self._out.append(CancelRing(call_id, out.agent_id))     # whatever leg is left
        self._out.append(OutboundEnded(call_id, out.agent_id, move.end_reason or "ended", now,
                                       cause))
        self._out.append(ReleaseLegs(call_id, caller_too=False))
        self._out.append(Notify(out.agent_id, "ended", {"call_id": call_id,
                                                        "reason": move.end_reason}))
        if agent.call_id != call_id:
            return
        if before is OutboundState.AGENT_RINGING:
            agent.call_id = None
            self._agent_event(agent, AgentEvent.RING_CANCELLED, now, keep_idle=True)
            return
        if (call_id, out.agent_id) in self._legstats:
            self._leg_closed(agent, call_id, now, move.end_reason or "ended")
        self._agent_event(agent, AgentEvent.CALL_ENDED, now)
        if out.wrapup_seconds > 0:
            self._start_timer(timer_key(T_WRAPUP, agent.agent_id), now + out.wrapup_seconds)
        else:
            self._finish_wrapup(agent, now)


__all__ = ["CallControl"]
