"""The FastAGI ``queue`` script: a caller waits for an agent, listening to music on hold.

The dialplan (``[acd-queue]``) has set ``ACD_GROUP`` and ``ACD_PRIORITY``. The script

1. turns the music on at once (so a caller never hears silence while our server starts up),
   waits until the ACD has taken up its state after a start, and registers the caller:
   a new caller enters the queue at ``ACD_ENTERED``, which the script sets once (a caller
   whose session comes back after a restart keeps the value, and with it their place);
2. loops on short ``WAIT FOR DIGIT`` commands (the music keeps playing) to catch the
   callback key and to play the announcements the ACD queued (position, estimated wait);
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

from acd.core import AcdError
from acd.errors import UserError
from acd.runtime import NUMBER, CallerSession
from agi.protocol import AgiError
from agi.server import AgiSession

POLL_MS = 1000                 # WAIT FOR DIGIT slice: the longest an announcement waits
CUT_GRACE_POLLS = 15           # done, but not cut by Asterisk: leave on our own after this
CONFIRM_TIMEOUT_MS = 6000
MAX_NUMBER_DIGITS = 20
SORRY = "acd-dest,sorry,1"     # where a caller goes whom the ACD refuses


class QueueScript:
    def __init__(self, runtime: Any, poll_ms: int = POLL_MS) -> None:
        self.runtime = runtime
        self.poll_ms = poll_ms

    async def __call__(self, session: AgiSession) -> None:
        req = session.request
        log = session.log
        await session.set_music(True)
        if await session.get_variable("ACD_BRIDGED"):
            return                      # talked to an agent already: the dialplan hangs up
        await self.runtime.wait_ready()
        group = await session.get_variable("ACD_GROUP") or ""
        priority = _int(await session.get_variable("ACD_PRIORITY"))
        entered_text = await session.get_variable("ACD_ENTERED")
        entered = _float(entered_text)
        did = await session.get_variable("ACD_DID") or req.headers.get("agi_extension", "")
        if entered is None:
            entered = self.runtime.clock()
            await session.set_variable("ACD_ENTERED", f"{entered:.6f}")
        try:
            handle = await self.runtime.caller_arrived(
                uniqueid=req.uniqueid, channel=req.channel, caller_number=req.caller_id_num,
                caller_name=req.caller_id_name, did=did, group=group, priority=priority,
                entered=entered)
        except UserError as e:
            log.warning("queue.refused", error=e.id, message=e.message, group=group)
            await session.set_variable("ACD_NEXT", SORRY)
            return
        if handle is None:              # the ACD is done with this call
            await session.set_variable("ACD_NEXT", "acd-dest,hangup,1")
            return
        await session.set_variable("ACD_QTRIES", "0")
        try:
            await self._wait(session, handle)
        except AgiError:
            pass                        # cut by Asterisk: bridged, redirected or hung up
        finally:
            handle.detach()

    async def _wait(self, session: AgiSession, handle: CallerSession) -> None:
        idle_done = 0
        while True:
            if handle.done:
                # Bridged or sent on: Asterisk cuts this session in a moment. Should it not
                # (the AMI action failed), leave on our own after a while.
                idle_done += 1
                if idle_done > CUT_GRACE_POLLS:
                    session.log.warning("queue.not_cut")
                    return
            item = None if handle.done else handle.next_instruction()
            if item is not None and item[0] == "announce":
                await self._announce(session, *item[1])
                handle.drop("announce")   # what came in meanwhile is said already
            digit = await session.wait_for_digit(self.poll_ms)
            key = handle.callback_key
            if digit and key and digit == key and not handle.done:
                await self._callback(session, handle)
                if handle.done:
                    return

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
        number = number if NUMBER.match(number or "") else ""
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
            if digits != "1" and NUMBER.match(digits):
                number = digits
        return None


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
