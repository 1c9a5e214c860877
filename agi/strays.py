"""Log lines for stray FastAGI connections (a refused address, a bad header, a header timeout,
junk): bounded however many come, without hiding any.

The first time an address gives an error, that connection gets its own line at once. Further
ones from the same address with the same error id are counted, and once an interval is over
one summary line per address and error id says how many, the first one's time, and one example.
While they keep coming, each interval has its summary line and nothing else; after an interval
without any, the next one gets its own line again.

No I/O and no clock: every call takes ``now`` (seconds since the epoch), and the caller logs
what :meth:`StrayLog.note` and :meth:`StrayLog.flush` tell it to.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Where errors go once ``max_pairs`` (address, error id) pairs are counted: one summary line
#: per error id for all further addresses, so a scan from many addresses stays bounded too.
OTHERS = "others"


@dataclass(frozen=True)
class Summary:
    """One summary line: ``count`` connections from ``address`` ended with ``error`` since its
    last line, the first of them at ``first``; ``example`` is that first one's log fields."""

    address: str
    error: str
    count: int
    first: float
    example: dict[str, Any]


@dataclass
class _Pair:
    due: float                      # the end of the current interval
    count: int = 0                  # connections counted, not logged on a line of their own
    first: float = 0.0
    example: dict[str, Any] = field(default_factory=dict)


class StrayLog:
    def __init__(self, interval: float = 10.0, max_pairs: int = 256):
        if interval <= 0 or max_pairs < 1:
            raise ValueError("interval must be above 0 and max_pairs at least 1")
        self.interval = interval
        self.max_pairs = max_pairs
        self._pairs: dict[tuple[str, str], _Pair] = {}

    def note(self, address: str, error: str, now: float, example: dict[str, Any]) -> bool:
        """One stray connection. True: log it on its own line now; False: it is counted into
        the summary of its interval (``example`` kept if it is the interval's first)."""
        key = (address, error)
        if key not in self._pairs and len(self._pairs) >= self.max_pairs:
            key = (OTHERS, error)
        pair = self._pairs.get(key)
        if pair is None:
            self._pairs[key] = _Pair(due=now + self.interval)
            return True
        if pair.count == 0:
            pair.first, pair.example = now, dict(example)
        pair.count += 1
        return False

    def next_due(self) -> float | None:
        """When :meth:`flush` next has something to do; None: nothing is counted."""
        return min((p.due for p in self._pairs.values()), default=None)

    def flush(self, now: float, final: bool = False) -> list[Summary]:
        """The summary lines of the intervals over at ``now`` (all of them if ``final``).
        A pair with nothing counted in its interval is forgotten; one with a summary starts
        another interval."""
        out = []
        for key, pair in list(self._pairs.items()):
            if pair.due > now and not final:
                continue
            if pair.count == 0 or final:
                del self._pairs[key]
            if pair.count:
                out.append(Summary(key[0], key[1], pair.count, pair.first, pair.example))
                pair.due, pair.count, pair.example = now + self.interval, 0, {}
        return out

    def __len__(self) -> int:
        return len(self._pairs)


__all__ = ["OTHERS", "StrayLog", "Summary"]
