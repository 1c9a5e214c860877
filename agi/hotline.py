"""The built-in hotline IVR: greet, collect the caller's number, read it back, then queue the
caller for an agent (the first skill group, when groups are configured) or say goodbye.

This is the first caller-facing script, kept deliberately small: the YAML flow runner replaces
it as the ``ivr`` route once flows land. What it already does the way flows will: every call is
recorded on arrival, every key is written to the call's key trail with the node it answered,
and the call gets exactly one end reason (a queued call gets it from the ACD).
"""
from __future__ import annotations

import asyncio

from collections.abc import Callable
from datetime import datetime, timezone

from acd.asterisk import dialplan as dp
from agi.protocol import AgiError, AgiHangup
from agi.server import AgiSession
from acd.store.db import Store

COLLECT_PROMPT = "vm-enter-num-to-call"   # "Please enter the number ... followed by pound"
COLLECT_TIMEOUT_MS = 8000
COLLECT_MAX_DIGITS = 20


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class HotlineIvr:
    def __init__(self, store: Store, clock: Callable[[], datetime] = utcnow,
                 queue_group: str | None = None,
                 on_queue: Callable[[str, tuple[str, ...]], None] | None = None) -> None:
        self.store = store
        self.clock = clock
        self.queue_group = queue_group
        self.on_queue = on_queue      # told the call and its key trail before it goes to the queue

    async def __call__(self, session: AgiSession) -> None:
        req = session.request
        uid = req.uniqueid
        log = session.log
        await self.store.call_arrived(uniqueid=uid, channel=req.channel,
                                      caller_number=req.caller_id_num,
                                      caller_name=req.caller_id_name,
                                      did=req.headers.get("agi_extension", ""), at=self.clock())
        reason: str | None = "ivr_hangup"
        try:
            await session.answer()
            await self.store.call_event(uid, "ivr", at=self.clock(), detail={"script": "hotline"})
            digits, timed_out = await session.get_data(COLLECT_PROMPT, COLLECT_TIMEOUT_MS,
                                                       COLLECT_MAX_DIGITS)
            trail: tuple[str, ...] = ()
            if digits:
                trail = (digits,)
                await self.store.key_pressed(uid, node="collect_number", keys=digits, at=self.clock())
                log.info("ivr.collected", node="collect_number", digits=len(digits),
                         timed_out=timed_out)
                await session.stream_file("you-entered")
                await session.say_digits(digits)
                await session.stream_file("auth-thankyou")
            else:
                log.info("ivr.no_input", node="collect_number")
            if self.queue_group:
                # To the ACD: the queue script registers the caller; the ACD ends the record.
                await session.set_variable(dp.GROUP, self.queue_group)
                await session.set_variable(dp.PRIORITY, "0")
                if self.on_queue is not None:
                    self.on_queue(uid, trail)
                await session.exec_app("Goto", dp.QUEUE_TARGET)
                await self.store.call_event(uid, "to_queue", at=self.clock(),
                                            detail={"group": self.queue_group})
                log.info("ivr.to_queue", group=self.queue_group)
                reason = None
                return
            await session.stream_file("goodbye")
            await session.hangup()
        except asyncio.CancelledError:
            reason = None   # our server is stopping: the caller stays, the IVR runs again
            raise
        except AgiError as e:
            if isinstance(e, AgiHangup) or await session.channel_gone():
                reason = "caller_hangup"
            else:
                # A failed command (a missing prompt, say) ends this script and the dialplan
                # hangs up; the call record still gets its one end reason.
                log.warning("ivr.command_failed", error=str(e))
                reason = "ivr_error"
                try:        # ended here: the dialplan must not run the IVR again
                    await session.hangup()
                except AgiError:
                    pass
        finally:
            if reason is not None:
                await self.store.call_ended(uid, reason=reason, at=self.clock())
