"""Live events for the pages: one topic per agent (``agent:<id>``) and one for supervisors.

Publishing never blocks the ACD. Each subscriber has a bounded queue; a subscriber that falls
that far behind is cut off (its WebSocket is closed with a reason) rather than silently
losing events: the page reconnects and starts again from a fresh snapshot.

Every message of a topic has the topic's next sequence number (``seq``: 1, 2, 3, ...). A
snapshot carries the number of the last message published before it was built
(:meth:`Hub.last_seq`): a page drops what it receives with a number up to the snapshot's, and
a number that skips one tells it that it missed something (it asks for a snapshot:
:meth:`Subscription.want_snapshot`).
"""
from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

CLOSED = object()
#: In a subscriber's queue: build a fresh snapshot here (the page asked for one).
SNAPSHOT = object()


class Subscription:
    def __init__(self, hub: "Hub", topic: str, limit: int) -> None:
        self.hub = hub
        self.topic = topic
        self.queue: asyncio.Queue[Any] = asyncio.Queue(limit)
        self.overflowed = False
        self._snapshot_asked = False

    async def get(self) -> Any:
        """The next message, :data:`SNAPSHOT` where a snapshot is due, or None once the
        subscription is closed."""
        msg = await self.queue.get()
        if msg is SNAPSHOT:
            self._snapshot_asked = False
        return None if msg is CLOSED else msg

    def want_snapshot(self) -> None:
        """The page asks for a full snapshot: it comes in order, after what is queued (one
        at a time: asking again while one is due changes nothing)."""
        if self._snapshot_asked:
            return
        self._snapshot_asked = True
        self.hub._put(self, SNAPSHOT)

    def close(self) -> None:
        self.hub._remove(self)


class Hub:
    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self._subs: dict[str, set[Subscription]] = defaultdict(set)
        self._seq: dict[str, int] = {}

    def subscribe(self, topic: str) -> Subscription:
        sub = Subscription(self, topic, self.limit)
        self._subs[topic].add(sub)
        return sub

    def publish(self, topic: str, message: dict[str, Any]) -> int:
        """Queue ``message`` (with the topic's next sequence number) for every subscriber of
        ``topic``."""
        subs = self._subs.get(topic)
        if not subs:
            return 0
        seq = self._seq[topic] = self._seq.get(topic, 0) + 1
        message = {**message, "seq": seq}
        for sub in list(subs):
            self._put(sub, message)
        return len(subs)

    def last_seq(self, topic: str) -> int:
        """The sequence number of the topic's last message (0: none yet)."""
        return self._seq.get(topic, 0)

    def subscribers(self, topic: str) -> int:
        return len(self._subs.get(topic, ()))

    def _put(self, sub: Subscription, message: Any) -> None:
        try:
            sub.queue.put_nowait(message)
        except asyncio.QueueFull:
            sub.overflowed = True
            self._remove(sub)

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
