"""Helpers for real calls: an event log to wait on, and a test caller on the loopback trunk.

Waits have generous upper bounds: they end a stuck test, they never measure speed.
"""
from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

from acd.ami.client import AmiClient
from acd.ami.events import AmiEvent

WAIT = 20.0
_ids = itertools.count(1)


class EventLog:
    def __init__(self) -> None:
        self.events: list[AmiEvent] = []
        self._changed = asyncio.Condition()

    async def add(self, ev: AmiEvent) -> None:
        self.events.append(ev)
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, pred: Callable[[AmiEvent], bool], timeout: float = WAIT,
                       what: str = "event") -> AmiEvent:
        async def _wait() -> AmiEvent:
            async with self._changed:
                seen = 0
                while True:
                    for ev in self.events[seen:]:
                        if pred(ev):
                            return ev
                    seen = len(self.events)
                    await self._changed.wait()
        try:
            return await asyncio.wait_for(_wait(), timeout)
        except asyncio.TimeoutError:
            names = [e.name for e in self.events[-30:]]
            raise AssertionError(f"no {what} within {timeout}s; last events: {names}") from None


def field(ev: AmiEvent, name: str) -> str:
    return str(ev.fields.get(name, ""))


def talk_entered(ev: AmiEvent) -> bool:
    """A BridgeEnter into a bridge where parties talk: not a channel's own holding bridge
    (BridgeWait, where every channel waits for the ACD)."""
    return ev.name == "BridgeEnter" and field(ev, "BridgeCreator") != "BridgeWait"


class TestCaller:
    """A real SIP caller: Asterisk calls its own hotline over the loopback trunk.

    ``trunk_channel`` is the caller's side (we send DTMF from it); ``hotline_channel`` is the
    incoming leg that runs the IVR.
    """

    __test__ = False

    def __init__(self, ami: AmiClient, number: str, caller_num: str, caller_name: str = "") -> None:
        self.ami = ami
        self.number = number
        self.caller_num = caller_num
        self.caller_name = caller_name
        self.trunk_channel = ""
        self.hotline_channel = ""
        self.hotline_uniqueid = ""

    async def dial(self) -> None:
        events = self.ami.events
        tag = f"acdtest{next(_ids)}"
        cid = f'"{self.caller_name}" <{self.caller_num}>' if self.caller_name else f"<{self.caller_num}>"
        await self.ami.action("Originate", Channel=f"PJSIP/{self.number}@acd-trunk",
                              Context="acd-testcaller", Exten="wait", Priority=1,
                              CallerID=cid, Async="true", Variable=[f"HOLD_FOR=60", f"TESTTAG={tag}"],
                              ChannelId=f"{tag}-caller")
        self.trunk_channel = (await events.wait_for(
            lambda e: e.name == "Newchannel" and field(e, "Uniqueid") == f"{tag}-caller",
            what="the caller's channel")).fields["Channel"]
        ev = await events.wait_for(
            lambda e: e.name == "Newchannel" and field(e, "Channel").startswith("PJSIP/acd-caller-"),
            what="the hotline leg")
        self.hotline_channel = ev.fields["Channel"]
        self.hotline_uniqueid = ev.fields["Uniqueid"]

    async def wait_ivr_command(self, prefix: str) -> AmiEvent:
        """Wait until the IVR runs an AGI command, e.g. 'GET DATA'."""
        return await self.ami.events.wait_for(
            lambda e: e.name == "AGIExecStart" and field(e, "Channel") == self.hotline_channel
            and field(e, "Command").upper().startswith(prefix),
            what=f"AGI command {prefix}")

    async def send_dtmf(self, digits: str) -> None:
        """Send each digit as RFC 4733 events from the caller's phone; wait until the hotline
        leg has received it before the next."""
        for d in digits:
            mark = len(self.ami.events.events)
            await self.ami.action("PlayDTMF", Channel=self.trunk_channel, Digit=d, Duration=120)
            await self.ami.events.wait_for(
                lambda e, d=d: self.ami.events.events.index(e) >= mark and e.name == "DTMFEnd"
                and field(e, "Channel") == self.hotline_channel and field(e, "Digit") == d
                and field(e, "Direction") == "Received",
                what=f"DTMF {d} at the hotline")

    async def wait_hangup(self) -> AmiEvent:
        return await self.ami.events.wait_for(
            lambda e: e.name == "Hangup" and field(e, "Channel") == self.hotline_channel,
            what="the hotline leg's hangup")


async def until(pred: Callable[[], object], what: str, timeout: float = WAIT):
    """Poll ``pred`` until it returns something true; fail after ``timeout`` (a bound only)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (result := pred()):
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.02)
    return result
