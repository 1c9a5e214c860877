"""Seeded by config.yaml, changed on the admin page: one rule for where the truth is.

Used for skill-group memberships (acd.memberships) and for agents, groups and web users
(acd.admin_config). Each stored row keeps two things: the value in force (None: removed on
the page, kept so the file's seed does not bring it back) and the value the file gave when it
was last seeded (None: made on the page). At a start:

* a value the file names and the store has not seen is added as the file says;
* a value whose file version differs from what was seeded (the file was edited since) takes
  the file's word (``edits``);
* a seeded value the file no longer names is removed (``removed``);
* otherwise the stored value (the page's) is in force.

Plain Python, no I/O: the callers turn the answer into their rows and their log lines.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

V = TypeVar("V")
Key = tuple[Hashable, Hashable]          # (outer, inner): (group, agent), (kind, key)


@dataclass(frozen=True, slots=True)
class Stored(Generic[V]):
    value: V | None              # in force; None: removed on the page
    seeded: V | None             # as the file gave it when last seeded; None: made on the page


@dataclass(slots=True)
class Merged(Generic[V]):
    values: dict[Any, dict[Any, V]]                      # outer -> inner -> value in force
    upserts: list[tuple[Any, Any, V]] = field(default_factory=list)   # written as seeded
    deletes: list[Key] = field(default_factory=list)
    edits: list[tuple[Any, Any, Stored[V]]] = field(default_factory=list)   # the file won
    removed: list[Key] = field(default_factory=list)     # in force, gone from the file


def reconcile(file: Mapping[Any, Mapping[Any, V]], stored: Iterable[tuple[Key, Stored[V]]],
              outers: Iterable[Any], keep: Callable[[Any, Any], bool] = lambda o, i: True
              ) -> Merged[V]:
    """The values in force under ``outers`` (in the file's order first, then the page's in
    ``stored``'s order). Stored rows under another outer, or that ``keep`` refuses (an agent
    no longer configured), are deleted."""
    rows = dict(stored)
    out: Merged[V] = Merged({o: {} for o in outers})
    for outer, values in out.values.items():
        for inner, value in (file.get(outer) or {}).items():
            row = rows.pop((outer, inner), None)
            if row is None or row.seeded != value:
                out.upserts.append((outer, inner, value))
                values[inner] = value
                if row is not None:
                    out.edits.append((outer, inner, row))
            elif row.value is not None:
                values[inner] = row.value
    for (outer, inner), row in rows.items():
        if row.seeded is not None or outer not in out.values or not keep(outer, inner):
            out.deletes.append((outer, inner))
            if row.seeded is not None and row.value is not None:
                out.removed.append((outer, inner))
        elif row.value is not None:
            out.values[outer][inner] = row.value
    return out


__all__ = ["Merged", "Stored", "reconcile"]
