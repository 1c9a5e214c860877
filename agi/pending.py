"""FastAGI connections still waiting for their header, by address and in order of arrival.

A connection is here from its accept until it has sent a valid header block (then it is an AGI
session and never here again) or until it ends. The server closes strangers from here to make
room, oldest first: Asterisk sends its whole header right after it connects, so the oldest
connection without one is the least likely to be a caller.

No I/O: items are whatever the server counts (hashable, one per connection).
"""
from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)


class Pending(Generic[T]):
    def __init__(self) -> None:
        self._all: dict[T, str] = {}                     # item -> address, oldest first
        self._by_address: dict[str, dict[T, None]] = {}  # address -> its items, oldest first

    def add(self, address: str, item: T) -> None:
        self._all[item] = address
        self._by_address.setdefault(address, {})[item] = None

    def discard(self, item: T) -> None:
        address = self._all.pop(item, None)
        if address is None:
            return
        group = self._by_address[address]
        del group[item]
        if not group:
            del self._by_address[address]

    def count(self, address: str) -> int:
        return len(self._by_address.get(address, ()))

    def oldest(self, address: str | None = None) -> T | None:
        """The item waiting longest (of ``address`` if given), or None."""
        items = self._all if address is None else self._by_address.get(address, {})
        return next(iter(items), None)

    def __len__(self) -> int:
        return len(self._all)

    def __contains__(self, item: object) -> bool:
        return item in self._all


__all__ = ["Pending"]
