"""The FastAGI ``queue`` script: a caller waits for an agent, listening to music on hold.

The dialplan (``[acd-queue]``) passes ``ACD_GROUP``, ``ACD_PRIORITY``, ``ACD_ENTERED``... as
the script's arguments (``dp.QUEUE_ARGS``). The script

1. registers the caller before its first AGI command, so the core decides (and an idle
   agent's phone rings) without waiting on a round trip to Asterisk; then turns the music on
   (at once instead while our server is still starting up: music, never silence, while the
   ACD takes up its state). A new caller enters the queue now, and the script keeps that
   time in ``ACD_ENTERED`` (a caller whose session comes back after a restart keeps the
   value, and with it their place);
2. waits for a key (``WAIT FOR DIGIT``; the music keeps playing) until the next
   announcement is due, then plays the one the ACD pushed (position, estimated wait): nothing
   is polled, so a waiting caller costs one AGI command per announcement or key, and one
   every ``IDLE_WAIT_MS`` at most (see :class:`acd.runtime.queue.CallerSession`);
3. ends quietly when Asterisk cuts the session: the ACD bridged the caller with an agent or
   redirected them to a destination (AMI), or the caller hung up. Which one it was is not
   this script's business: the runtime knows what it did, and caller hangups come from the
   AMI Hangup event, which is authoritative.

Callback: the caller presses the group's callback key, hears their number read back and
presses 1 to confirm (or keys in another number and #); the ACD keeps their place, they hear
a thank-you and the script hangs up.
"""
from __future__ import annotations

from typing import Any

from acd.asterisk import dialplan as dp
from acd.core import AcdError
from acd.core.numbers import is_number
from acd.errors import UserError
from acd.runtime import CallerSession
from agi.protocol import AgiError
from agi.server import AgiSession

IDLE_WAIT_MS = 60_000          # the longest WAIT FOR DIGIT when no announcement is due
CUT_GRACE_SECONDS = 15.0       # done, but not cut by Asterisk: leave on our own after this
LATE_PUSH_SECONDS = 1.0        # an announcement due now may come a moment after its time
CONFIRM_TIMEOUT_MS = 6000
MAX_NUMBER_DIGITS = 20


