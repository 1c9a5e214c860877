"""Routing indexes and strategies: who is offered which call, without scanning everybody.

Each skill group keeps

* :class:`IdleAgents` -- its idle, reachable, logged-in members, one sorted list per skill
  level, each sorted by the group's strategy key; and
* :class:`WaitingCalls` -- the calls that may be offered to its members, one sorted list per
  lowest accepted skill level, each sorted by (priority, entry time, entry order).

An agent in several groups is in several :class:`IdleAgents`; a call widened to several
groups is in several :class:`WaitingCalls`. Picking looks at the head of a handful of sorted
lists (one per distinct skill level), so it does not grow with the number of agents or calls;
adding and removing are a binary search plus a list insert.

Strategies (ties: the member order of the group's configuration):

``longest_idle`` (default)
    the agent idle for the longest time first. Idle time starts when the agent becomes idle;
    an agent whose ring was cancelled through no fault of theirs keeps their place, an agent
    who did not answer goes to the back.
``round_robin``
    the member offered a call of this group longest ago first (never offered: member order).
``fewest_calls``
    the agent who answered the fewest calls first (since the core started or was restored),
    then longest idle.
``skill_level``
    the highest skill level in this group first, then longest idle.
``random``
    uniformly at random among the eligible idle agents, drawn with the injected
    ``random.Random`` (``rng.randrange`` over them listed by skill level, highest first,
    then member order).
"""
from __future__ import annotations

import random
from bisect import bisect_left, insort
from collections.abc import Callable, Collection, Iterator
from enum import StrEnum
from typing import Any

#: An index entry: a sort key whose last item is the agent or call id.
Entry = tuple[Any, ...]


class Strategy(StrEnum):
    LONGEST_IDLE = "longest_idle"
    ROUND_ROBIN = "round_robin"
    FEWEST_CALLS = "fewest_calls"
    SKILL_LEVEL = "skill_level"
    RANDOM = "random"


class SortedList:
    """A list of unique tuples kept in order (binary search, C-speed inserts)."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: list[Entry] = []

    def add(self, item: Entry) -> None:
        insort(self._items, item)

    def remove(self, item: Entry) -> None:
        items = self._items
        i = bisect_left(items, item)
        if i == len(items) or items[i] != item:
            raise KeyError(item)
        del items[i]

    def index(self, item: Entry) -> int:
        """How many items sort before ``item``."""
        return bisect_left(self._items, item)

    def first(self, skip: Callable[[Entry], bool] | None = None) -> Entry | None:
        """The first item for which ``skip`` is false."""
        if skip is None:
            return self._items[0] if self._items else None
        for item in self._items:
            if not skip(item):
                return item
        return None

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._items)

    def __getitem__(self, i: int) -> Entry:
        return self._items[i]


def idle_entry(strategy: Strategy, agent_id: str, *, member_index: int, idle_since: float,
               last_offer: int, calls_answered: int) -> Entry:
    """An agent's entry in a group's idle index: the strategy's sort key, agent id last."""
    if strategy is Strategy.ROUND_ROBIN:
        return (last_offer, member_index, agent_id)
    if strategy is Strategy.FEWEST_CALLS:
        return (calls_answered, idle_since, member_index, agent_id)
    if strategy is Strategy.RANDOM:
        return (member_index, agent_id)
    # longest idle; skill level (the level is the bucket, highest bucket first)
    return (idle_since, member_index, agent_id)


class IdleAgents:
    """The idle, reachable, logged-in members of one group, by skill level."""

    __slots__ = ("strategy", "_by_level", "_levels_desc")

    def __init__(self, strategy: Strategy, levels: Collection[int]) -> None:
        self.strategy = strategy
        self._levels_desc = sorted(set(levels), reverse=True)
        self._by_level: dict[int, SortedList] = {lv: SortedList() for lv in self._levels_desc}

    def add(self, level: int, entry: Entry) -> None:
        self._by_level[level].add(entry)

    def ensure_level(self, level: int) -> None:
        """A skill level that may hold agents from now on (a member added live)."""
        if level not in self._by_level:
            self._by_level[level] = SortedList()
            self._levels_desc = sorted(self._by_level, reverse=True)
            self._by_level = {lv: self._by_level[lv] for lv in self._levels_desc}

    def remove(self, level: int, entry: Entry) -> None:
        self._by_level[level].remove(entry)

    def __len__(self) -> int:
        return sum(len(b) for b in self._by_level.values())

    def agents(self) -> Iterator[str]:
        for lv in self._levels_desc:
            for entry in self._by_level[lv]:
                yield entry[-1]

    def pick(self, min_level: int, skip: Collection[str], rng: random.Random) -> str | None:
        """The agent the strategy offers a call to, among levels >= ``min_level``, leaving
        out the agent ids in ``skip``."""
        buckets = [b for lv, b in self._by_level.items() if lv >= min_level and b]
        if not buckets:
            return None
        skip_fn = (lambda e: e[-1] in skip) if skip else None
        strategy = self.strategy
        if strategy is Strategy.SKILL_LEVEL:      # buckets are highest level first
            for b in buckets:
                e = b.first(skip_fn)
                if e is not None:
                    return str(e[-1])
            return None
        if strategy is Strategy.RANDOM:
            total = sum(len(b) for b in buckets)
            for _ in range(4):                    # rejection sampling; skip is tiny
                r = rng.randrange(total)
                agent = ""
                for b in buckets:
                    if r < len(b):
                        agent = str(b[r][-1])
                        break
                    r -= len(b)
                if agent not in skip:
                    return agent
            rest = [e[-1] for b in buckets for e in b if e[-1] not in skip]
            return rest[rng.randrange(len(rest))] if rest else None
        best: Entry | None = None
        for b in buckets:
            e = b.first(skip_fn)
            if e is not None and (best is None or e < best):
                best = e
        return None if best is None else str(best[-1])


class WaitingCalls:
    """The calls one group's members may be offered, by lowest accepted skill level.
    Entries are call keys: (-priority, entered_at, seq, call_id)."""

    __slots__ = ("_by_threshold",)

    def __init__(self) -> None:
        self._by_threshold: dict[int, SortedList] = {}

    def bucket(self, threshold: int) -> SortedList:
        b = self._by_threshold.get(threshold)
        if b is None:
            b = self._by_threshold[threshold] = SortedList()
        return b

    def __len__(self) -> int:
        return sum(len(b) for b in self._by_threshold.values())

    def best_for(self, level: int, skip: Callable[[Entry], bool] | None) -> Entry | None:
        """The first call (by queue order) an agent of skill ``level`` may take."""
        best: Entry | None = None
        for threshold, b in self._by_threshold.items():
            if threshold <= level and b:
                e = b.first(skip)
                if e is not None and (best is None or e < best):
                    best = e
        return best
