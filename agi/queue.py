"""The FastAGI ``queue`` script registers a caller with the ACD; the ``callback`` script
confirms the number of a caller who asked to be called back.

``queue``: the dialplan (``[acd-queue]``) passes ``ACD_GROUP``, ``ACD_PRIORITY``,
``ACD_ENTERED``... as the script's arguments (``dp.QUEUE_ARGS``). The script registers the
caller before its first AGI command, so the core decides (and an idle agent's phone rings)
without waiting on a round trip to Asterisk; then it keeps the entry time in ``ACD_ENTERED``
(a caller whose session comes back after a restart keeps the value, and with it their place)
and sends the caller to ``wait`` (``ACD_NEXT``): the caller waits in Asterisk, with music and
no FastAGI session (see :mod:`acd.runtime.queue`). A caller the core sends away at once (the
group closed or unstaffed, its queue full, our server overloaded) is sent on by the script
itself: the destination's variables and ``ACD_NEXT``, no AMI action. While our server is still starting up, the
music is on at once: music, never silence, while the ACD takes up its state.

``callback``: the caller pressed their group's callback key while waiting (the runtime saw
it over AMI and sent them here). They hear their number read back and press 1 to confirm
(or key in another number and #); the ACD keeps their place, they hear a thank-you and the
script hangs up. Without a confirmation they go back to ``wait``.
"""
from __future__ import annotations

from typing import Any

from acd.asterisk import dialplan as dp
from acd.core import AcdError
from acd.core.numbers import is_number
from acd.errors import UserError
from acd.runtime.queue import SentOn
from agi.protocol import AgiError
from agi.server import AgiSession

CONFIRM_TIMEOUT_MS = 6000
MAX_NUMBER_DIGITS = 20


class QueueScript:
    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

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
        if not self.runtime.ready.is_set():     # our server is starting up: music meanwhile
            await session.set_music(True)
        try:
            waiting = await self.runtime.caller_arrived(
                uniqueid=req.uniqueid, channel=req.channel, caller_number=req.caller_id_num,
                caller_name=req.caller_id_name, did=did or req.extension, group=group,
                priority=priority, entered=entered, ivr=bool(ivr))
        except UserError as e:
            log.warning("queue.refused", error=e.id, message=e.message, group=group)
            await session.set_variable(dp.NEXT, dp.SORRY_TARGET)
            return
        if not waiting:                 # the ACD is done with this call
            await session.set_variable(dp.NEXT, dp.HANGUP_TARGET)
            return
        if isinstance(waiting, SentOn):  # closed, unstaffed, full, overloaded: sent away
            try:
                for name, value in waiting.variables.items():
                    await session.set_variable(name, value)
                await session.set_variable(dp.NEXT, waiting.target)
            except AgiError:
                pass                    # hung up meanwhile
            return
        try:
            await self._registered(session, entered if new else None)
        except AgiError:
            pass                        # cut: bridged, or sent on (a Redirect), or hung up

    async def _registered(self, session: AgiSession, entered: float | None) -> None:
        """On to the wait (a bridge or a Redirect already on its way takes the caller from
        there)."""
        req = session.request
        if entered is not None:         # kept for the caller's place after a restart
            await session.set_variable(dp.ENTERED, f"{entered:.6f}")
        # (the tries while our server is away count from zero again at the wait: dialplan)
        # The caller's entry on record before they go on (music meanwhile, should the
        # store be behind), so that a crash from here on leaves a whole record.
        await self.runtime.caller_on_record(req.uniqueid,
                                            before_waiting=lambda: session.set_music(True))
        await session.set_variable(dp.NEXT, dp.WAIT_TARGET)


class CallbackScript:
    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    async def __call__(self, session: AgiSession) -> None:
        """Confirm the number; then the call becomes a callback and the caller hangs up."""
        call_id = session.request.uniqueid
        try:
            await self._confirm(session, call_id)
        except AgiError:
            pass                        # cut: bridged with an agent, or hung up
        finally:
            self.runtime.callback_not_requested(call_id)   # no-op once it is a callback

    async def _confirm(self, session: AgiSession, call_id: str) -> None:
        number = await self._confirm_number(session, self.runtime.caller_number(call_id))
        if number is None:
            session.log.info("queue.callback_not_confirmed")
            return
        try:
            self.runtime.callback_requested(call_id, number)
        except AcdError as e:
            session.log.info("queue.callback_refused", error=e.id)
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
