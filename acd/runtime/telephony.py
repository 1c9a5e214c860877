"""Telephony decisions carried out over AMI: one method per decision of the core.

=======================  ==================================================================
decision                 what is sent
=======================  ==================================================================
RingAgent(ForCallback)   Originate ``PJSIP/<endpoint>`` (async, a ChannelId we choose, the
                         caller's number as caller id) into ``[acd-agent]``.
CancelRing               Hangup of the agent's leg (by its Uniqueid; again when the channel
                         shows up later); a callback's customer leg too.
BridgeCall               Bridge of the caller (or the customer) with the agent's answered
                         leg, then ``ACD_BRIDGED=1`` on the caller.
DialCustomer             Originate to the customer (``customer_dial``) into
                         ``[acd-customer]``.
SendToDestination        Redirect of the caller to ``[acd-dest]`` or ``[acd-voicemail]``.
ReleaseLegs              Hangup of every leg of an ended call (and of the caller, after a
                         conversation).
RegroupCaller            ``ACD_GROUP`` and ``ACD_ENTERED`` of the new group on the caller.
HoldCaller               ``ACD_OWNER``, ``ACD_HELD_AT``, then one Redirect of both sides
                         (``ExtraChannel``) into ``[acd-hold]``. AMI has no Hold action.
ResumeCaller/            Bridge of the caller with the owner's (or the target's) leg.
BridgeTarget
RingTarget               Originate to the target's phone into ``acd-hold,agent``.
BridgeConsult            Bridge of the owner's leg with the target's leg.
DropLeg                  Hangup of the agent's leg after the call's earlier actions.
RequeueCaller            Variables reset, then Redirect of the caller to ``[acd-queue]``.
InviteRating/            ``ACD_SURVEY=1`` on the caller; a held caller is redirected to
SendToSurvey             ``[acd-survey]``.
RingAgentForOutbound     Originate to the agent's phone into ``[acd-agent]``.
=======================  ==================================================================

Each call's actions run in one ordered chain (:meth:`AmiOut.chain`). An action that fails
is logged; a failed ring or dial is reported to the core through ``leg_failed``. Call control
moves channels between bridges itself: each move is announced to :class:`Bridges` first, so
that the leave it causes is not taken for a hangup.
"""
from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

from acd.ami.client import AmiActionError, AmiError
from acd.asterisk import dialplan as dp
from acd.core import (BridgeCall, BridgeConsult, BridgeTarget, CancelRing, DestinationKind,
                      DialCustomer, DropLeg, HoldCaller, InviteRating, RegroupCaller,
                      ReleaseLegs, RequeueCaller, ResumeCaller, RingAgent,
                      RingAgentForCallback, RingAgentForOutbound, RingTarget,
                      SendToDestination, SendToSurvey)
from acd.core.numbers import is_number
from acd.runtime.ami_out import JOIN_ATTEMPTS, JOIN_RETRY_SECONDS, AmiOut
from acd.runtime.channels import AGENT_LEG, CUSTOMER_LEG, Bridges, Caller, Channels, Leg

_BOX = re.compile(r"[^0-9A-Za-z_]")


#: How long a channel leaving a dissolved bridge may take to be hung up by the dialplan
#: before the runtime hangs it up itself.
DISSOLVE_GRACE = 3.0


def cid_text(text: str) -> str:
    """Caller id text that cannot break an AMI header or the quoting of CallerID: control
    characters (CR and LF among them), quotes, angle brackets and backslashes are taken out."""
    return re.sub(r'[\x00-\x1f\x7f"<>\\]', "", text or "")[:80]


def destination(d: SendToDestination) -> tuple[str, str, dict[str, str]]:
    """Where a caller sent to ``d.destination`` goes: context, extension, variables."""
    dest = d.destination
    kind = DestinationKind(dest.kind)
    if kind is DestinationKind.VOICEMAIL:
        return dp.VOICEMAIL_CONTEXT, "s", {dp.VM_BOX: _BOX.sub("_", dest.target)[:40]
                                           or "default"}
    if kind is DestinationKind.CALLBACK:
        return dp.DEST_CONTEXT, dp.DEST_CALLBACK, {}
    if kind is DestinationKind.IVR:
        ok = dest.target and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", dest.target)
        return dp.DEST_CONTEXT, dp.DEST_IVR, {dp.FLOW: dest.target} if ok else {}
    ok = dest.target and re.fullmatch(r"[A-Za-z0-9_/-]{1,64}", dest.target)
    return dp.DEST_CONTEXT, dp.DEST_HANGUP, {dp.SOUND: dest.target} if ok else {}


