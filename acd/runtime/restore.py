"""Rebuild after our server restarts, and reconcile after the AMI link comes back.

The first AMI login reads everything first (:meth:`Restorer.read`: Asterisk's channels with
our variables, the phones, the store); if the link drops while reading, nothing was changed
and the next login tries again. :func:`acd.runtime.plan.plan` turns the reading into a plan,
and :meth:`Restorer.apply` restores the core, the ledgers and Asterisk from it in one go.

Every later login compares Asterisk with what we know (:meth:`Restorer.reconcile`) and
returns what it finds as facts (a caller or a leg gone, a ring answered), which the runtime's
loop routes like any other.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from acd.ami.events import CHANNEL_STATE_UP
from acd.asterisk import dialplan as dp
from acd.core import AcdError, Decision, RequeueCaller
from acd.runtime import ami_in as f
from acd.runtime.ami_in import as_int
from acd.runtime.ami_out import AmiOut
from acd.runtime.channels import LEG_PREFIX, Bridges, Caller, Channels
from acd.runtime.effects import Records, utc
from acd.runtime.phones import Phones
from acd.runtime.plan import ENDED_WHILE_DOWN, CallRestore, Plan, Reading

_GETVARS_AT_ONCE = 16
_CALLER_VARS = (dp.GROUP, dp.PRIORITY, dp.ENTERED, dp.BRIDGED)
_CONTROL_VARS = (dp.OWNER, dp.HELD_AT, dp.SURVEY)
_LEG_VARS = (dp.CALL, dp.AGENT, dp.ROLE)


def _vars_to_read(c: Mapping[str, Any]) -> tuple[str, ...]:
    """Our variables worth reading on a channel, by where it is."""
    context = c.get("Context")
    if context == dp.QUEUE_CONTEXT:      # call control's variables only when connected
        return _CALLER_VARS + (_CONTROL_VARS if c.get("BridgeId") else ())
    if context == dp.HOLD_CONTEXT:       # a held caller, or an agent's waiting leg
        exten = c.get("Exten")
        return (_LEG_VARS if exten == dp.HOLD_AGENT_EXTEN else
                _CALLER_VARS + _CONTROL_VARS if exten == dp.HOLD_CALLER_EXTEN else
                _LEG_VARS + _CALLER_VARS + _CONTROL_VARS)
    return _LEG_VARS


async def _call_groups(store: Any, uniqueids: list[str],
                       at_once: int = 500) -> dict[str, dict[str, Any]]:
    """uniqueid -> {"uniqueid", "skill_group"} of these stored calls: one query per
    ``at_once`` of them (SQLite's bound parameters), whatever the number of agents."""
    from sqlalchemy import select

    from acd.store.models import Call
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(uniqueids), at_once):
        async with store.session() as s:
            rows = await s.execute(select(Call.uniqueid, Call.skill_group)
                                   .where(Call.uniqueid.in_(uniqueids[i:i + at_once])))
            out.update((u, {"uniqueid": u, "skill_group": g}) for u, g in rows.all())
    return out


def _ours(c: Mapping[str, Any]) -> bool:
    # Our legs still ringing are not in our contexts yet (the endpoint's until answered):
    # their Uniqueid, chosen by us, finds them (see Channels.new_leg).
    return (c.get("Context") in (dp.QUEUE_CONTEXT, dp.AGENT_CONTEXT, dp.CUSTOMER_CONTEXT,
                                 dp.HOLD_CONTEXT)
            or str(c.get("Uniqueid", "")).startswith(LEG_PREFIX))


