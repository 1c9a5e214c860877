"""AMI out: the actions the runtime sends, each logged with its call and agent, and the tasks
they run in: one ordered chain per call, so that a call's actions keep their order.

No decisions are taken here: :mod:`acd.runtime.telephony` says what to send.
"""
from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from acd.ami.client import AmiActionError, AmiError

#: A Bridge refused while a leg is in transition is tried again.
JOIN_ATTEMPTS = 3
JOIN_RETRY_SECONDS = 0.3


def conversations_only(channels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``channels`` with ``BridgeId`` emptied where no other channel shares the bridge."""
    shared = Counter(str(c.get("BridgeId") or "") for c in channels)
    return [c if not c.get("BridgeId") or shared[str(c["BridgeId"])] > 1
            else {**c, "BridgeId": ""} for c in channels]


class AmiOut:
    """Sends AMI actions for the runtime and owns the tasks they run in."""

    def __init__(self, ami: Any, log: Any) -> None:
        self.ami = ami
        self.log = log
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping = False
        self.tasks: set[asyncio.Task] = set()
        self._chains: dict[str, asyncio.Future] = {}

    # ---- tasks
    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task:
        loop = self.loop or asyncio.get_running_loop()
        task = loop.create_task(coro, name=f"runtime-{name}")  # type: ignore[arg-type]
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error("runtime.task_failed", task=task.get_name(), exc_info=task.exception())

    def chain(self, key: str, coro: Awaitable[Any]) -> None:
        """Run ``coro`` after the earlier actions of the same call (their order matters)."""
        before = self._chains.get(key)

        async def run() -> None:
            if before is not None and not before.done():
                await asyncio.gather(before, return_exceptions=True)
            await coro

        task = self.spawn(run(), f"call-{key}")
        self._chains[key] = task
        task.add_done_callback(lambda t, k=key: self._chains.pop(k, None)
                               if self._chains.get(k) is t else None)

    async def stop(self) -> None:
        self.stopping = True
        tasks = list(self.tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---- actions
    async def action(self, name: str, *, call: str | None = None, agent: str | None = None,
                     quiet_errors: tuple[str, ...] = (), **fields: Any) -> Any:
        """One AMI action; errors are logged with the call and agent, then raised."""
        try:
            return await self.ami.action(name, **fields)
        except AmiActionError as exc:
            if not any(q in (exc.message or "") for q in quiet_errors):
                self.log.warning("runtime.action_failed", action=name, call=call, agent=agent,
                                 error=exc.message)
            raise
        except AmiError as exc:
            if self.stopping or getattr(self.ami, "closing", False):
                # our own stop closed the link under it: nothing to report as an error
                self.log.info("runtime.action_dropped_at_stop", action=name, call=call,
                              agent=agent, error=str(exc))
            else:
                self.log.error("runtime.action_failed", action=name, call=call, agent=agent,
                               error=str(exc))
            raise

    def hangup(self, channel: str, call_id: str | None, agent_id: str | None) -> None:
        """Hang up a channel now (outside the call's chain)."""
        self.spawn(self.hangup_action(channel, call_id, agent_id), "hangup")

    async def hangup_action(self, channel: str, call_id: str | None,
                            agent_id: str | None) -> None:
        try:
            await self.action("Hangup", call=call_id, agent=agent_id,
                              quiet_errors=("No such channel",), Channel=channel)
        except AmiError:
            pass

    async def setvars(self, channel: str, call_id: str, **values: str) -> bool:
        """Set channel variables in order; False if one failed (the rest are not sent)."""
        for name, value in values.items():
            try:
                await self.action("Setvar", call=call_id, Channel=channel, Variable=name,
                                  Value=value)
            except AmiError:
                return False
        return True

    async def redirect(self, channel: str, call_id: str, context: str, exten: str, *,
                       agent: str | None = None, **extra: Any) -> bool:
        try:
            await self.action("Redirect", call=call_id, agent=agent, Channel=channel,
                              Context=context, Exten=exten, Priority=1, **extra)
            return True
        except AmiError:
            return False

    async def bridge(self, call_id: str, agent_id: str, channel1: str, channel2: str) -> None:
        """AMI Bridge; raises AmiError as the action does."""
        await self.action("Bridge", call=call_id, agent=agent_id, Channel1=channel1,
                          Channel2=channel2, Tone="no")

    async def originate(self, call_id: str, agent_id: str, on_failed: Callable[[AmiError], None],
                        **fields: Any) -> None:
        """An async Originate; ``on_failed`` hears a refusal or a lost link."""
        try:
            await self.action("Originate", call=call_id, agent=agent_id, Async="true", **fields)
        except AmiError as exc:
            on_failed(exc)

    # ---- reads
    async def channels(self) -> list[dict[str, Any]]:
        """Asterisk's channels (CoreShowChannels). ``BridgeId`` is kept only where two or
        more channels share the bridge: a channel alone in one waits in its holding bridge
        (BridgeWait, see the dialplan) or is left in a bridge that is ending; neither is a
        conversation."""
        channels = await self.ami.action_list("CoreShowChannels", timeout=30)
        return conversations_only(channels)

    async def contacts(self) -> list[dict[str, Any]]:
        try:
            return await self.ami.action_list("PJSIPShowContacts", timeout=30)
        except AmiActionError as exc:
            if "no contacts" in (exc.message or "").lower():
                return []
            raise

    async def getvars(self, channel: str, names: tuple[str, ...]) -> dict[str, str]:
        out: dict[str, str] = {}
        for name in names:
            try:
                r = await self.ami.action("Getvar", Channel=channel, Variable=name)
                out[name] = str(r.get("Value") or "")
            except AmiActionError:
                out[name] = ""
        return out

    async def core_started(self) -> str | None:
        """When the running Asterisk started (CoreStatus), to tell a restart from a cut
        link; None if it cannot be read."""
        try:
            r = await self.ami.action("CoreStatus")
        except AmiActionError:
            return None
        date, at = r.get("CoreStartupDate"), r.get("CoreStartupTime")
        return f"{date} {at}" if date and at else None


__all__ = ["AmiOut", "JOIN_ATTEMPTS", "JOIN_RETRY_SECONDS", "conversations_only"]
