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
"""
from __future__ import annotations

import asyncio
import statistics
from collections import deque
from typing import Any

INTERVAL = 0.1      # seconds between samples
WINDOW = 10         # samples kept: about a second


class LoopLag:
    def __init__(self, max_lag: float, log: Any, *, window: int = WINDOW) -> None:
        self.max_lag = max_lag
        self.log = log
        self.samples: deque[float] = deque(maxlen=window)
        self.overloaded = False
        self.turned_away = 0        # callers sent to the overload destination, this episode
        self._task: asyncio.Task | None = None

    def sample(self, lag: float) -> None:
        """One sample: how late a sleep woke (seconds)."""
        self.samples.append(max(0.0, lag))
        typical = statistics.median(self.samples)
        if not self.overloaded and typical > self.max_lag:
            self.overloaded = True
            self.turned_away = 0
            self.log.warning("runtime.overload_started", lag_ms=round(typical * 1000, 1),
                             max_lag_ms=round(self.max_lag * 1000, 1))
        elif self.overloaded and typical <= self.max_lag:
            self.overloaded = False
            self.log.info("runtime.overload_ended", lag_ms=round(typical * 1000, 1),
                          turned_away=self.turned_away)

    def admit(self) -> bool:
        """Whether a new caller gets a place in the queue now (counted when not)."""
        if self.overloaded:
            self.turned_away += 1
            return False
        return True

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(INTERVAL)
            self.sample(loop.time() - before - INTERVAL)


__all__ = ["LoopLag", "INTERVAL", "WINDOW"]