class Telephony:
    """Carries out the core's telephony decisions (see the module docstring)."""

    def __init__(self, channels: Channels, bridges: Bridges, out: AmiOut, *, acd: Any,
                 log: Any, clock: Callable[[], float],
                 leg_failed: Callable[[Leg, str], None],
                 feed_later: Callable[..., None], drop_ring: Callable[[str, str], None],
                 customer_dial: str, outbound_cid: Callable[[], str | None],
                 ring_grace: float,
                 talking: Callable[[str, str, str, str], None] = lambda *a: None) -> None:
        self.ch, self.bridges, self.out = channels, bridges, out
        self.acd, self.log, self.clock = acd, log, clock
        self.leg_failed = leg_failed        # a ring or dial that will not happen
        self.feed_later = feed_later        # a core event on the next loop turn
        self.drop_ring = drop_ring          # a ring notification held for the agent's page
        self.customer_dial = customer_dial
        self.outbound_cid = outbound_cid    # caller id of calls to customers
        self.ring_grace = ring_grace
        self.talking = talking              # (call, agent, leg, channel): a leg in a talk


    # ================================================================ rings and dials

    def ring(self, d: RingAgent | RingAgentForCallback) -> None:
        if isinstance(d, RingAgent):
            ctx = self.ch.caller(d.call_id)
            cid_num = cid_text(d.caller_number)
            cid_name = cid_text(ctx.caller_name if ctx else "") or cid_num
        else:
            cid_num = cid_text(d.number)
            cid_name = f"Callback {cid_num}"
        self._originate_agent(d.call_id, d.agent_id, d.endpoint, d.timeout, cid_num, cid_name,
                              dp.AGENT_CONTEXT, "s", extra=(f"{dp.GROUP}={d.group}",),
                              callback=isinstance(d, RingAgentForCallback))

    def ring_target(self, d: RingTarget) -> None:
        ctx = self.ch.caller(d.call_id)
        cid_num = cid_text(d.caller_number)
        cid_name = cid_text(ctx.caller_name if ctx else "") or cid_num
        self._originate_agent(d.call_id, d.agent_id, d.endpoint, d.timeout, cid_num, cid_name,
                              dp.HOLD_CONTEXT, dp.HOLD_TARGET_EXTEN,
                              extra=(f"{dp.ROLE}={d.role}",), role=d.role)

    def ring_for_outbound(self, d: RingAgentForOutbound) -> None:
        self._originate_agent(d.call_id, d.agent_id, d.endpoint, d.timeout,
                              cid_text(d.number), "Outbound call", dp.AGENT_CONTEXT, "s",
                              extra=(f"{dp.ROLE}=outbound",), role="outbound")

    def _originate_agent(self, call_id: str, agent_id: str, endpoint: str, timeout: float,
                         cid_num: str, cid_name: str, context: str, exten: str, *,
                         extra: tuple[str, ...], **log_kw: Any) -> None:
        """Ring an agent's phone: a new leg replaces the call's earlier one of this agent."""
        old = self.ch.agent_leg(call_id, agent_id)
        if old is not None and not old.gone:
            old.cancelled = True
            self.out.hangup(old.uid, old.call_id, old.agent_id)
        leg = self.ch.new_leg(AGENT_LEG, call_id, agent_id)
        self.log.info("runtime.ring", call=call_id, agent=agent_id, leg=leg.uid,
                      endpoint=endpoint, **log_kw)

        def failed(exc: AmiError) -> None:
            # Asterisk refused the ring, or never answered the request (saturated, or the
            # link cut): the latter is no fault of the agent's (no break for it).
            self.leg_failed(leg, "originate_failed" if isinstance(exc, AmiActionError)
                            else "asterisk_unanswered")
            if isinstance(exc, AmiActionError):   # refused: no channel will appear
                self.ch.forget_leg(leg)
        self.out.chain(call_id, self.out.originate(
            call_id, agent_id, failed, Channel=dp.AGENT_DIAL.format(endpoint=endpoint),
            Context=context, Exten=exten, Priority=1,
            Timeout=int((timeout + self.ring_grace) * 1000),
            CallerID=f'"{cid_name}" <{cid_num}>' if cid_num else None, ChannelId=leg.uid,
            Variable=[f"{dp.CALL}={call_id}", f"{dp.AGENT}={agent_id}", *extra]))

    def dial_customer(self, d: DialCustomer) -> None:
        if not is_number(d.number):
            self.log.warning("runtime.bad_callback_number", call=d.call_id, agent=d.agent_id)
            self.feed_later("customer_dial_failed", self.acd.customer_dial_failed, d.call_id,
                            "invalid_number", call=d.call_id)
            return
        old = self.ch.customer(d.call_id)
        if old is not None and not old.gone:
            old.cancelled = True
            self.out.hangup(old.uid, d.call_id, d.agent_id)
        leg = self.ch.new_leg(CUSTOMER_LEG, d.call_id, d.agent_id)
        self.log.info("runtime.dial_customer", call=d.call_id, agent=d.agent_id, leg=leg.uid)

        def failed(exc: AmiError) -> None:
            self.leg_failed(leg, "originate_failed")
            self.ch.forget_leg(leg)
        self.out.chain(d.call_id, self.out.originate(
            d.call_id, d.agent_id, failed, Channel=self.customer_dial.format(number=d.number),
            Context=dp.CUSTOMER_CONTEXT, Exten="s", Priority=1, Timeout=int(d.timeout * 1000),
            CallerID=self.outbound_cid(), ChannelId=leg.uid,
            Variable=[f"{dp.CALL}={d.call_id}", f"{dp.AGENT}={d.agent_id}"]))

    def cancel_ring(self, d: CancelRing) -> None:
        self.drop_ring(d.call_id, d.agent_id)
        uids = [self.ch.leg_of.get((d.call_id, d.agent_id), "")]
        cust = self.ch.customer(d.call_id)
        if cust is not None and cust.agent_id == d.agent_id:
            uids.append(cust.uid)
        for uid in uids:
            leg = self.ch.legs.get(uid)
            if leg is None or leg.cancelled:
                continue
            leg.cancelled = True
            self.log.info("runtime.cancel_ring", call=d.call_id, agent=d.agent_id, leg=uid,
                          kind=leg.kind)
            if not leg.gone:
                self.out.hangup(uid, d.call_id, d.agent_id)

    def release_legs(self, d: ReleaseLegs) -> None:
        """The call ended in the core: no leg of it may stay up. After a conversation the
        caller's side goes too. A caller on their way to the survey must have left the
        bridge (or have ACD_SURVEY set) before their agent's leg goes: then the legs go after
        the call's actions so far; else at once.

        A channel that left the bridge by hanging up, and the one still in the bridge it
        left (a two-party bridge dissolves, and the dialplan hangs it up: ``ACD_BRIDGED``),
        are going by themselves: they are not hung up here, where the AMI Hangup would only
        race theirs and meet "No such channel". Should one still be up after
        :data:`DISSOLVE_GRACE` seconds, it is hung up then."""
        ctx = self.ch.caller(d.call_id)
        after_actions = ctx is not None and ctx.sent and not ctx.gone
        for leg in self.ch.legs_of(d.call_id):
            if not leg.gone and not leg.cancelled:
                leg.cancelled = True
                if self.bridges.leaving(leg.uid):
                    self._hang_up_later(leg.uid, lambda leg=leg: leg.gone, d.call_id,
                                        leg.agent_id)
                elif after_actions:
                    self.out.chain(d.call_id, self.out.hangup_action(leg.uid, d.call_id,
                                                                     leg.agent_id))
                else:
                    self.out.hangup(leg.uid, d.call_id, leg.agent_id)
        if ctx is not None and d.caller_too and not ctx.gone and not ctx.sent:
            if self.bridges.leaving(ctx.call_id):
                self._hang_up_later(ctx.channel, lambda: ctx.gone, d.call_id, None)
            else:
                self.out.hangup(ctx.channel, d.call_id, None)

    def _hang_up_later(self, channel: str, gone: Callable[[], bool], call_id: str,
                       agent_id: str | None) -> None:
        def check() -> None:
            if not gone():
                self.log.info("runtime.hangup_after_bridge", call=call_id, channel=channel)
                self.out.hangup(channel, call_id, agent_id)
        asyncio.get_running_loop().call_later(DISSOLVE_GRACE, check)

    # ================================================================ the caller

    def bridge_call(self, d: BridgeCall) -> None:
        self.out.chain(d.call_id, self.connect(d.call_id, d.agent_id))

    async def connect(self, call_id: str, agent_id: str) -> None:
        """Bridge the caller (or the customer) with the agent's answered leg."""
        log = self.log.bind(call=call_id, agent=agent_id)
        leg = self.ch.agent_leg(call_id, agent_id)
        cust = self.ch.customer(call_id)
        ctx = self.ch.caller(call_id)
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
        try:
            await self.out.bridge(call_id, agent_id, other, leg.channel)
            self.bridges.joined(leg.uid, call_id if caller_side else (cust.uid if cust else ""))
            log.info("runtime.bridged", caller_channel=other, agent_channel=leg.channel)
            self.talking(call_id, agent_id, leg.uid, leg.channel)
        except AmiError:
            return          # a leg went: its Hangup ends the call; a reconnect re-bridges
        if caller_side:
            # After the bridge the caller goes on at the queue's next priority, which hangs
            # up when this is set. Set after (not before) the Bridge: a caller in the retry
            # loop must never see it while still waiting. Should the bridge end before this
            # lands, the queue script finds the call over and says goodbye.
            await self.out.setvars(other, call_id, **{dp.BRIDGED: "1"})

    def send(self, d: SendToDestination) -> None:
        ctx = self.ch.caller(d.call_id)
        self.log.info("runtime.send", call=d.call_id, destination=str(d.destination),
                      reason=d.reason)
        if ctx is None or ctx.gone or DestinationKind(d.destination.kind) is DestinationKind.GROUP:
            return
        ctx.sent = True
        context, exten, setvars = destination(d)
        channel = ctx.channel

        async def redirect() -> None:
            await self.out.setvars(channel, d.call_id, **setvars)
            await self.out.redirect(channel, d.call_id, context, exten)
        self.out.chain(d.call_id, redirect())

    def regroup(self, d: RegroupCaller) -> None:
        """An overflow: the channel carries where the caller waits now."""
        ctx = self.ch.live_caller(d.call_id)
        if ctx is not None:
            self.out.chain(d.call_id, self.out.setvars(
                ctx.channel, d.call_id, **{dp.GROUP: d.group, dp.ENTERED: f"{d.entered_at:.6f}"}))

    # ================================================================ call control

    def _legs_for(self, call_id: str, agent_id: str) -> tuple[Caller, Leg] | None:
        ctx = self.ch.live_caller(call_id)
        leg = self.ch.agent_leg(call_id, agent_id)
        if ctx is None or leg is None or leg.channel is None or leg.gone:
            return None
        return ctx, leg

    def hold(self, d: HoldCaller) -> None:
        """The caller to music on hold, the owner's leg to silence: one dual Redirect."""
        log = self.log.bind(call=d.call_id, agent=d.agent_id)
        found = self._legs_for(d.call_id, d.agent_id)
        if found is None:
            log.error("runtime.hold_no_legs")
            return
        ctx, leg = found
        held_at = f"{self.clock():.6f}"

        async def run() -> None:
            caller, agent = ctx.channel, leg.channel
            await self.out.setvars(caller, d.call_id, **{dp.OWNER: d.agent_id,
                                                         dp.HELD_AT: held_at})
            tokens = [self.bridges.expect_move(d.call_id), self.bridges.expect_move(leg.uid)]
            if await self.out.redirect(caller, d.call_id, dp.HOLD_CONTEXT, dp.HOLD_CALLER_EXTEN,
                                       agent=d.agent_id, ExtraChannel=agent,
                                       ExtraContext=dp.HOLD_CONTEXT,
                                       ExtraExten=dp.HOLD_AGENT_EXTEN, ExtraPriority=1):
                log.info("runtime.held", caller_channel=caller, agent_channel=agent)
            else:
                self.bridges.unexpect(tokens)
        self.out.chain(d.call_id, run())

    def resume(self, d: ResumeCaller) -> None:
        self.join(d.call_id, d.agent_id, "resume")

    def bridge_target(self, d: BridgeTarget) -> None:
        self.join(d.call_id, d.agent_id, "transfer")

    def join(self, call_id: str, agent_id: str, why: str) -> None:
        """Bridge the caller with this agent's leg (resume, a transfer's target, restore)."""
        log = self.log.bind(call=call_id, agent=agent_id)
        found = self._legs_for(call_id, agent_id)
        if found is None:
            log.error("runtime.join_no_legs", why=why)
            return
        self.out.chain(call_id, self._join(*found, call_id, agent_id, why, log))

    async def _join(self, ctx: Caller, leg: Leg, call_id: str, agent_id: str, why: str,
                    log: Any) -> None:
        # The agent's leg first: should the caller not join, Asterisk puts the agent's leg
        # out of the new bridge (back to waiting), never the caller (whose dialplan would end
        # the call after a bridge). A leg in transition (a consult bridge dissolving) can
        # refuse for a moment: try again while the core still wants it.
        for attempt in range(JOIN_ATTEMPTS):
            if leg.channel is None or leg.gone or ctx.gone or (
                    attempt and not self._wants_join(call_id, agent_id)):
                return
            if attempt == 0:
                await self.out.setvars(ctx.channel, call_id, **{dp.OWNER: agent_id,
                                                                dp.HELD_AT: ""})
            tokens = [self.bridges.expect_move(call_id), self.bridges.expect_move(leg.uid)]
            try:
                await self.out.bridge(call_id, agent_id, leg.channel, ctx.channel)
                self.bridges.joined(call_id, leg.uid)
                log.info("runtime.joined", why=why, caller_channel=ctx.channel,
                         agent_channel=leg.channel)
                self.talking(call_id, agent_id, leg.uid, leg.channel)
                return
            except AmiError as exc:
                self.bridges.unexpect(tokens)
                if "does not exist" in str(exc):
                    return                  # a leg went: its Hangup says what next
            await asyncio.sleep(JOIN_RETRY_SECONDS)
        log.error("runtime.join_failed", why=why)

    def _wants_join(self, call_id: str, agent_id: str) -> bool:
        info = self.acd.control_info(call_id)
        return bool(info and info["state"] == "talking" and info["owner"] == agent_id)

    def bridge_consult(self, d: BridgeConsult) -> None:
        owner = self.ch.agent_leg(d.call_id, d.agent_id)
        target = self.ch.agent_leg(d.call_id, d.target_id)
        log = self.log.bind(call=d.call_id, agent=d.agent_id, target=d.target_id)
        if owner is None or target is None or owner.channel is None or target.channel is None:
            log.error("runtime.consult_no_legs")
            return

        async def run() -> None:
            tokens = [self.bridges.expect_move(owner.uid), self.bridges.expect_move(target.uid)]
            try:
                await self.out.bridge(d.call_id, d.agent_id, owner.channel, target.channel)
                self.bridges.joined(owner.uid, target.uid)
                log.info("runtime.consulting")
            except AmiError:
                self.bridges.unexpect(tokens)
        self.out.chain(d.call_id, run())

    def drop_leg(self, d: DropLeg) -> None:
        """Hang up the agent's leg once the call's earlier actions are done; no event of it
        is reported any more."""
        leg = self.ch.agent_leg(d.call_id, d.agent_id)
        if leg is None or leg.gone or leg.cancelled:
            return
        leg.cancelled = True
        self.drop_ring(d.call_id, d.agent_id)
        self.log.info("runtime.drop_leg", call=d.call_id, agent=d.agent_id, leg=leg.uid)
        self.out.chain(d.call_id, self.out.hangup_action(leg.uid, d.call_id, d.agent_id))

    def requeue(self, d: RequeueCaller) -> None:
        """The caller waits in a queue again: the queue script takes them up."""
        ctx = self.ch.live_caller(d.call_id)
        if ctx is None:
            return
        ctx.bridged = False
        ctx.sent = False

        async def run() -> None:
            channel = ctx.channel
            await self.out.setvars(channel, d.call_id, **{
                dp.BRIDGED: "", dp.OWNER: "", dp.HELD_AT: "", dp.GROUP: d.group,
                dp.PRIORITY: str(d.priority), dp.ENTERED: f"{d.entered_at:.6f}"})
            tokens = [self.bridges.expect_move(d.call_id)]
            if await self.out.redirect(channel, d.call_id, dp.QUEUE_CONTEXT, "s"):
                self.log.info("runtime.requeued", call=d.call_id, group=d.group)
            else:
                self.bridges.unexpect(tokens)
        self.out.chain(d.call_id, run())

    def invite_rating(self, d: InviteRating) -> None:
        ctx = self.ch.live_caller(d.call_id)
        if ctx is not None:
            self.out.chain(d.call_id, self.out.setvars(ctx.channel, d.call_id,
                                                       **{dp.SURVEY: "1"}))

    def to_survey(self, d: SendToSurvey) -> None:
        ctx = self.ch.live_caller(d.call_id)
        if ctx is None:
            return
        ctx.sent = True
        self.log.info("runtime.to_survey", call=d.call_id, redirect=d.redirect)
        if not d.redirect:
            return            # the dialplan takes the caller there after the bridge

        async def run() -> None:
            channel = ctx.channel
            await self.out.setvars(channel, d.call_id, **{dp.SURVEY: "1"})
            tokens = [self.bridges.expect_move(d.call_id)]
            if not await self.out.redirect(channel, d.call_id, dp.SURVEY_CONTEXT, "s"):
                self.bridges.unexpect(tokens)
        self.out.chain(d.call_id, run())


__all__ = ["Telephony", "cid_text", "destination"]
