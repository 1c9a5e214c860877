"""Live events for the pages: one topic per agent (``agent:<id>``) and one for supervisors.

Publishing never blocks the ACD. Each subscriber has a bounded queue; a subscriber that falls
that far behind is cut off (its WebSocket is closed with a reason) rather than silently
losing events: the page reconnects and starts again from a fresh snapshot.
"""
from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from typing import Any

CLOSED = object()


class Subscription:
    def __init__(self, hub: "Hub", topic: str, limit: int) -> None:
        self.hub = hub
        self.topic = topic
        self.queue: asyncio.Queue[Any] = asyncio.Queue(limit)
        self.overflowed = False

    async def get(self) -> dict[str, Any] | None:
        """The next message, or None once the subscription is closed."""
        msg = await self.queue.get()
        return None if msg is CLOSED else msg

    def close(self) -> None:
        self.hub._remove(self)


class Hub:
    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self._subs: dict[str, set[Subscription]] = defaultdict(set)
        self._seq = itertools.count(1)

    def subscribe(self, topic: str) -> Subscription:
        sub = Subscription(self, topic, self.limit)
        self._subs[topic].add(sub)
        return sub

    def publish(self, topic: str, message: dict[str, Any]) -> int:
        """Queue ``message`` (with a sequence number) for every subscriber of ``topic``."""
        message = {**message, "seq": next(self._seq)}
        subs = self._subs.get(topic)
        if not subs:
            return 0
        for sub in list(subs):
            try:
                sub.queue.put_nowait(message)
            except asyncio.QueueFull:
                sub.overflowed = True
                self._remove(sub)
        return len(subs)

    def subscribers(self, topic: str) -> int:
        return len(self._subs.get(topic, ()))

    def _remove(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.topic)
        if subs and sub in subs:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.topic]
            # Drop what is queued: the reader ends at once and starts again from a snapshot.
            while not sub.queue.empty():
                sub.queue.get_nowait()
            sub.queue.put_nowait(CLOSED)
