"""The store's writes as SQLAlchemy Core statements on one synchronous connection.

Each function here is one write of :class:`acd.store.db.Store` (same name, same arguments
after the connection, same value and errors): the Store's async method runs it in a
transaction of its own, and :func:`write_batch` runs many of them in one transaction, which is
how :class:`acd.store.writer.StoreWriter` writes a turn's backlog. No ORM: a statement per
row, with the column types of :mod:`acd.store.models` (times, JSON) and no session.

A write about a call that has no row raises :class:`LookupError`, as before; the functions
do not commit.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, exc as sa_exc, func, insert, select, update
from sqlalchemy.sql.elements import BindParameter

from acd.store.models import (AgentPending, AgentStateChange, Call, CallEvent, CallLeg,
                               KeyPress, Recording, ReportDirty)

#: Caller-controlled text is kept, but only this much of it.
MAX_TEXT = 256

_calls = Call.__table__
_events = CallEvent.__table__
_keys = KeyPress.__table__
_legs = CallLeg.__table__
_states = AgentStateChange.__table__
_pending = AgentPending.__table__
_recordings = Recording.__table__

# Built once: each execution only binds its values (SQLAlchemy caches the compiled SQL).
_CALL_ID = select(_calls.c.id).where(_calls.c.uniqueid == bindparam("uid"))
_ADD_CALL = insert(_calls)
_ADD_EVENT = insert(_events)
_ADD_STATE = insert(_states)
_ADD_PENDING = insert(_pending)
_REPORT_DIRTY = insert(ReportDirty.__table__)


def _typed(name: str, column: Any) -> BindParameter:
    """A value bound with its column's type (times and JSON as the column stores them)."""
    return bindparam(name, type_=column.type)


def _for_call(table: Any, columns: dict[str, Any]) -> Any:
    """INSERT INTO table (call_id, ...) SELECT calls.id, ... FROM calls WHERE uniqueid = :uid:
    the call's row looked up and the row added in one statement (no row: no call)."""
    return insert(table).from_select(
        ["call_id", *columns],
        select(_calls.c.id, *(v.label(k) for k, v in columns.items()))
        .where(_calls.c.uniqueid == bindparam("uid")))


_EVENT_FOR_CALL = _for_call(_events, {
    "at": _typed("at", _events.c.at), "kind": _typed("kind", _events.c.kind),
    "detail": _typed("detail", _events.c.detail)})
_KEY_FOR_CALL = _for_call(_keys, {
    "seq": (select(func.count()).select_from(_keys).where(_keys.c.call_id == _calls.c.id)
            .scalar_subquery()),                   # numbered after the call's others
    "node": _typed("node", _keys.c.node), "keys": _typed("keys", _keys.c["keys"]),
    "at": _typed("at", _keys.c.at)})
_LEG_FOR_CALL = _for_call(_legs, {name: _typed(name, _legs.c[name]) for name in (
    "agent_id", "role", "started_at", "ended_at", "talk_seconds", "hold_seconds", "reason")})
_CALL_BY_ID = update(_calls).where(_calls.c.id == bindparam("cid"))
_END = update(_calls).where(_calls.c.id == bindparam("cid"), _calls.c.end_reason.is_(None))
_ANSWERED = update(_calls).where(_calls.c.id == bindparam("cid"), _calls.c.answered_at.is_(None))
_NEWEST_LEG = (select(_legs.c.id).where(_legs.c.call_id == bindparam("cid"),
                                        _legs.c.agent_id == bindparam("agent"))
               .order_by(_legs.c.id.desc()).limit(1).scalar_subquery())
_WRAPUP = update(_legs).where(_legs.c.id == _NEWEST_LEG)

#: SQLite and server messages that mean "try again later", not "this write is wrong".
_TRANSIENT_TEXT = ("database is locked", "database table is locked", "database is busy",
                   "database or disk is full", "disk i/o error", "unable to open database",
                   "connection", "server closed", "terminating", "timeout")


#: PostgreSQL's SQLSTATEs (classes by their first two characters) that pass by themselves:
#: the connection (08), too many connections or a full disk (53), the server shutting down
#: or starting up (57P01-57P03), a serialization failure or deadlock (40001, 40P01), a lock
#: not free (55P03).
_TRANSIENT_SQLSTATE = ("08", "53", "57P01", "57P02", "57P03", "40001", "40P01", "55P03")


