"""Waiting callers: registered by the queue script, then held by Asterisk, not by us.

The FastAGI ``queue`` script (:mod:`agi.queue`) registers a caller through
:meth:`Queue.arrive` and sends them to the dialplan's ``wait`` (``[acd-queue]``): music on
hold, in Asterisk, with no FastAGI session and nothing polled. A waiting caller costs our
server nothing but their place in the core. What concerns them comes over AMI:

* an announcement (:class:`~acd.core.Announce`) is an AMI Redirect to the dialplan's
  announcement (exten ``P*M*L``), which plays it and goes back to ``wait`` (each start of
  the wait is reported: UserEvent ``AcdWaiting``; one announcement at a time);
* a key: Asterisk reports it (``DTMFEnd``, asked for only from channels in ``[acd-queue]``);
  the group's callback key redirects the caller to ``callback``, where the FastAGI
  ``callback`` script reads their number back for confirmation
  (:meth:`Queue.callback_requested`), then they hang up or go back to ``wait``;
* an agent (AMI Bridge) or a destination (AMI Redirect), as for any caller.

So how many callers can wait is not bounded by ``agi.max_sessions``: a FastAGI session lasts
only while a caller is being registered or confirms a callback.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from acd.asterisk import dialplan as dp
from acd.core import AcdError, Announce, DestinationKind, EndReason, SendToDestination
from acd.core.numbers import is_number
from acd.runtime.ami_in import CallerWaiting, KeyPressed
from acd.runtime.ami_out import AmiOut
from acd.runtime.channels import Caller, Channels
from acd.runtime.effects import Records, utc
from acd.runtime.telephony import destination
from acd.store.writer import with_queued

#: The longest the queue waits for the store to read a call's key trail (only when the IVR
#: did not hand it over): the caller is queued without it after that.
STORE_READ_SECONDS = 0.5
#: An announcement not reported over (the caller back at the wait) after this long is taken
#: for over: a lost event must not silence a caller's announcements for good.
ANNOUNCEMENT_SECONDS = 60.0
#: How long a caller's entry may take to be on record before the caller hears music meanwhile.
QUICK_FLUSH_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class SentOn:
    """The core sent a new caller away as they arrived (the group is closed or unstaffed,
    its queue full, our server overloaded): the queue script, still in session, sends them
    itself (``variables``, then ``ACD_NEXT`` = ``target``), with no AMI action. Under
    overload every caller turned away cost a Setvar and a Redirect before."""
    target: str                         # context,exten,priority
    variables: dict[str, str]


class Queue:
    """Registers waiting callers and carries out what concerns them while they wait."""

    def __init__(self, channels: Channels, records: Records, out: AmiOut, *, acd: Any,
                 store: Any, log: Any, clock: Callable[[], float],
                 apply: Callable[[list], None], wait_ready: Callable[[], Any],
                 callback_keys: Mapping[str, str | None],
                 admit: Callable[[], bool] = lambda: True) -> None:
        self.channels = channels
        self.records = records
        self.out = out
        self.acd, self.store, self.log, self.clock = acd, store, log, clock
        self.apply = apply
        self.wait_ready = wait_ready
        self.callback_keys = dict(callback_keys)      # group -> its callback key
        self.admit = admit          # False: overloaded, a new caller is not queued

    # ---------------------------------------------------------------- while they wait

    def _waiting(self, call_id: str) -> Caller | None:
        """The caller, if they wait in the queue now (an agent may be ringing for them): not
        sent on, not bridged, not confirming a callback."""
        ctx = self.channels.live_caller(call_id)
        if (ctx is None or ctx.sent or ctx.bridged or ctx.confirming
                or self.acd.call_state(call_id) not in ("waiting", "ringing")):
            return None
        return ctx

    def announce(self, d: Announce) -> None:
        """Play the caller their position and estimated wait (then music again)."""
        ctx = self._waiting(d.call_id)
        now = self.clock()
        if ctx is None or (ctx.announcing is not None
                           and now - ctx.announcing < ANNOUNCEMENT_SECONDS):
            return          # one at a time: the next comes with the next announce timer
        ctx.announcing = now
        minutes = max(1, round(d.estimated_wait / 60)) if d.estimated_wait else 0
        exten = dp.announce_exten(d.position or 0, minutes,
                                  bool(d.estimated_wait) and d.estimated_wait < 60)
        self.out.chain(d.call_id, self.out.redirect(ctx.channel, d.call_id, dp.QUEUE_CONTEXT,
                                                    exten))

    def caller_waiting(self, e: CallerWaiting) -> None:
        """The caller is back at the wait (after an announcement, or the callback's
        confirmation): announcements may come again."""
        ctx = self.channels.caller(e.uid)
        if ctx is not None:
            ctx.announcing = None

    def key_pressed(self, e: KeyPressed) -> None:
        """A key from a caller in ``[acd-queue]``: their group's callback key starts the
        confirmation of their number; any other key changes nothing."""
        ctx = self._waiting(e.uid)
        if ctx is None or not e.digit or e.digit != self.callback_key(e.uid):
            return
        ctx.confirming = True
        self.log.info("runtime.callback_key", call=e.uid)

        async def confirm() -> None:
            if not await self.out.redirect(ctx.channel, e.uid, dp.QUEUE_CONTEXT,
                                           dp.QUEUE_CALLBACK_EXTEN):
                ctx.confirming = False
        self.out.chain(e.uid, confirm())

    def callback_key(self, call_id: str) -> str | None:
        """The key that asks for a callback in the call's current group (None: none)."""
        return self.callback_keys.get(self.acd.call_group(call_id) or "")

    def callback_requested(self, call_id: str, number: str) -> None:
        """The caller confirmed ``number``: the call becomes a callback, keeping its place.
        Raises AcdError if the core refuses (then nothing changed)."""
        self.apply(self.acd.callback_requested(call_id, number, self.clock()))
        ctx = self.channels.caller(call_id)
        if ctx is not None:
            ctx.sent = True
            ctx.confirming = False

    def callback_not_requested(self, call_id: str) -> None:
        """The caller did not confirm: back to waiting (announcements, the key again)."""
        ctx = self.channels.caller(call_id)
        if ctx is not None:
            ctx.confirming = False

    def caller_number(self, call_id: str) -> str:
        ctx = self.channels.caller(call_id)
        return ctx.caller_number if ctx else ""

    # ---------------------------------------------------------------- arrival

    def expect(self, uniqueid: str, key_trail: Sequence[str] | None) -> None:
        """The IVR hands this call to the queue (see AcdRuntime.expect_caller)."""
        self.channels.expect(uniqueid, self.clock(), key_trail)

    async def arrive(self, *, uniqueid: str, channel: str, caller_number: str,
                     caller_name: str, did: str, group: str, priority: int,
                     entered: float, ivr: bool = True) -> bool | SentOn:
        """See :meth:`acd.runtime.AcdRuntime.caller_arrived`."""
        await self.wait_ready()
        state = self.acd.call_state(uniqueid)
        if state is not None:
            return self._again(uniqueid, channel, caller_number, caller_name, state)
        handed = self.channels.trails.get(uniqueid)
        self.channels.forget_expected(uniqueid)
        number = caller_number if is_number(caller_number) else ""
        # Known before the first await, so that a hangup meanwhile is seen (ctx.gone).
        ctx = self.channels.add_caller(Caller(uniqueid, channel, number, caller_name))
        # Through the writer: a locked or full database holds the record back (in order,
        # before the call's events), never the caller. The key trail is only read.
        self.records.submit("call_arrived", self.store.call_arrived, uniqueid=uniqueid,
                            channel=channel, caller_number=caller_number,
                            caller_name=caller_name, did=did, at=utc(entered),
                            bind={"call": uniqueid})
        # The IVR handed the keys over: nothing to read. No IVR (a group's own number): no
        # keys. Else (our restart between the IVR and the queue) the store, without waiting
        # on its writer.
        if handed is not None or not ivr:
            key_trail = list(handed or ())
        else:
            key_trail = await self._key_trail(uniqueid)
        if ctx.gone:
            self.log.info("runtime.caller_gone_before_queue", call=uniqueid)
            self.records.call_ended(uniqueid, EndReason.ABANDONED.value, self.clock())
            return False
        try:
            # Its place counts from when it entered the queue (the channel says); what the
            # core decides now (an offer, a ring timer) happens now.
            out = self.acd.call_arrived(uniqueid, number, group, self.clock(),
                                        entered_at=entered, priority=priority,
                                        key_trail=key_trail, overloaded=not self.admit(),
                                        caller_text=caller_number)
        except AcdError as exc:
            self.channels.callers.pop(uniqueid, None)
            # The caller is sent away by the script; the record gets its one end reason.
            now = self.clock()
            self.records.event(uniqueid, "refused", now, {"group": group, "error": exc.id})
            self.records.call_ended(uniqueid, "refused", now)
            raise
        sent = _sent_on_arrival(out, uniqueid)
        if sent is not None:
            out.remove(sent)
            ctx.sent = True
            self.log.info("runtime.send", call=uniqueid, destination=str(sent.destination),
                          reason=sent.reason)
            self.apply(out)
            context, exten, variables = destination(sent)
            return SentOn(f"{context},{exten},1", variables)
        self.log.info("runtime.caller_queued", call=uniqueid, channel=channel, group=group,
                      priority=priority)
        self.apply(out)
        return True

    async def on_record(self, call_id: str,
                        before_waiting: Callable[[], Awaitable[Any]] | None = None) -> None:
        """Wait (bounded) until the caller's entry is on record, so that a crash from here on
        leaves a whole record behind: at most the writer's flush limit (a backlog is
        logged, ``runtime.store_backlog``). The core has decided already and the caller
        hears music meanwhile (``before_waiting``, when there is anything to wait for):
        nothing a caller waits for waits on the store."""
        writer = self.records.writer
        if await writer.flush(QUICK_FLUSH_SECONDS):
            return
        if before_waiting is not None:
            await before_waiting()
        if not await writer.flush():
            status = writer.status()
            self.log.warning("runtime.store_backlog", call=call_id, pending=status["pending"],
                             oldest_seconds=status["oldest_seconds"], failing=status["failing"])

    def _again(self, uniqueid: str, channel: str, caller_number: str, caller_name: str,
               state: str) -> bool:
        """A caller the core knows (back after a restart, a requeue or a cut): True while
        they still wait (or their bridge is on its way), False when the ACD is done."""
        ctx = self.channels.caller(uniqueid)
        if state == "connected" and ctx is not None and not ctx.gone:
            # Requeued (a transfer to a group) and answered before this session came up:
            # the Bridge on its way takes the caller from the wait.
            ctx.channel = channel
            return True
        if state not in ("waiting", "ringing"):
            return False    # ended, a callback, or connected: not for the queue any more
        if ctx is None:
            ctx = self.channels.add_caller(Caller(uniqueid, channel, caller_number, caller_name))
        ctx.channel = channel
        ctx.gone = False
        ctx.confirming = False
        self.log.info("runtime.caller_attached", call=uniqueid, channel=channel, state=state)
        return True

    async def _key_trail(self, uniqueid: str) -> list[str]:
        """The call's keys as stored, plus those still queued on the writer: read at once,
        never after the writer's backlog; a database that does not answer within
        ``STORE_READ_SECONDS`` leaves only the queued ones (logged)."""
        queued = self.records.writer.queued(uniqueid)
        try:
            stored = await asyncio.wait_for(self.store.get_call(uniqueid), STORE_READ_SECONDS)
        except Exception as exc:  # noqa: BLE001 - the store is out: what is queued, if any
            self.log.warning("runtime.key_trail_unread", call=uniqueid,
                             error=(str(exc).splitlines() or [type(exc).__name__])[0][:200])
            stored = None
        call = with_queued(stored, queued)
        return [k["keys"] for k in call["key_trail"]] if call else []


def _sent_on_arrival(out: Sequence[Any], call_id: str) -> SendToDestination | None:
    """The core's sending of the arriving caller to a destination outside the ACD, if it
    decided so (a group destination is an overflow: the caller stays in the ACD)."""
    for d in out:
        if (isinstance(d, SendToDestination) and d.call_id == call_id
                and DestinationKind(d.destination.kind) is not DestinationKind.GROUP):
            return d
    return None


__all__ = ["Queue", "SentOn", "STORE_READ_SECONDS"]