class Restorer:
    """Reads Asterisk and the store, and applies restore plans (see the module docstring)."""

    def __init__(self, channels: Channels, bridges: Bridges, phones: Phones, out: AmiOut,
                 records: Records, *, acd: Any, store: Any, log: Any,
                 clock: Callable[[], float], telephony: Any, take_phones: Callable) -> None:
        self.ch, self.bridges, self.phones, self.out = channels, bridges, phones, out
        self.records, self.acd, self.store, self.log, self.clock = (records, acd, store, log,
                                                                    clock)
        self.telephony = telephony          # requeue, join, connect
        self.take_phones = take_phones      # (channels, since) -> the core hears phone use
        self.restored_calls: set[str] = set()

    # ================================================================ rebuild

    async def read(self) -> tuple[Reading, str | None]:
        """Asterisk's channels (with our variables), phones, and the store; and when the
        running Asterisk started."""
        started = self.clock()
        asterisk_started = await self.out.core_started()
        channels = await self.out.channels()
        reachable = self.phones.load_contacts(await self.out.contacts())
        sem = asyncio.Semaphore(_GETVARS_AT_ONCE)

        async def read(c: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
            async with sem:
                return c, await self.out.getvars(str(c["Channel"]), _vars_to_read(c))
        found = await asyncio.gather(*(read(c) for c in channels if _ours(c)))
        await self.records.writer.flush(10.0)    # replayed and queued writes first (bounded)
        states = await self.store.latest_agent_states()
        open_calls = {c["uniqueid"]: c for c in await self.store.open_calls()}
        # The calls of Asterisk's channels that are not open on record: each read whole
        # (rare: a record ended while its channel lives on).
        wanted = {v.get(dp.CALL) or str(c["Uniqueid"]) for c, v in found}
        calls = {}
        for uid in sorted(u for u in wanted if u and u not in open_calls):
            stored = await self.store.get_call(uid)
            if stored:
                calls[uid] = stored
        # The calls the agents in wrap-up ended: their group only (it sets the wrap-up's
        # end), in one read for all of them, not one per agent.
        wrapup = {row.get("call_uniqueid") for row in states.values() if row["state"] == "wrapup"}
        calls.update(await _call_groups(self.store, sorted(
            u for u in wrapup if u and u not in open_calls and u not in calls)))
        answered = await self.store.answered_since_login()
        return Reading(started=started, channels=channels, found=found, reachable=reachable,
                       states=states, pending=await self.store.latest_agent_pending(),
                       open_calls=open_calls, calls=calls, answered=answered), asterisk_started

    def apply(self, p: Plan, reading: Reading) -> tuple[list[Decision], dict[str, int]]:
        """Restore the core, the ledgers and Asterisk from the plan. Returns the core's
        decisions (to carry out once all is restored) and counts for the log."""
        now = self.clock()
        log = self.log.bind(phase="rebuild")
        out: list[Decision] = []
        self.take_phones(reading.channels)       # before the agents: no ring to a busy phone
        self.bridges.load(p.bridges)
        for agent_id, (state, reason) in p.pending.items():
            self.records.pending_loaded(agent_id, state, reason)
        restored: set[str] = set()
        for a in p.agents:
            try:
                out += self.acd.restore_agent(a.agent_id, a.endpoint, a.state, a.since,
                                              reason=a.reason, **a.kw)
                restored.add(a.agent_id)
                # debug: one line per agent would grow the start with them (the count is
                # in runtime.rebuilt)
                log.debug("runtime.agent_restored", agent=a.agent_id, state=a.state)
            except AcdError as exc:
                log.warning("runtime.restore_refused", agent=a.agent_id, error=exc.id,
                            message=exc.message)
        orphans, callbacks = list(p.orphans), 0
        self.restored_calls = set()
        for call in p.calls:
            if self._restore_call(call, now, restored, reading.reachable, out, log):
                callbacks += call.kind == "callback"
                self.restored_calls.add(call.call_id)
            elif call.kind in ("held", "answered"):       # its legs wait for nobody now
                orphans += [(leg.uid, call.call_id, leg.agent_id, leg.channel)
                            for leg in call.legs]
        n = {kind: len(p.of(kind)) for kind in ("connected", "outbound", "answered", "held",
                                                  "requeued", "waiting")}
        counts = {"agents": len(restored),
                  "connected": n["connected"] + n["outbound"] + n["answered"],
                  "waiting": n["waiting"], "callbacks": callbacks,
                  "held": n["held"] + n["requeued"]}
        for call in p.of("held"):        # a caller held by an agent who left: the one consulted
            if call.resume and call.call_id in self.restored_calls:
                self.telephony.join(call.call_id, call.resume, "restore")
        for call_id in p.ended:
            self.records.call_ended(call_id, ENDED_WHILE_DOWN, now)
            log.warning("runtime.call_ended_while_down", call=call_id)
        for uid, call_id, agent_id, channel in orphans:
            self.out.hangup(uid, call_id, agent_id)
            log.info("runtime.orphan_leg_hungup", call=call_id, channel=channel)
        return out, counts

    def _restore_call(self, call: CallRestore, now: float, restored: set[str],
                      reachable: Mapping[str, bool], out: list[Decision], log: Any) -> bool:
        if call.kind in ("held", "requeued") and call.caller is not None:
            self._add_caller(call)       # kept whether or not the core takes the call
        try:
            for agent_id in call.agents:
                if agent_id not in restored:
                    endpoint = self.phones.endpoints.get(agent_id, agent_id)
                    out += self.acd.restore_agent(agent_id, endpoint, "idle", now,
                                                  reachable=reachable.get(endpoint))
                    restored.add(agent_id)
            for method, args, kw in call.steps:
                out += getattr(self.acd, method)(*args, now, **kw)
        except AcdError as exc:
            log.warning("runtime.restore_refused", call=call.call_id,
                        agent=call.agents[0] if call.agents else None, error=exc.id,
                        message=exc.message)
            return False
        for leg in call.legs:
            self.ch.keep_leg(leg.uid, leg.channel, leg.kind, call.call_id, leg.agent_id)
        if call.caller is not None and call.kind not in ("held", "requeued"):
            self._add_caller(call)
        self._after(call, now, log)
        return True

    def _add_caller(self, call: CallRestore) -> None:
        c = call.caller
        assert c is not None
        self.ch.add_caller(Caller(c.call_id, c.channel, c.caller_number, c.caller_name,
                                  bridged=c.bridged))

    def _after(self, call: CallRestore, now: float, log: Any) -> None:
        """What a restored call needs from Asterisk, and its log line."""
        agent = call.agents[0] if call.agents else None
        if call.kind == "requeued":
            self.telephony.requeue(RequeueCaller(call.call_id, call.group, call.priority, now))
            log.info("runtime.held_caller_requeued", call=call.call_id, group=call.group)
        elif call.kind == "held":
            consulting = call.agents[1] if len(call.agents) > 1 else None
            log.info("runtime.held_call_restored", call=call.call_id, agent=agent,
                     consulting=consulting)
        elif call.kind == "answered":
            log.info("runtime.answered_ring_restored", call=call.call_id, agent=agent)
        elif call.kind == "outbound":
            log.info("runtime.outbound_call_restored", call=call.call_id, agent=agent)
        elif call.kind == "connected":
            log.info("runtime.connected_call_restored", call=call.call_id, agent=agent)
        elif call.kind == "waiting":
            log.info("runtime.waiting_call_restored", call=call.call_id, group=call.group)
        else:
            log.info("runtime.callback_restored", call=call.call_id)

    def after_apply(self, p: Plan) -> None:
        """Once the core's decisions are carried out: rings answered while away are bridged
        (the answer on record if it was not seen)."""
        now = self.clock()
        for call in p.of("answered"):
            if call.call_id not in self.restored_calls or not call.resume:
                continue
            if call.unseen_answer:      # the answer itself was not seen: now, on record
                self._answer_on_record(call.call_id, call.resume, call.group, now)
            self.out.chain(call.call_id, self.telephony.connect(call.call_id, call.resume))

    def _answer_on_record(self, call_id: str, agent_id: str, group: str, now: float) -> None:
        r = self.records
        r.event(call_id, "answered", now, {"group": group, "agent": agent_id,
                                           "detail": "answered while away"})
        r.submit("call_answered", self.store.call_update, call_id, answered_at=utc(now),
                 bind={"call": call_id})
        r.submit("agent_state", self.store.agent_state, agent_id, "talking", reason="",
                 at=utc(now), previous="ringing", call_uniqueid=call_id,
                 bind={"agent": agent_id})

    # ================================================================ reconcile

    def reconcile(self, present: Mapping[str, Mapping[str, Any]]) -> Iterator[f.Fact]:
        """What happened to our callers and legs while the AMI link was down, as facts, to
        be routed as they come (each is judged after the ones before it took effect). Only
        the callers and legs known when it starts are looked at: a ring the core starts
        meanwhile is no news. Callers first: when both sides of a connected call went, who
        hung up first cannot be read back; the caller's hangup ends the call, and the agent's
        leg, gone too, is just forgotten."""
        callers, legs = list(self.ch.callers.values()), list(self.ch.legs.values())
        for ctx in callers:
            if self.ch.callers.get(ctx.call_id) is not ctx:
                continue
            c = present.get(ctx.call_id)
            if c is None:
                self.log.info("runtime.missed", what="caller_hangup", call=ctx.call_id)
                yield f.ChannelHungUp(ctx.call_id, "", None)
            else:
                ctx.channel = str(c.get("Channel") or ctx.channel)
        for leg in legs:
            if self.ch.legs.get(leg.uid) is not leg:
                continue
            c = present.get(leg.uid)
            if c is None:
                if leg.gone:
                    continue
                if self.acd.call_state(leg.call_id) == "ended":
                    leg.gone = True
                    self.ch.forget_leg(leg)
                    continue
                self.log.info("runtime.missed", what="leg_hangup", call=leg.call_id,
                              agent=leg.agent_id, leg=leg.uid)
                yield f.ChannelHungUp(leg.uid, "", None)
                continue
            leg.channel = str(c.get("Channel") or leg.channel)
            if leg.cancelled or (leg.reported and not leg.answered):
                self.out.hangup(leg.uid, leg.call_id, leg.agent_id)
            elif (not leg.answered and as_int(c.get("ChannelState")) == CHANNEL_STATE_UP
                  and c.get("Context") in (dp.AGENT_CONTEXT, dp.CUSTOMER_CONTEXT)):
                yield f.OriginateAnswered(leg.uid, leg.channel)

    def rebridge(self, present: Mapping[str, Mapping[str, Any]], answered_before: set[str]) -> None:
        """Connected calls whose Bridge was lost with the link: bridge them again (not while
        call control keeps the two sides apart: hold, transfer, consult)."""
        for (call_id, agent_id), uid in list(self.ch.leg_of.items()):
            leg = self.ch.legs.get(uid)
            if leg is None or not leg.answered or leg.cancelled or uid not in answered_before:
                continue        # (a ring answered while we were away is bridged as it is fed)
            control = self.acd.control_info(call_id)
            if control is not None and control["outbound"]:
                if control["state"] != "connected":
                    continue
            elif self.acd.call_state(call_id) != "connected" or (control is not None and (
                    control["state"] != "talking" or control["owner"] != agent_id)):
                continue
            other_uid = self.ch.customer_leg.get(call_id) or call_id
            a, b = present.get(leg.uid), present.get(other_uid)
            if a is not None and b is not None and (not a.get("BridgeId")
                                                    or a.get("BridgeId") != b.get("BridgeId")):
                self.log.warning("runtime.rebridge", call=call_id, agent=agent_id)
                self.out.chain(call_id, self.telephony.connect(call_id, agent_id))


__all__ = ["Restorer"]