def is_transient(error: BaseException) -> bool:
    """True for store errors that pass by themselves: locked, full, I/O, connection lost."""
    state = getattr(getattr(error, "orig", None), "sqlstate", None) or getattr(
        error, "sqlstate", None)        # asyncpg's own, and SQLAlchemy's wrapping of it
    if isinstance(state, str) and state.startswith(_TRANSIENT_SQLSTATE):
        return True
    if getattr(error, "connection_invalidated", False):
        return True                     # SQLAlchemy: the connection was lost (a server DB)
    if isinstance(error, (sa_exc.TimeoutError, ConnectionError, TimeoutError)):
        return True                     # no pooled connection free in time; a socket cut
    if isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError,
                          sqlite3.OperationalError)):
        text = str(getattr(error, "orig", None) or error).lower()
        return any(t in text for t in _TRANSIENT_TEXT)
    return False


def clip(text: str | None, limit: int = MAX_TEXT) -> str:
    return (text or "")[:limit]


def call_id(conn: Connection, uniqueid: str) -> int:
    """The call's row id; LookupError if it has none."""
    found = conn.execute(_CALL_ID, {"uid": uniqueid}).scalar()
    if found is None:
        raise LookupError(f"no call record for uniqueid {uniqueid!r}")
    return found


def _event(conn: Connection, cid: int, kind: str, at: datetime, detail: dict[str, Any]) -> None:
    conn.execute(_ADD_EVENT, {"call_id": cid, "at": at, "kind": kind, "detail": detail})


def _report_again(conn: Connection, cid: int) -> None:
    """The call's report facts are to be made (again): see acd.reports.indexer."""
    conn.execute(_REPORT_DIRTY, {"call_id": cid})


# --- the writes (the Store's methods of the same names) ------------------------------------

def call_arrived(conn: Connection, *, uniqueid: str, channel: str, caller_number: str,
                 caller_name: str, did: str, at: datetime, linkedid: str | None = None) -> int:
    """Record a new call; a second arrival of the same uniqueid (an IVR retry) keeps the first."""
    found = conn.execute(_CALL_ID, {"uid": uniqueid}).scalar()
    if found is not None:
        return found
    cid = conn.execute(_ADD_CALL, {
        "uniqueid": uniqueid, "linkedid": linkedid, "channel": clip(channel, 255),
        "caller_number": clip(caller_number), "caller_name": clip(caller_name),
        "did": clip(did, 64), "arrived_at": at}).inserted_primary_key[0]
    _event(conn, cid, "arrived", at, {"did": clip(did, 64)})
    return cid


def _add_for_call(conn: Connection, statement: Any, uniqueid: str,
                  values: dict[str, Any]) -> None:
    if conn.execute(statement, {"uid": uniqueid, **values}).rowcount == 0:
        raise LookupError(f"no call record for uniqueid {uniqueid!r}")


def key_pressed(conn: Connection, uniqueid: str, *, node: str, keys: str,
                at: datetime) -> None:
    """One entry of the key trail, numbered after the call's others (``seq`` from 0)."""
    _add_for_call(conn, _KEY_FOR_CALL, uniqueid, {"node": clip(node, 64), "keys": clip(keys),
                                                  "at": at})


def call_event(conn: Connection, uniqueid: str, kind: str, *, at: datetime,
               detail: dict[str, Any] | None = None) -> None:
    _add_for_call(conn, _EVENT_FOR_CALL, uniqueid, {"at": at, "kind": kind,
                                                    "detail": detail or {}})


def call_ended(conn: Connection, uniqueid: str, *, reason: str, at: datetime) -> bool:
    """Set the call's one end reason. False (and nothing changed) if it had one already."""
    cid = call_id(conn, uniqueid)
    if conn.execute(_END, {"cid": cid, "end_reason": reason, "ended_at": at}).rowcount == 0:
        return False
    _event(conn, cid, "ended", at, {"reason": reason})
    _report_again(conn, cid)
    return True


