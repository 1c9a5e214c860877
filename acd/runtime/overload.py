"""Overload: how late the event loop runs, and whether the server takes new callers.

Everything our server does runs on one event loop; when more comes in than it can handle,
the loop falls behind, and with it every AMI event, ring and page. Past that point a contact
center must not let everything get slower until Asterisk drops the AMI link: new callers get
a defined treatment (their group's ``overload_destination``: a message and goodbye, by
default; a callback offer or another group are configurable) while the callers already in
the queue and in conversation are served on, and the server recovers by itself.

:class:`LoopLag` samples the loop every :data:`INTERVAL` seconds (a sleep that wakes late by
the loop's backlog). The server is overloaded while the median of the last :data:`WINDOW`
samples is above ``max_lag``: a backlog that lasts, not one pause (a garbage collection, a
slow moment of the machine); one line when it starts (``runtime.overload_started``), one
when it ends (``runtime.overload_ended``, with how many callers were turned away).

Asterisk can be the part that falls behind first: on a machine it shares with its phones,
past the rate it can carry, it answers late, phones miss their checks and calls fail, while
our loop is idle. So the watch also pings Asterisk over AMI every :data:`PING_INTERVAL`
seconds: while the median of the last :data:`PING_WINDOW` round trips is above
``max_asterisk`` (an unanswered Ping counts as :data:`PING_TIMEOUT`), the server is
overloaded too. With no AMI link there is no sample: the last ones stand.
"""
from __future__ import annotations

import asyncio
import statistics
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

INTERVAL = 0.1      # seconds between samples
WINDOW = 10         # samples kept: about a second
PING_INTERVAL = 1.0  # seconds between Pings of Asterisk
PING_WINDOW = 3      # round trips kept
PING_TIMEOUT = 5.0   # an unanswered Ping counts as this round trip (seconds)


class LoopLag:
    def __init__(self, max_lag: float, log: Any, *, window: int = WINDOW,
                 max_asterisk: float = 0.0,
                 ping: Callable[[], Awaitable[float | None]] | None = None) -> None:
        self.max_lag = max_lag
        self.max_asterisk = max_asterisk      # 0: Asterisk's answers are not watched
        self.log = log
        self.samples: deque[float] = deque(maxlen=window)
        self.pings: deque[float] = deque(maxlen=PING_WINDOW)
        self.ping = ping                      # one Ping's round trip (s); None: no link
        self.overloaded = False
        self.turned_away = 0        # callers sent to the overload destination, this episode
        self._tasks: list[asyncio.Task] = []

    def sample(self, lag: float) -> None:
        """One sample: how late a sleep woke (seconds)."""
        self.samples.append(max(0.0, lag))
        self._update()

    def asterisk_sample(self, rtt: float | None) -> None:
        """One Ping's round trip (seconds); None: no AMI link, nothing learnt (a link lost
        to a saturated Asterisk is no sign that it recovered: the samples stand until the
        next answers)."""
        if rtt is not None:
            self.pings.append(max(0.0, rtt))
            self._update()

    def _update(self) -> None:
        lag = statistics.median(self.samples) if self.samples else 0.0
        rtt = statistics.median(self.pings) if self.pings else 0.0
        late_loop = lag > self.max_lag
        late_asterisk = self.max_asterisk > 0 and rtt > self.max_asterisk
        figures = {"lag_ms": round(lag * 1000, 1), "asterisk_ms": round(rtt * 1000, 1)}
        if not self.overloaded and (late_loop or late_asterisk):
            self.overloaded = True
            self.turned_away = 0
            self.log.warning("runtime.overload_started", **figures,
                             cause="event_loop" if late_loop else "asterisk",
                             max_lag_ms=round(self.max_lag * 1000, 1),
                             max_asterisk_ms=round(self.max_asterisk * 1000, 1))
        elif self.overloaded and not (late_loop or late_asterisk):
            self.overloaded = False
            self.log.info("runtime.overload_ended", **figures, turned_away=self.turned_away)

    def admit(self) -> bool:
        """Whether a new caller gets a place in the queue now (counted when not)."""
        if self.overloaded:
            self.turned_away += 1
            return False
        return True

    def start(self) -> None:
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._run())]
            if self.ping is not None and self.max_asterisk > 0:
                self._tasks.append(loop.create_task(self._watch_asterisk()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _watch_asterisk(self) -> None:
        assert self.ping is not None
        while True:
            await asyncio.sleep(PING_INTERVAL)
            try:
                rtt = await self.ping()
            except Exception:           # a watch must not die: no sample this time
                self.log.exception("runtime.overload_ping_failed")
                continue
            self.asterisk_sample(rtt)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(INTERVAL)
            self.sample(loop.time() - before - INTERVAL)


__all__ = ["LoopLag", "INTERVAL", "WINDOW", "PING_INTERVAL", "PING_WINDOW", "PING_TIMEOUT"]
