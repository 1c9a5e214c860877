"""Call control in the core: hold, transfers, consults, the survey, rating invitations and
the agent's hangup. Plain Python, no I/O; a layer of :class:`acd.core.Acd` on the core's
engine (:mod:`acd.core.engine`), above outbound calls (:mod:`acd.core.outbound`).

The state machines are the tables of :mod:`acd.core.transfers`; this module carries them out
against the ACD's agents (whose states change only through :mod:`acd.core.agent_states`:
a transfer or consult target is offered the call, answers, talks, wraps up) and calls.

Agent actions (each returns decisions; a refusal raises an :class:`~acd.core.AcdError` with a
stable id and changes nothing): :meth:`CallControl.hold_call`, ``resume_call``, ``transfer``
(to an idle agent or a skill group), ``consult`` (an idle agent, or a group's next free
agent), ``cancel_transfer``, ``complete_consult``, ``return_from_consult``, ``to_survey``,
``invite_rating``, ``hang_up``; ``dial`` (outbound) comes from
:class:`~acd.core.outbound.OutboundCalls`.

What happens to the legs is fed in through the ACD's usual events (``agent_ringing``,
``agent_answered``, ``ring_failed``, ``agent_hung_up``, ``caller_hung_up``,
``customer_answered``, ``customer_dial_failed``): the core knows which leg is a transfer or
consult target and which call is an outbound call, so the adapter reports legs the same way
for every call. The ``_control_*`` hooks return None when an event is not call control's.

Decisions (all in :mod:`acd.core.decisions`): :class:`~acd.core.HoldCaller`,
:class:`~acd.core.ResumeCaller`, :class:`~acd.core.RingTarget`,
:class:`~acd.core.BridgeTarget`, :class:`~acd.core.BridgeConsult`, :class:`~acd.core.DropLeg`,
:class:`~acd.core.RequeueCaller`, :class:`~acd.core.SendToSurvey`,
:class:`~acd.core.InviteRating`, :class:`~acd.core.RecordControl`; an agent's part of a call
is recorded by the engine (:class:`~acd.core.RecordLeg`, :class:`~acd.core.RecordLegWrapup`).
Notify events on the agent's screen: ``hold`` (``held`` true or false), ``transfer`` (``kind``
transfer or consult, ``event`` started ... failed, ``target``, ``cause``), ``rating_invited``,
and the usual ``ring``, ``answered``, ``ended`` for targets.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from acd.core import transfers as tf
from acd.core.agent_states import AgentEvent, AgentState
from acd.core.agents import Agent
from acd.core.calls import Call, CallEvent, CallEventKind, CallState
from acd.core.decisions import (BridgeConsult, BridgeTarget, CancelRing, DropLeg, HoldCaller,
                                InviteRating, Notify, RequeueCaller, ResumeCaller,
                                RingTarget, SendToSurvey)
from acd.core.engine import LegStat
from acd.core.errors import NotLoggedIn, RestoreInvalid, UnknownGroup
from acd.core.outbound import OutboundCalls, outbound_view
from acd.core.timers import T_PHONE, T_XFER, timer_key
from acd.core.views import control_view
from acd.core.transfers import (CALLER_HOLDS, TRANSFER_STATES, ControlAction, ControlState,
                                Transfer, TransferEvent)

_NO_ANSWER = frozenset({"no_answer", "noanswer", "no answer", "timeout"})


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


# =============================================================================== call control

class CallControl(OutboundCalls):
    """Call control of connected calls, on the core's engine (agents, calls, timers,
    records); outbound calls come from :class:`~acd.core.outbound.OutboundCalls`. See the
    module docstring."""

    def _init_control(self) -> None:
        self._ctl: dict[str, _Ctl] = {}

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
        """The agent's phone stopped answering (``cause``: e.g. ``unreachable``, its qualify
        failed) while it rang or while the agent talked, without the agent hanging up.

        Ringing: a failed ring at once (the no-answer path: the caller goes to the next
        agent). Talking with a caller (held or not, no transfer or consult under way): after
        the core's phone grace, if the phone is still unreachable (``contact_status`` did not
        say it is back), the caller goes back to their group's queue at the front, as a
        transfer to the group does, and the agent's leg is dropped; the agent's part ends
        (wrap-up), then the agent goes to break with the reason ``phone lost`` (not idle while
        the phone is dead) unless they chose their next state already. Anything else is left
        to the legs' own hangups."""
        self._begin()
        agent = self._agents.get(agent_id)
        call = self._calls.get(agent.call_id or "") if agent is not None else None
        if agent is None or call is None or call.agent_id != agent_id:
            return self._settle(now)
        if call.state in (CallState.RINGING, CallState.CALLBACK_RINGING):
            self._unanswered(call, now, cause, cancel_leg=True)
            return self._settle(now)
        if self._phone_grace > 0:
            key = timer_key(T_PHONE, agent_id)
            if key not in self._timers:
                self._start_timer(key, now + self._phone_grace)
            return self._settle(now)
        self._phone_gone(agent_id, cause, now)
        return self._settle(now)

    def _phone_gone(self, agent_id: str, cause: str, now: float, *,
                    still_unreachable: bool = False) -> None:
        """The agent's phone is lost for good during a conversation: the caller goes back to
        the front of the queue (see :meth:`phone_lost`). Nothing if the phone is reachable
        again or the conversation is over or under way elsewhere."""
        agent = self._agents.get(agent_id)
        call = self._calls.get(agent.call_id or "") if agent is not None else None
        if agent is None or call is None or call.agent_id != agent_id:
            return
        if still_unreachable and self._reachable.get(agent.endpoint or "", True):
            return
        call_id = call.call_id
        ctl = self._ctl.get(call_id)
        if (call.state is not CallState.CONNECTED or call.callback is not None
                or call_id in self._outbound or (ctl is not None and ctl.transfer is not None)):
            return
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
        if (done := self._outbound_hang_up(agent_id, now)) is not None:
            return done
        agent, call, ctl = self._owned(agent_id)
        tf.next_state(call.call_id, ctl.state, ControlAction.HANGUP)
        self._rec(call.call_id, now, "agent_hangup_request", agent_id)
        self._end(call, CallEvent.AGENT_HANGUP, now)
        self._after_call(agent, call, now)
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
            self._legstats[(call_id, consult_agent)] = LegStat(call_id, consult_agent,
                                                               "consult", since)
            held = True
        elif held:
            ctl.state = ControlState.HELD
        if held:
            stat = self._leg_of(owner, call)
            stat.held_since = now if held_since is None else held_since
        return self._take()

    # ------------------------------------------------------------------ queries

    def control_info(self, call_id: str) -> dict[str, Any] | None:
        """The call's control state (connected calls) or the outbound call; None if neither.
        JSON-ready."""
        out = self._outbound_of(call_id)
        if out is not None:
            return outbound_view(out)
        ctl = self._ctl.get(call_id)
        call = self._calls.get(call_id)
        if call is None or call.state is not CallState.CONNECTED:
            return None
        state = ctl.state if ctl else ControlState.TALKING
        return control_view(call, state, bool(ctl and ctl.invited), ctl.transfer if ctl else None)

    # ------------------------------------------------------------------ hooks from Acd
    # Each returns None when the event is not call control's (nor an outbound call's); else
    # the decisions.

    def _control_ringing(self, call_id: str, agent_id: str, now: float) -> list | None:
        if (done := self._outbound_ringing(call_id, agent_id, now)) is not None:
            return done
        call, ctl, t = self._target_of(call_id, agent_id)
        if t is None:
            return None
        self._begin()
        if ctl.state in (ControlState.TRANSFER_RINGING, ControlState.CONSULT_RINGING):
            move = tf.next_state(call_id, ctl.state, ControlAction.TARGET_RINGING)
            self._transfer_events(call, ctl, t, move.events, now)
        return self._settle(now)

    def _control_answered(self, call_id: str, agent_id: str, now: float) -> list | None:
        if (done := self._outbound_answered(call_id, agent_id, now)) is not None:
            return done
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
        self._legstats[(call_id, agent_id)] = LegStat(call_id, agent_id, t.kind, now)
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
        if (done := self._outbound_ring_failed(call_id, agent_id, cause, now)) is not None:
            return done
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
        if (done := self._outbound_agent_hung_up(call_id, agent_id, now)) is not None:
            return done
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

    def _control_timer(self, ident: str, now: float) -> None:
        """A transfer or consult target rang too long."""
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

    # ------------------------------------------------------------------ internals

    def _owned(self, agent_id: str) -> tuple[Agent, Call, _Ctl]:
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

    def _target(self, owner_id: str, agent_id: str) -> Agent:
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

    def _start_transfer(self, owner: Agent, call: Call, ctl: _Ctl, kind: str,
                        target: Agent, group: str | None, now: float) -> None:
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
            "call_id": call_id, "caller_number": call.caller_text or call.caller_number,
            "group": call.group,
            "priority": call.priority, "key_trail": list(call.key_trail),
            "verification": call.verification, "waited": 0.0, "callback": False,
            "number": None, kind: {"from_agent": owner.agent_id}}))
        self._transfer_events(call, ctl, t, (TransferEvent.STARTED,), now)

    def _transfer_to_group(self, owner: Agent, call: Call, ctl: _Ctl, group: str,
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

    def _cancel_target_ring(self, call: Call, target: Agent, now: float,
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

    def _release(self, agent: Agent, call: Call, now: float, reason: str) -> None:
        """The agent's part is over: wrap-up (the group's), then their next state."""
        self._after_call(agent, call, now, reason)

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

    # ------------------------------------------------------------------ outbound


__all__ = ["CallControl"]