def call_update(conn: Connection, uniqueid: str, *, skill_group: str | None = None,
                answered_at: datetime | None = None) -> None:
    """Set the call's skill group (its latest queue) and its first answer time."""
    cid = call_id(conn, uniqueid)
    if skill_group is not None:
        conn.execute(_CALL_BY_ID, {"cid": cid, "skill_group": clip(skill_group, 64)})
    if answered_at is not None:
        conn.execute(_ANSWERED, {"cid": cid, "answered_at": answered_at})


def agent_state(conn: Connection, agent_id: str, state: str, *, reason: str, at: datetime,
                previous: str | None = None, call_uniqueid: str | None = None) -> None:
    conn.execute(_ADD_STATE, {"agent_id": agent_id, "state": state, "reason": clip(reason),
                              "at": at, "previous": previous, "call_uniqueid": call_uniqueid})


def agent_pending(conn: Connection, agent_id: str, state: str | None, *, reason: str,
                  at: datetime) -> None:
    """The state the agent asked for during a call (None: no pending state any more)."""
    conn.execute(_ADD_PENDING, {"agent_id": agent_id, "state": state, "reason": clip(reason),
                                "at": at})


def outbound_call(conn: Connection, *, uniqueid: str, agent_id: str, number: str,
                  at: datetime) -> int:
    """Record an agent's outbound call (``number`` is the customer's)."""
    found = conn.execute(_CALL_ID, {"uid": uniqueid}).scalar()
    if found is not None:
        return found
    cid = conn.execute(_ADD_CALL, {
        "uniqueid": uniqueid, "linkedid": None, "channel": "", "caller_number": clip(number),
        "caller_name": "", "did": "", "arrived_at": at,
        "direction": "outbound"}).inserted_primary_key[0]
    _event(conn, cid, "outbound", at, {"agent": agent_id, "number": clip(number, 64)})
    return cid


def call_rating(conn: Connection, uniqueid: str, rating: int, *, at: datetime) -> None:
    """The caller's satisfaction rating (1-5); a second rating replaces the first."""
    if not 1 <= int(rating) <= 5:
        raise ValueError(f"a rating is 1 to 5, not {rating!r}")
    cid = call_id(conn, uniqueid)
    conn.execute(_CALL_BY_ID, {"cid": cid, "rating": int(rating), "rated_at": at})
    _event(conn, cid, "rated", at, {"rating": int(rating)})
    _report_again(conn, cid)


def call_leg(conn: Connection, uniqueid: str, *, agent_id: str, role: str,
             started_at: datetime, ended_at: datetime, talk: float, hold: float,
             reason: str) -> None:
    """An agent's part of a call is over: talk and hold seconds."""
    _add_for_call(conn, _LEG_FOR_CALL, uniqueid, {
        "agent_id": clip(agent_id, 40), "role": clip(role, 16), "started_at": started_at,
        "ended_at": ended_at, "talk_seconds": float(talk), "hold_seconds": float(hold),
        "reason": clip(reason, 32)})


def call_leg_wrapup(conn: Connection, uniqueid: str, agent_id: str, seconds: float) -> None:
    """The agent's wrap-up after their (newest) leg of the call."""
    cid = call_id(conn, uniqueid)
    conn.execute(_WRAPUP, {"cid": cid, "agent": agent_id, "wrapup_seconds": float(seconds)})
    _report_again(conn, cid)


def set_verification(conn: Connection, uniqueid: str, *, result: str, method: str | None,
                     at: datetime, detail: dict[str, Any] | None = None) -> None:
    """The IVR's identity check: verified, failed or skipped, and how. A later check of the
    same call replaces it."""
    cid = call_id(conn, uniqueid)
    conn.execute(_CALL_BY_ID, {"cid": cid, "verification": clip(result, 16),
                               "verification_method": clip(method, 32) if method else None})
    _event(conn, cid, "verification", at,
           {"result": result, "method": method, **(detail or {})})


def _recording(conn: Connection, name: str) -> Any:
    row = conn.execute(select(_recordings.c.id, _recordings.c.call_id, _recordings.c.paused,
                              _recordings.c.agent_id)
                       .where(_recordings.c.name == name)).first()
    if row is None:
        raise LookupError(f"no recording named {name!r}")
    return row


