"""Skill-group memberships: config.yaml seeds them, the admin page changes them while running.

One model, so the file and the database never fight:

* ``config.yaml``'s ``groups[].members`` **seed** the database (table ``group_members``): a
  membership the file names and the database has not seen is added as the file says.
* After that **the database is the truth**: a supervisor or admin changes a level, adds or
  removes a member on the page, and a restart keeps it.
* **A later change in the file wins for what it changes**: each row remembers the level the
  file gave when it was seeded (``seeded``); at a start, a membership whose level in the file
  differs from ``seeded`` (the file was edited since) takes the file's level, and one the file
  no longer names (it was removed there) is removed. Each such change is logged
  (``config.members_from_file``), so an edit in either place is never lost silently.

Plain Python, no I/O: :func:`reconcile` takes the file's memberships and the stored rows and
says what to write and what the memberships are.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from acd import seeding


@dataclass(frozen=True, slots=True)
class Row:
    """A stored membership. ``level`` None: removed on the page (kept so the file's seed does
    not bring it back). ``seeded``: the level the file gave when last seeded (None: made on
    the page)."""
    group: str
    agent: str
    level: int | None
    seeded: int | None


@dataclass(frozen=True, slots=True)
class Reconciled:
    members: dict[str, dict[str, int]]       # group -> agent -> level, in the file's order
    upserts: list[Row]                       # rows to write (insert or replace)
    deletes: list[tuple[str, str]]           # (group, agent) rows to delete
    notes: list[str]                         # what the file changed, for the log


def reconcile(file_groups: Mapping[str, Mapping[str, int]], agents: Iterable[str],
              rows: Iterable[Row]) -> Reconciled:
    """The memberships in force: the file's seed, the page's changes, and the file's later
    edits (see the module docstring; the rule is acd.seeding's). Rows of groups or agents no
    longer configured go."""
    known_agents = set(agents)
    m = seeding.reconcile(
        file_groups, (((r.group, r.agent), seeding.Stored(r.level, r.seeded)) for r in rows),
        file_groups, keep=lambda group, agent: agent in known_agents)
    notes = [f"{group}: {agent} at level {file_groups[group][agent]} as config.yaml now says "
             f"(was {row.value if row.value is not None else 'removed'})"
             for group, agent, row in m.edits]
    notes += [f"{group}: {agent} removed, as config.yaml no longer names it"
              for group, agent in m.removed]
    return Reconciled(m.values, [Row(g, a, level, level) for g, a, level in m.upserts],
                      m.deletes, notes)


def with_members(cfg: Any, members: Mapping[str, Mapping[str, int]]) -> Any:
    """``cfg`` (an acd.config.Config) with each group's members replaced by ``members``."""
    return replace(cfg, groups=tuple(replace(g, members=dict(members.get(g.name, {})))
                                     for g in cfg.groups))


def version(members: Mapping[str, int]) -> str:
    """A group's memberships as a short tag: a change made against an older tag is refused
    (two people editing one group at once: the second is told, nothing is overwritten)."""
    text = json.dumps(sorted(members.items()), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


__all__ = ["Row", "Reconciled", "reconcile", "version", "with_members"]
