"""The queue script's side of the runtime: a waiting caller's session, pushed to, never polled.

The FastAGI ``queue`` script (:mod:`agi.queue`) registers a caller through
:meth:`Queue.arrive` and gets a :class:`CallerSession`. While the caller waits, Asterisk plays
the music and waits for a key; nothing is asked of the runtime. The session wakes the script
only for what concerns it: an announcement is pushed (:class:`~acd.core.Announce`), or the
caller was moved on (bridged, redirected, ended: ``done``). The script waits for a key until
the next announcement is due (the core's announce timer), so a waiting caller costs one AGI
command per announcement, not one a second. The callback key is looked up when a key is
pressed, from the group the core has for the call.
"""
from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from acd.core import AcdError, Announce, EndReason
from acd.core.numbers import is_number
from acd.core.timers import T_ANNOUNCE
from acd.runtime.channels import Caller, Channels
from acd.runtime.effects import Records, utc
from acd.store.writer import with_queued

#: The longest the queue waits for the store to read a call's key trail (only when the IVR
#: did not hand it over): the caller is queued without it after that.
STORE_READ_SECONDS = 0.5


class CallerSession:
    """What the queue script holds while a caller waits: announcements to play, the callback
    key, and a way to ask for the callback."""

    def __init__(self, queue: "Queue", call_id: str) -> None:
        self.queue = queue
        self.call_id = call_id
        self._todo: deque[tuple[str, Any]] = deque()
        self._done = False       # sent on, bridged, or ended: the script just waits to be cut
        self.detached = False
        self._woken = asyncio.Event()

    @property
    def done(self) -> bool:
        return self._done

    @done.setter
    def done(self, value: bool) -> None:
        self._done = value
        if value:
            self._woken.set()

    @property
    def callback_key(self) -> str | None:
        return self.queue.callback_key(self.call_id)

    @property
    def caller_number(self) -> str:
        ctx = self.queue.channels.caller(self.call_id)
        return ctx.caller_number if ctx else ""

    def next_instruction(self) -> tuple[str, Any] | None:
        return self._todo.popleft() if self._todo else None

    def push(self, kind: str, data: Any) -> None:
        """Queue an instruction; a newer one of the same kind replaces the older."""
        self.drop(kind)
        self._todo.append((kind, data))
        self._woken.set()

    def drop(self, kind: str) -> None:
        self._todo = deque(item for item in self._todo if item[0] != kind)

    def next_due(self) -> float | None:
        """When the next announcement is due (the clock's time), or None."""
        return self.queue.announce_due(self.call_id)

    async def woken(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a push (or ``done``); True if one came."""
        if self._todo or self._done:
            return True
        self._woken.clear()
        try:
            await asyncio.wait_for(self._woken.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def on_record(self) -> None:
        """Wait until the caller's entry is on record, so that a crash from here on leaves a
        whole record behind: at most the writer's flush limit, then the session goes on (a
        backlog is logged, ``runtime.store_backlog``). The core has decided already and the
        caller hears music meanwhile: nothing a caller waits for waits on the store."""
        await self.queue.on_record(self.call_id)

    def request_callback(self, number: str) -> None:
        """The caller confirmed ``number``: the call becomes a callback, keeping its place.
        Raises AcdError if the core refuses (then nothing changed)."""
        self.queue.callback_requested(self.call_id, number)
        self.done = True

    def detach(self) -> None:
        self.detached = True
        ctx = self.queue.channels.caller(self.call_id)
        if ctx is not None and ctx.session is self:
            ctx.session = None


class Queue:
    """Registers waiting callers and keeps their sessions."""

    def __init__(self, channels: Channels, records: Records, *, acd: Any, store: Any,
                 log: Any, clock: Callable[[], float], apply: Callable[[list], None],
                 wait_ready: Callable[[], Any], timer_due: Callable[[str], float | None],
                 callback_keys: Mapping[str, str | None]) -> None:
        self.channels = channels
        self.records = records
        self.acd, self.store, self.log, self.clock = acd, store, log, clock
        self.apply = apply
        self.wait_ready = wait_ready
        self.timer_due = timer_due
        self.callback_keys = dict(callback_keys)      # group -> its callback key

    def announce(self, d: Announce) -> None:
        ctx = self.channels.caller(d.call_id)
        if ctx is not None and ctx.session is not None and not ctx.session.detached:
            ctx.session.push("announce", (d.position, d.estimated_wait))

    def callback_key(self, call_id: str) -> str | None:
        """The key that asks for a callback in the call's current group (None: none)."""
        return self.callback_keys.get(self.acd.call_group(call_id) or "")

    def announce_due(self, call_id: str) -> float | None:
        return self.timer_due(f"{T_ANNOUNCE}:{call_id}")

    def callback_requested(self, call_id: str, number: str) -> None:
        self.apply(self.acd.callback_requested(call_id, number, self.clock()))
        ctx = self.channels.caller(call_id)
        if ctx is not None:
            ctx.sent = True

    def expect(self, uniqueid: str, key_trail: Sequence[str] | None) -> None:
        """The IVR hands this call to the queue (see AcdRuntime.expect_caller)."""
        self.channels.expect(uniqueid, self.clock(), key_trail)

    def _session(self, ctx: Caller) -> CallerSession:
        if ctx.session is not None:
            ctx.session.detached = True
        ctx.session = CallerSession(self, ctx.call_id)
        return ctx.session

    async def arrive(self, *, uniqueid: str, channel: str, caller_number: str,
                     caller_name: str, did: str, group: str, priority: int,
                     entered: float, ivr: bool = True) -> CallerSession | None:
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
        session = self._session(ctx)
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
            return None
        try:
            # Its place counts from when it entered the queue (the channel says); what the
            # core decides now (an offer, a ring timer) happens now.
            out = self.acd.call_arrived(uniqueid, number, group, self.clock(),
                                        entered_at=entered, priority=priority,
                                        key_trail=key_trail)
        except AcdError as exc:
            self.channels.callers.pop(uniqueid, None)
            # The caller is sent away by the script; the record gets its one end reason.
            now = self.clock()
            self.records.event(uniqueid, "refused", now, {"group": group, "error": exc.id})
            self.records.call_ended(uniqueid, "refused", now)
            raise
        self.log.info("runtime.caller_queued", call=uniqueid, channel=channel, group=group,
                      priority=priority)
        self.apply(out)
        return session

    async def on_record(self, call_id: str) -> None:
        """Wait (bounded) until the caller's entry is on record; a backlog is logged."""
        if not await self.records.writer.flush():
            status = self.records.writer.status()
            self.log.warning("runtime.store_backlog", call=call_id, pending=status["pending"],
                             oldest_seconds=status["oldest_seconds"], failing=status["failing"])

    def _again(self, uniqueid: str, channel: str, caller_number: str, caller_name: str,
               state: str) -> CallerSession | None:
        """A session of a caller the core knows (back after a restart or a cut)."""
        ctx = self.channels.caller(uniqueid)
        if state == "connected" and ctx is not None and not ctx.gone:
            # Requeued (a transfer to a group) and answered before this session came up:
            # the Bridge on its way cuts the session; it waits for that.
            ctx.channel = channel
            session = self._session(ctx)
            session.done = True
            return session
        if state not in ("waiting", "ringing"):
            return None     # ended, a callback, or connected: not for the queue any more
        if ctx is None:
            ctx = self.channels.add_caller(Caller(uniqueid, channel, caller_number, caller_name))
        ctx.channel = channel
        ctx.gone = False
        self.log.info("runtime.caller_attached", call=uniqueid, channel=channel, state=state)
        return self._session(ctx)

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


__all__ = ["CallerSession", "Queue"]