def recording_started(conn: Connection, uniqueid: str, *, agent_id: str, name: str,
                      at: datetime) -> None:
    """An agent's part of the call is being recorded (file ``name``); on the timeline."""
    cid = call_id(conn, uniqueid)
    conn.execute(insert(_recordings), {"call_id": cid, "agent_id": clip(agent_id, 40),
                                       "name": clip(name, 160), "status": "recording",
                                       "started_at": at, "paused": []})
    _event(conn, cid, "recording_started", at, {"agent": agent_id, "recording": name})


def recording_paused(conn: Connection, name: str, *, paused: bool, at: datetime,
                     offset: float) -> None:
    """Paused (card numbers) or resumed, ``offset`` seconds into the recording: the spans
    are kept with the recording and the call's timeline."""
    row = _recording(conn, name)
    spans = [list(x) for x in (row.paused or [])]
    if paused and not (spans and spans[-1][1] is None):
        spans.append([round(offset, 3), None])
    elif not paused and spans and spans[-1][1] is None:
        spans[-1][1] = round(offset, 3)
    conn.execute(update(_recordings).where(_recordings.c.id == row.id), {"paused": spans})
    _event(conn, row.call_id, "recording_paused" if paused else "recording_resumed", at,
           {"agent": row.agent_id, "recording": name, "offset": round(offset, 3)})


def recording_finished(conn: Connection, name: str, *, status: str, at: datetime,
                       path: str | None = None, seconds: float | None = None,
                       size: int | None = None, sha256: str | None = None,
                       error: str | None = None) -> None:
    """Asterisk is done with the file: ``done`` (path, length, size, checksum) or
    ``failed`` (why). An open pause ends with the recording."""
    row = _recording(conn, name)
    spans = [list(x) for x in (row.paused or [])]
    if spans and spans[-1][1] is None and seconds is not None:
        spans[-1][1] = round(seconds, 3)
    conn.execute(update(_recordings).where(_recordings.c.id == row.id), {
        "status": status, "ended_at": at, "path": path, "seconds": seconds, "bytes": size,
        "sha256": sha256, "error": clip(error, 200) if error else None, "paused": spans})
    detail: dict[str, Any] = {"agent": row.agent_id, "recording": name, "status": status}
    if error:
        detail["error"] = clip(error, 200)
    _event(conn, row.call_id, "recording_" + ("ended" if status == "done" else status), at,
           detail)


#: The writes by name: what :func:`write_batch` runs and the writer may batch.
WRITES: dict[str, Callable[..., Any]] = {f.__name__: f for f in (
    call_arrived, key_pressed, call_event, call_ended, call_update, agent_state,
    agent_pending, outbound_call, call_rating, call_leg, call_leg_wrapup, set_verification,
    recording_started, recording_paused, recording_finished)}


class _Bad(Exception):
    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(index)
        self.index, self.error = index, error


#: One write's outcome in a batch: (None, its value) or (the error, None).
Outcome = tuple[BaseException | None, Any]


def write_batch(conn: Connection, items: Sequence[tuple[str, tuple, dict]]) -> list[Outcome]:
    """Run the writes ``(name, args, kwargs)`` in order in ONE transaction and commit it.

    A transient error (:func:`is_transient`) rolls everything back and is raised: nothing of
    the batch is written, the caller tries it again. Any other error of a write rolls back,
    and the writes before it are run again and committed without it; the outcomes returned
    are then those of the writes up to the bad one (its error), fewer than ``items``: the
    rest is for the caller's next batch. So one call commits at most once, and what it
    returns is exactly what is settled."""
    limit, bad = len(items), None
    while True:
        if limit == 0:
            return [(bad, None)]            # the first one is bad: nothing to commit
        try:
            with conn.begin():
                out: list[Outcome] = []
                for i in range(limit):
                    name, args, kwargs = items[i]
                    try:
                        out.append((None, WRITES[name](conn, *args, **kwargs)))
                    except Exception as e:  # noqa: BLE001 - transient: raised; else skipped
                        if is_transient(e):
                            raise
                        raise _Bad(i, e) from e
        except _Bad as b:
            limit, bad = b.index, b.error      # again, up to the bad one (none if it is first)
            continue
        return out if bad is None else [*out, (bad, None)]


__all__ = ["WRITES", "write_batch", "is_transient", "call_id", "clip", "MAX_TEXT", "Outcome"]