class QueueScript:
    def __init__(self, runtime: Any, idle_wait_ms: int = IDLE_WAIT_MS) -> None:
        self.runtime = runtime
        self.idle_wait_ms = idle_wait_ms

    async def __call__(self, session: AgiSession) -> None:
        req = session.request
        log = session.log
        # Everything the dialplan set comes with the request (dp.QUEUE_ARGS): the caller is
        # registered, and the core decides, before the first AGI command.
        group, priority_text, entered_text, bridged, ivr, did = _queue_args(req.args)
        if bridged:
            return                      # talked to an agent already: the dialplan hangs up
        priority = _int(priority_text)
        entered = _float(entered_text)
        new = entered is None
        if new:
            entered = self.runtime.clock()
        music = not self.runtime.ready.is_set()
        if music:                       # our server is starting up: music, not silence
            await session.set_music(True)
        try:
            handle = await self.runtime.caller_arrived(
                uniqueid=req.uniqueid, channel=req.channel, caller_number=req.caller_id_num,
                caller_name=req.caller_id_name, did=did or req.extension, group=group,
                priority=priority, entered=entered, ivr=bool(ivr))
        except UserError as e:
            log.warning("queue.refused", error=e.id, message=e.message, group=group)
            await session.set_variable(dp.NEXT, dp.SORRY_TARGET)
            return
        if handle is None:              # the ACD is done with this call
            await session.set_variable(dp.NEXT, dp.HANGUP_TARGET)
            return
        try:
            if not music:
                await session.set_music(True)
            if new:                     # kept for the caller's place after a restart
                await session.set_variable(dp.ENTERED, f"{entered:.6f}")
            await session.set_variable(dp.QUEUE_TRIES, "0")
            await handle.on_record()
            await self._wait(session, handle)
        except AgiError:
            pass                        # cut by Asterisk: bridged, redirected or hung up
        finally:
            handle.detach()

    async def _wait(self, session: AgiSession, handle: CallerSession) -> None:
        cut_by: float | None = None
        while True:
            if handle.done:
                # Bridged or sent on: Asterisk cuts this session in a moment. Should it not
                # (the AMI action failed), leave on our own after a while.
                now = self.runtime.clock()
                cut_by = cut_by if cut_by is not None else now + CUT_GRACE_SECONDS
                if now >= cut_by:
                    session.log.warning("queue.not_cut")
                    return
                await session.wait_for_digit(int((cut_by - now) * 1000) + 1)
                continue
            item = handle.next_instruction()
            if item is not None and item[0] == "announce":
                await self._announce(session, *item[1])
                handle.drop("announce")   # what came in meanwhile is said already
                continue
            due = handle.next_due()
            wait_ms = self.idle_wait_ms if due is None else max(
                1, min(self.idle_wait_ms, int((due - self.runtime.clock()) * 1000) + 1))
            digit = await session.wait_for_digit(wait_ms)
            if digit:
                key = handle.callback_key
                if key and digit == key and not handle.done:
                    await self._callback(session, handle)
                    if handle.done:
                        return
            elif due is not None:
                await handle.woken(LATE_PUSH_SECONDS)   # the announcement on its way

    async def _announce(self, session: AgiSession, position: int | None,
                        wait: float | None) -> None:
        await session.set_music(False)
        if position is not None:
            if position <= 1:
                await session.stream_file("queue-youarenext")
            else:
                await session.stream_file("queue-thereare")
                await session.say_number(position)
                await session.stream_file("queue-callswaiting")
        if wait is not None and wait > 0:
            minutes = max(1, round(wait / 60))
            await session.stream_file("queue-holdtime")
            if wait < 60:
                await session.stream_file("queue-less-than")
            await session.say_number(minutes)
            await session.stream_file("queue-minute" if minutes == 1 else "queue-minutes")
        await session.set_music(True)

    async def _callback(self, session: AgiSession, handle: CallerSession) -> None:
        """Confirm the number; then the call becomes a callback and the caller hangs up."""
        await session.set_music(False)
        number = await self._confirm_number(session, handle.caller_number)
        if number is None:
            session.log.info("queue.callback_not_confirmed")
            await session.set_music(True)
            return
        try:
            handle.request_callback(number)
        except AcdError as e:
            session.log.info("queue.callback_refused", error=e.id)
            await session.set_music(True)
            return
        session.log.info("queue.callback_requested")
        await session.stream_file("auth-thankyou")
        await session.stream_file("vm-goodbye")
        await session.hangup()

    @staticmethod
    async def _confirm_number(session: AgiSession, number: str) -> str | None:
        """Read the number back; 1 (during or after the read-back) confirms it, other digits
        (ended by #) replace it and are read back in turn. None: nothing confirmed (silence,
        or three tries)."""
        number = number if is_number(number) else ""
        for _ in range(3):
            if number:                  # 1 may be pressed at any point of the read-back
                pressed = (await session.stream_file("telephone-number", "1")
                           or await session.say_digits(number, "1")
                           or await session.stream_file("if-correct-press", "1")
                           or await session.say_digits("1", "1"))
                if pressed == "1":
                    return number
            digits, _ = await session.get_data("vm-enter-num-to-call", CONFIRM_TIMEOUT_MS,
                                               MAX_NUMBER_DIGITS)
            if not digits:
                return None
            if digits == "1" and number:
                return number
            if digits != "1" and is_number(digits):
                number = digits
        return None


def _queue_args(args: list[str]) -> tuple[str, str, str, str, str, str]:
    """The script's arguments in the order of ``dp.QUEUE_ARGS`` (missing ones empty); the
    DID is the rest, commas and all."""
    n = len(dp.QUEUE_ARGS)
    head = (list(args[:n - 1]) + [""] * n)[:n - 1]
    return (*head, ",".join(args[n - 1:]))     # type: ignore[return-value]


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None
