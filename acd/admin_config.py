"""Agents, skill groups and web users: config.yaml seeds them, the admin page changes them.

The same model as the memberships (:mod:`acd.memberships`), so the file and the database
never fight:

* ``config.yaml``'s ``agents``, ``groups`` (their settings; members are memberships) and
  ``web.users`` **seed** the database (table ``admin_entries``): an entry the file names and
  the database has not seen is added as the file says.
* After that **the database is the truth**: an admin creates, changes and removes entries on
  the page, and a restart keeps it.
* **A later change in the file wins for what it changes**: each row remembers the entry as the
  file gave it when it was seeded (``seeded``); at a start, an entry whose text in the file
  differs from ``seeded`` (the file was edited since) takes the file's word, and one the file
  no longer names is removed. Each such change is logged (``config.entries_from_file``).

Plain Python, no I/O: :func:`reconcile` says what to write and what is in force;
:func:`config_with` makes the configuration in force from the entries and checks it by the
same rules as the file (:mod:`acd.config_checks`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, NoReturn

from acd import config as configmod
from acd import seeding
from acd.config import AgentConfig, Config, ConfigError, GroupConfig, WebUserConfig
from acd.config_checks import check_entries

AGENT, GROUP, USER = "agent", "group", "user"
KINDS = (AGENT, GROUP, USER)
#: Each kind's key field, its dataclass and where it lives in config.yaml.
KEY = {AGENT: "id", GROUP: "name", USER: "username"}
TYPE = {AGENT: AgentConfig, GROUP: GroupConfig, USER: WebUserConfig}
SECTION = {AGENT: "agents", GROUP: "groups", USER: "web.users"}
#: Fields never shown back (the page shows a new one once, when it is made).
SECRETS = {AGENT: ("password", "web_password"), GROUP: (), USER: ("password", "phone_password")}
#: Where the page's entries come from, for messages (config.yaml's keys name the file's line).
SOURCE = "the admin page"

Doc = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Row:
    """A stored entry. ``doc`` None: removed on the page (kept so that the file's seed does not
    bring it back). ``seeded``: the entry as the file gave it when last seeded (None: made on
    the page)."""
    kind: str
    key: str
    doc: Doc | None
    seeded: Doc | None


@dataclass(frozen=True, slots=True)
class Reconciled:
    entries: dict[str, dict[str, Doc]]       # kind -> key -> entry, the file's order first
    upserts: list[Row]
    deletes: list[tuple[str, str]]           # (kind, key)
    notes: list[str]


def plain(obj: Any) -> Any:
    """A config dataclass as JSON-ready data (tuples as lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [plain(x) for x in obj]
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    return obj


def doc_of(kind: str, item: Any) -> Doc:
    """An entry as stored: every field of its dataclass; a group without its members."""
    doc = plain(item)
    if kind == GROUP:
        doc.pop("members", None)
    return doc


def entries_of(cfg: Config) -> dict[str, dict[str, Doc]]:
    """The configuration's agents, groups and users as entries (kind -> key -> entry)."""
    return {AGENT: {a.id: doc_of(AGENT, a) for a in cfg.agents},
            GROUP: {g.name: doc_of(GROUP, g) for g in cfg.groups},
            USER: {u.username: doc_of(USER, u) for u in cfg.web.users}}


def reconcile(file_entries: Mapping[str, Mapping[str, Doc]], rows: Iterable[Row]) -> Reconciled:
    """The entries in force: the file's seed, the page's changes, the file's later edits
    (see the module docstring; the rule is acd.seeding's)."""
    m = seeding.reconcile(
        file_entries, (((r.kind, r.key), seeding.Stored(r.doc, r.seeded))
                       for r in sorted(rows, key=lambda r: (r.kind, r.key))), KINDS)
    notes = [f"{kind} {key} as config.yaml now says"
             + (" (it had been removed on the page)" if row.value is None else "")
             for kind, key, row in m.edits if row.seeded is not None or row.value is not None]
    notes += [f"{kind} {key} removed, as config.yaml no longer names it"
              for kind, key in m.removed]
    return Reconciled(m.values, [Row(k, key, doc, doc) for k, key, doc in m.upserts],
                      m.deletes, notes)


def _coerce(kind: str, doc: Doc, at: str) -> Any:
    doc = {k: v for k, v in doc.items() if k != "members"}
    return configmod._coerce(TYPE[kind], doc, at, {}, SOURCE)


def config_with(cfg: Config, entries: Mapping[str, Mapping[str, Doc]],
                members: Mapping[str, Mapping[str, int]] | None = None) -> Config:
    """``cfg`` with its agents, groups and users made from ``entries``, checked by the rules
    of the file (ConfigError names the key). Groups keep ``members`` (default: their members
    in ``cfg``; a new group has none)."""
    have = {g.name: dict(g.members or {}) for g in cfg.groups} if members is None else members
    agents = tuple(_coerce(AGENT, d, f"agents[{i}]") for i, d in enumerate(entries[AGENT].values()))
    ids = {a.id for a in agents}
    groups = tuple(replace(_coerce(GROUP, d, f"groups[{i}]"),
                           members={a: lv for a, lv in (have.get(d.get("name")) or {}).items()
                                    if a in ids})
                   for i, d in enumerate(entries[GROUP].values()))
    users = tuple(_coerce(USER, d, f"web.users[{i}]") for i, d in enumerate(entries[USER].values()))
    new = replace(cfg, agents=agents, groups=groups, web=replace(cfg.web, users=users))

    def bad(key: str, msg: str) -> NoReturn:
        raise ConfigError(key, SOURCE, msg)

    check_entries(new, bad)
    return new


_INDEXED = re.compile(r"^(agents|groups|web\.users)\[(\d+)\]\.?")


def field_of(error_key: str, entries: Mapping[str, Mapping[str, Doc]], kind: str,
             key: str) -> str:
    """A config error's key (``agents[7].name``) as the page's field (``name``) when it is about
    the entry at hand (``entries`` as given to :func:`config_with`); else as it is (another
    entry's rule, e.g. a group that names it)."""
    m = _INDEXED.match(error_key)
    if not m or m.group(1) != SECTION[kind]:
        return error_key
    keys = list(entries[kind])
    i = int(m.group(2))
    if i < len(keys) and keys[i] == key:
        return error_key[m.end():] or KEY[kind]
    return error_key


def version(doc: Doc | None) -> str:
    """An entry as a short tag: a change made against an older tag is refused."""
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def public(kind: str, doc: Doc) -> Doc:
    """An entry as the page sees it: secrets left out (``has_<name>`` says one is set)."""
    out = {k: v for k, v in doc.items() if k not in SECRETS[kind]}
    for name in SECRETS[kind]:
        out[f"has_{name}"] = bool(doc.get(name))
    return out


__all__ = ["AGENT", "GROUP", "USER", "KINDS", "KEY", "SECRETS", "Row", "Reconciled",
           "config_with", "doc_of", "entries_of", "field_of", "plain", "public", "reconcile",
           "version"]
