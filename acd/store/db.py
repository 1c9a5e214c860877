"""The store adapter: call records, key trails and timelines in SQL (SQLite by default).

One URL picks the database (``sqlite+aiosqlite:///...`` or ``postgresql+asyncpg://...``); the code
is the same for both. The schema is Alembic's: ``migrate()`` brings a database to the newest
revision and is run at start-up.
"""
from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import (Connection, Engine, create_engine, event, func, make_url, or_, select,
                        tuple_)
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import selectinload

from acd.errors import UserError
from acd.reports.indexer import fill_agent_hours, index_agent_time, index_calls
from acd.store import writes
from acd.admin_config import Row as EntryRow
from acd.memberships import Row as MemberRow
from acd.store.models import (AdminEntry, AgentPending, AgentStateChange, Call, CallEvent, CallLeg,
                              GroupMember, Recording)
from acd.store.writes import Outcome

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: SQLite's busy timeout: how long one statement waits for another process's write lock
#: before "database is locked". aiosqlite runs each connection on its own thread, and the
#: writes run on the store's writes thread, so the wait holds that thread, never the event
#: loop; in WAL mode reads do not wait at all. A write made directly rides over a lock this
#: long; the runtime's and the IVR's writes go through :class:`acd.store.writer.StoreWriter`,
#: which retries after it, in order.
BUSY_TIMEOUT_MS = 5000


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite database URL; None for other databases and in-memory ones."""
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[-1]
    return Path(path) if path and path != ":memory:" else None


def migrate(url: str) -> None:
    """Upgrade the database to the newest schema. Blocking: call it outside the event loop."""
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        command.upgrade(alembic_config(url), "heads")
    except Exception as e:  # noqa: BLE001 - a database that is not there: said plainly
        plain = _unreachable(url, e)
        if plain is None:
            raise
        raise plain from e
    if path is not None:
        # WAL from the start (it stays with the file): readers never wait for a writer,
        # so another process's write lock holds back writes only, never reads.
        with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)) as con:
            con.execute("PRAGMA journal_mode=WAL")


def _unreachable(url: str, error: BaseException) -> UserError | None:
    """A database server the start cannot reach or log in to, or its driver missing, as an
    error for a person (None: anything else, a bug stays a bug). No password in it."""
    where = make_url(url).render_as_string(hide_password=True)
    if isinstance(error, ModuleNotFoundError) and error.name == "asyncpg":
        return UserError("store.driver_missing", f"{where} needs asyncpg, the postgresql "
                                                 "extra: pip install -e '.[postgresql]'")
    state = getattr(getattr(error, "orig", None), "sqlstate", None) or getattr(
        error, "sqlstate", None)
    if isinstance(error, OSError) or (isinstance(state, str) and state.startswith(
            ("08", "28", "3D", "57P03"))):   # connection, login, no such database, starting
        return UserError("store.unreachable", f"cannot reach the database {where}: {error}")
    return None


async def migrate_async(url: str) -> None:
    await asyncio.to_thread(migrate, url)


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
    """Every SQLite connection of the store (the async engine's and the writes' own)."""
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")   # first: bounds the rest
    cur.execute("PRAGMA journal_mode=WAL")
    # NORMAL, the usual setting with WAL: a commit is durable against a crash of our
    # process (it is in the WAL file, which SQLite reads back), and the WAL is synced to
    # disk at each checkpoint rather than at each commit. A power cut or an OS crash may
    # lose the last commits; the database stays consistent. FULL costs one fsync per
    # commit on the writes' thread, which a busy center's records do not need.
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _write_engine(url: str) -> Engine | None:
    """A synchronous engine on the same SQLite file, for the writes (None: not a file)."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or u.database in (None, "", ":memory:"):
        return None
    engine = create_engine(u.set(drivername="sqlite+pysqlite"))
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _writes_thread() -> ThreadPoolExecutor:
    """The writes' one thread (started at the first write)."""
    return ThreadPoolExecutor(1, thread_name_prefix="store-writes")


def _in_transaction(conn: Connection, fn: Callable[..., Any], args: tuple,
                    kwargs: dict[str, Any]) -> Any:
    with conn.begin():
        return fn(conn, *args, **kwargs)


def _utc(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.isoformat()


class Store:
    """Reads go through the async engine (``engine``, ``session``). Writes are SQLAlchemy
    Core statements (:mod:`acd.store.writes`) on a synchronous connection: on a SQLite file,
    a plain ``sqlite3`` connection of ``write_engine`` on one thread of our own, so a batch of
    writes is one hop to that thread and back (no hop per statement, as aiosqlite makes);
    on other databases, a connection of ``engine`` through ``run_sync``."""

    #: The writes :meth:`write_batch` runs (by method name).
    BATCHED = frozenset(writes.WRITES)

    def __init__(self, url: str) -> None:
        self.url = url
        # A database server may restart under us: each checkout pings the pooled connection
        # first (one round trip), so a read after a quiet restart does not fail on a dead one.
        self.engine: AsyncEngine = create_async_engine(
            url, pool_pre_ping=not url.startswith("sqlite"))
        if url.startswith("sqlite"):
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.session = async_sessionmaker(self.engine, expire_on_commit=False)
        own = _write_engine(url)
        self.write_engine: Engine = own or self.engine.sync_engine
        self._thread = _writes_thread() if own is not None else None
        self._conn: Connection | None = None     # the writes' connection, kept (their thread)
        #: called before every write (acd.leader: a leader past its lease ends here)
        self.guard: Callable[[], None] | None = None

    async def close(self) -> None:
        """Close the connections and end the writes' thread (a later write starts another)."""
        if self._thread is not None:
            thread, self._thread = self._thread, _writes_thread()
            await asyncio.get_running_loop().run_in_executor(thread, self._close_in_thread)
            thread.shutdown()
        await self.engine.dispose()

    async def _on_write_connection(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(connection, *args)`` on a connection for writes, not in a transaction."""
        if self.guard is not None:
            self.guard()
        if self._thread is None:
            async with self.engine.connect() as conn:
                return await conn.run_sync(fn, *args)
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, self._in_thread, fn, args)

    def _in_thread(self, fn: Callable[..., Any], args: tuple) -> Any:
        """On the writes' thread: one connection, kept from write to write (no checkout
        each time); after any error it is closed and the next write opens another."""
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated:
            conn = self._conn = self.write_engine.connect()
        try:
            return fn(conn, *args)
        except BaseException:
            self._conn = None
            conn.close()
            raise

    def _close_in_thread(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self.write_engine.dispose()

    async def _write(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return await self._on_write_connection(_in_transaction, fn, args, kwargs)

    async def write_batch(self, items: Sequence[tuple[str, tuple, dict]]) -> list[Outcome]:
        """Many writes ``(method name, args, kwargs)`` in one transaction, in order: see
        :func:`acd.store.writes.write_batch` (a transient error raises and writes nothing;
        another error settles the writes up to the bad one, which is returned with it)."""
        return await self._on_write_connection(writes.write_batch, items)

    # --- writes ----------------------------------------------------------------------------
    # Each is its Core twin in acd/store/writes.py, in a transaction of its own. The runtime's
    # and the IVR's writes come through StoreWriter instead, many to a transaction
    # (write_batch); these serve the other callers (the web pages, tests, tools).

    async def call_arrived(self, *, uniqueid: str, channel: str, caller_number: str,
                           caller_name: str, did: str, at: datetime,
                           linkedid: str | None = None) -> int:
        """Record a new call; a second arrival of the same uniqueid (an IVR retry) keeps the first."""
        return await self._write(writes.call_arrived, uniqueid=uniqueid, channel=channel,
                                 caller_number=caller_number, caller_name=caller_name, did=did,
                                 at=at, linkedid=linkedid)

    async def key_pressed(self, uniqueid: str, *, node: str, keys: str, at: datetime) -> None:
        await self._write(writes.key_pressed, uniqueid, node=node, keys=keys, at=at)

    async def call_event(self, uniqueid: str, kind: str, *, at: datetime,
                         detail: dict[str, Any] | None = None) -> None:
        await self._write(writes.call_event, uniqueid, kind, at=at, detail=detail)

    async def call_ended(self, uniqueid: str, *, reason: str, at: datetime) -> bool:
        """Set the call's one end reason. False (and nothing changed) if it had one already."""
        return await self._write(writes.call_ended, uniqueid, reason=reason, at=at)

    async def call_update(self, uniqueid: str, *, skill_group: str | None = None,
                          answered_at: datetime | None = None) -> None:
        """Set the call's skill group (its latest queue) and its first answer time."""
        await self._write(writes.call_update, uniqueid, skill_group=skill_group,
                          answered_at=answered_at)

    async def agent_state(self, agent_id: str, state: str, *, reason: str, at: datetime,
                          previous: str | None = None, call_uniqueid: str | None = None) -> None:
        await self._write(writes.agent_state, agent_id, state, reason=reason, at=at,
                          previous=previous, call_uniqueid=call_uniqueid)

    async def agent_pending(self, agent_id: str, state: str | None, *, reason: str,
                            at: datetime) -> None:
        """The state the agent asked for during a call (None: no pending state any more)."""
        await self._write(writes.agent_pending, agent_id, state, reason=reason, at=at)

    # --- call control: legs, ratings, outbound calls (migration 0003) -------------------

    async def outbound_call(self, *, uniqueid: str, agent_id: str, number: str,
                            at: datetime) -> int:
        """Record an agent's outbound call (``number`` is the customer's)."""
        return await self._write(writes.outbound_call, uniqueid=uniqueid, agent_id=agent_id,
                                 number=number, at=at)

    async def call_rating(self, uniqueid: str, rating: int, *, at: datetime) -> None:
        """The caller's satisfaction rating (1-5); a second rating replaces the first."""
        await self._write(writes.call_rating, uniqueid, rating, at=at)

    async def call_leg(self, uniqueid: str, *, agent_id: str, role: str, started_at: datetime,
                       ended_at: datetime, talk: float, hold: float, reason: str) -> None:
        """An agent's part of a call is over: talk and hold seconds."""
        await self._write(writes.call_leg, uniqueid, agent_id=agent_id, role=role,
                          started_at=started_at, ended_at=ended_at, talk=talk, hold=hold,
                          reason=reason)

    async def call_leg_wrapup(self, uniqueid: str, agent_id: str, seconds: float) -> None:
        """The agent's wrap-up after their (newest) leg of the call."""
        await self._write(writes.call_leg_wrapup, uniqueid, agent_id, seconds)

    async def recording_started(self, uniqueid: str, *, agent_id: str, name: str,
                                at: datetime) -> None:
        await self._write(writes.recording_started, uniqueid, agent_id=agent_id, name=name,
                          at=at)

    async def recording_paused(self, name: str, *, paused: bool, at: datetime,
                               offset: float) -> None:
        await self._write(writes.recording_paused, name, paused=paused, at=at, offset=offset)

    async def recording_finished(self, name: str, *, status: str, at: datetime,
                                 path: str | None = None, seconds: float | None = None,
                                 size: int | None = None, sha256: str | None = None,
                                 error: str | None = None) -> None:
        await self._write(writes.recording_finished, name, status=status, at=at, path=path,
                          seconds=seconds, size=size, sha256=sha256, error=error)

    async def recordings(self, uniqueid: str | None = None, *, status: str | None = None,
                         before: datetime | None = None,
                         limit: int = 1000) -> list[dict[str, Any]]:
        """Recordings of one call (or of all), oldest first; ``status`` and ``before`` (the
        start) narrow them down."""
        async with self.session() as s:
            q = select(Recording, Call.uniqueid).join(Call, Recording.call_id == Call.id)
            if uniqueid is not None:
                q = q.where(Call.uniqueid == uniqueid)
            if status is not None:
                q = q.where(Recording.status == status)
            if before is not None:
                q = q.where(Recording.started_at < before)
            rows = (await s.execute(q.order_by(Recording.id).limit(limit))).all()
            return [_recording_dict(r, uid) for r, uid in rows]

    async def recording(self, recording_id: int) -> dict[str, Any] | None:
        async with self.session() as s:
            row = (await s.execute(select(Recording, Call.uniqueid)
                                   .join(Call, Recording.call_id == Call.id)
                                   .where(Recording.id == recording_id))).first()
            return _recording_dict(*row) if row is not None else None

    async def recording_deleted(self, recording_id: int, *, at: datetime, by: str) -> None:
        """The file is gone (deleted by an admin, or by the retention): the row stays, as
        ``deleted``, with its call's timeline saying who and when."""
        async with self.session() as s, s.begin():
            r = await s.get(Recording, recording_id)
            if r is None:
                return
            r.status, r.error = "deleted", f"deleted by {by}"[:200]
            s.add(CallEvent(call_id=r.call_id, at=at, kind="recording_deleted",
                            detail={"recording": r.name, "by": by}))

    async def call_legs(self, uniqueid: str) -> list[dict[str, Any]]:
        """Every agent's part of the call, in order."""
        async with self.session() as s:
            call = await s.scalar(select(Call).where(Call.uniqueid == uniqueid))
            if call is None:
                return []
            rows = await s.scalars(select(CallLeg).where(CallLeg.call_id == call.id)
                                   .order_by(CallLeg.id))
            return [_leg_dict(r) for r in rows]

    async def agent_totals(self, since: datetime | None = None) -> dict[str, dict[str, Any]]:
        """Per agent, their own parts of calls (a transferred call credits each agent with
        theirs): calls, talk, hold and wrap-up seconds."""
        async with self.session() as s:
            q = select(CallLeg.agent_id, func.count(CallLeg.id), func.sum(CallLeg.talk_seconds),
                       func.sum(CallLeg.hold_seconds),
                       func.sum(func.coalesce(CallLeg.wrapup_seconds, 0.0)))
            if since is not None:
                q = q.where(CallLeg.ended_at >= since)
            rows = (await s.execute(q.group_by(CallLeg.agent_id))).all()
        return {r[0]: {"legs": r[1], "talk_seconds": round(r[2] or 0.0, 3),
                       "hold_seconds": round(r[3] or 0.0, 3),
                       "wrapup_seconds": round(r[4] or 0.0, 3)} for r in rows}

    async def index_reports(self, sl_seconds: Mapping[str, float], *,
                            max_batches: int = 50) -> dict[str, int]:
        """Bring the report facts up to date (acd.reports.indexer), a batch per transaction
        on the write connection; at most ``max_batches`` of each kind in one go (and four
        days of agent hours, for a database from before migration 0012). Returns how many
        entries were taken and whether more remain."""
        calls = states = 0
        more = False
        for _ in range(max_batches):
            n = await self._on_write_connection(index_calls, sl_seconds)
            calls += n
            if n == 0:
                break
        else:
            more = True
        for _ in range(max_batches):
            n = await self._on_write_connection(index_agent_time)
            states += n
            if n == 0:
                break
        else:
            more = True
        hours = 0
        # a database from before migration 0012: four days at a time, so that a report asked
        # meanwhile (which reads the quarter hours) does not wait for many
        for _ in range(min(max_batches, 4)):
            n = await self._on_write_connection(fill_agent_hours)
            hours += n
            if n == 0:
                break
        else:
            more = True
        return {"calls": calls, "states": states, "hours": hours, "more": int(more)}

    # --- skill-group memberships (acd.memberships) -----------------------------------------

    async def member_rows(self) -> list[MemberRow]:
        async with self.session() as s:
            return [MemberRow(r.skill_group, r.agent_id, r.level, r.seeded)
                    for r in await s.scalars(select(GroupMember).order_by(GroupMember.id))]

    async def write_members(self, upserts: Sequence[Any], deletes: Sequence[tuple[str, str]],
                            *, at: datetime, by: str) -> None:
        """Insert or replace the rows ``upserts`` (acd.memberships.Row), delete ``deletes``,
        in one transaction."""
        await self._write(_write_members, list(upserts), list(deletes), at, by)

    async def entry_rows(self) -> list[EntryRow]:
        """The agents, groups and users in force (acd.admin_config), oldest first."""
        async with self.session() as s:
            return [EntryRow(r.kind, r.key, _json_or_none(r.doc), _json_or_none(r.seeded))
                    for r in await s.scalars(select(AdminEntry).order_by(AdminEntry.id))]

    async def write_entries(self, upserts: Sequence[Any], deletes: Sequence[tuple[str, str]],
                            *, at: datetime, by: str) -> None:
        """Insert or replace the rows ``upserts`` (acd.admin_config.Row), delete ``deletes``,
        in one transaction (a replaced row keeps its place in the order)."""
        await self._write(_write_entries, list(upserts), list(deletes), at, by)

    # --- reads -----------------------------------------------------------------------------

    async def get_call(self, uniqueid: str) -> dict[str, Any] | None:
        async with self.session() as s:
            call = await s.scalar(select(Call).where(Call.uniqueid == uniqueid)
                                  .options(selectinload(Call.key_trail), selectinload(Call.events)))
            if call is None:
                return None
            out = _call_dict(call)
            legs = await s.scalars(select(CallLeg).where(CallLeg.call_id == call.id)
                                   .order_by(CallLeg.id))
            out["legs"] = [_leg_dict(r) for r in legs]
            return out

    async def calls_between(self, since: datetime, until: datetime,
                            limit: int) -> list[dict[str, Any]]:
        """The calls that arrived in [since, until), oldest first, with timeline and legs
        (at most ``limit``)."""
        async with self.session() as s:
            calls = list(await s.scalars(
                select(Call).where(Call.arrived_at >= since, Call.arrived_at < until)
                .order_by(Call.id).limit(limit).options(selectinload(Call.key_trail),
                                                        selectinload(Call.events))))
            legs: dict[int, list[dict[str, Any]]] = {}
            for i in range(0, len(calls), 500):
                ids = [c.id for c in calls[i:i + 500]]
                for r in await s.scalars(select(CallLeg).where(CallLeg.call_id.in_(ids))
                                         .order_by(CallLeg.id)):
                    legs.setdefault(r.call_id, []).append(_leg_dict(r))
            return [{**_call_dict(c), "legs": legs.get(c.id, [])} for c in calls]

    async def agent_state_rows(self, since: datetime, until: datetime,
                               limit: int) -> list[dict[str, Any]]:
        """Every agent's state changes in [since, until), in order (at most ``limit``)."""
        async with self.session() as s:
            rows = await s.scalars(select(AgentStateChange)
                                   .where(AgentStateChange.at >= since, AgentStateChange.at < until)
                                   .order_by(AgentStateChange.id).limit(limit))
            return [{"agent_id": r.agent_id, "state": r.state, "reason": r.reason,
                     "at": _utc(r.at), "previous": r.previous} for r in rows]

    async def recent_calls(self, limit: int = 20) -> list[dict[str, Any]]:
        async with self.session() as s:
            rows = await s.scalars(select(Call).order_by(Call.id.desc()).limit(limit)
                                   .options(selectinload(Call.key_trail), selectinload(Call.events)))
            return [_call_dict(c) for c in rows]

    async def latest_agent_states(self) -> dict[str, dict[str, Any]]:
        """Each agent's newest state row: where a restarted server takes them up again."""
        async with self.session() as s:
            newest = (select(AgentStateChange.agent_id, func.max(AgentStateChange.id).label("id"))
                      .group_by(AgentStateChange.agent_id).subquery())
            rows = await s.scalars(select(AgentStateChange)
                                   .join(newest, AgentStateChange.id == newest.c.id))
            return {r.agent_id: {"state": r.state, "reason": r.reason, "at": _aware(r.at),
                                 "previous": r.previous, "call_uniqueid": r.call_uniqueid}
                    for r in rows}

    async def latest_agent_pending(self) -> dict[str, dict[str, Any]]:
        """Each agent's newest pending-state row (``state`` None: nothing pending)."""
        async with self.session() as s:
            newest = (select(AgentPending.agent_id, func.max(AgentPending.id).label("id"))
                      .group_by(AgentPending.agent_id).subquery())
            rows = await s.scalars(select(AgentPending).join(newest, AgentPending.id == newest.c.id))
            return {r.agent_id: {"state": r.state, "reason": r.reason, "at": _aware(r.at)}
                    for r in rows}

    async def answered_since_login(self) -> dict[str, int]:
        """Per agent, the calls answered (``talking`` rows) since their last login or logout:
        one query for every agent, so a restart does not read each agent's history."""
        row = AgentStateChange
        async with self.session() as s:
            reset = (select(row.agent_id, func.max(row.id).label("since"))
                     .where(or_(row.previous == "offline", row.state == "offline"))
                     .group_by(row.agent_id).subquery())
            q = (select(row.agent_id, func.count())
                 .outerjoin(reset, reset.c.agent_id == row.agent_id)
                 .where(row.state == "talking", row.id > func.coalesce(reset.c.since, 0))
                 .group_by(row.agent_id))
            return {agent: n for agent, n in (await s.execute(q)).all()}

    async def agent_states(self, agent_id: str, since: datetime | None = None) -> list[dict[str, Any]]:
        """An agent's state rows, oldest first."""
        async with self.session() as s:
            q = select(AgentStateChange).where(AgentStateChange.agent_id == agent_id)
            if since is not None:
                q = q.where(AgentStateChange.at >= since)
            rows = await s.scalars(q.order_by(AgentStateChange.id))
            return [{"state": r.state, "reason": r.reason, "at": _aware(r.at),
                     "previous": r.previous, "call_uniqueid": r.call_uniqueid} for r in rows]

    async def open_calls(self) -> list[dict[str, Any]]:
        """Calls without an end reason, with their key trail and timeline, oldest first."""
        async with self.session() as s:
            rows = await s.scalars(select(Call).where(Call.end_reason.is_(None)).order_by(Call.id)
                                   .options(selectinload(Call.key_trail), selectinload(Call.events)))
            return [_call_dict(c) for c in rows]

    # --- IVR flows: identity verification and its report --------------------------------

    async def set_verification(self, uniqueid: str, *, result: str, method: str | None,
                               at: datetime, detail: dict[str, Any] | None = None) -> None:
        """The IVR's identity check: verified, failed or skipped, and how (caller_number, or
        the kind of number keyed in). A later check of the same call replaces it."""
        await self._write(writes.set_verification, uniqueid, result=result, method=method,
                          at=at, detail=detail)

    async def verification_report(self, since: datetime | None = None,
                                  until: datetime | None = None) -> dict[str, Any]:
        """Calls that arrived in [since, until): how many went through an identity check,
        the share verified, and the average handle time (answer to end) of answered calls,
        verified against not verified."""
        async with self.session() as s:
            q = select(Call.verification, Call.verification_method, Call.answered_at, Call.ended_at)
            if since is not None:
                q = q.where(Call.arrived_at >= since)
            if until is not None:
                q = q.where(Call.arrived_at < until)
            rows = (await s.execute(q)).all()
        calls = len(rows)
        checked = [r for r in rows if r.verification]
        verified = [r for r in rows if r.verification == "verified"]
        methods: dict[str, int] = {}
        for r in verified:
            methods[r.verification_method or "unknown"] = methods.get(r.verification_method or "unknown", 0) + 1

        def handle(group: list[Any]) -> dict[str, Any]:
            times = [(_aware(r.ended_at) - _aware(r.answered_at)).total_seconds()
                     for r in group if r.answered_at is not None and r.ended_at is not None]
            return {"answered": len(times),
                    "average_handle_seconds": round(sum(times) / len(times), 1) if times else None}

        hv, hu = handle(verified), handle([r for r in rows if r.verification != "verified"])
        diff = (round(hu["average_handle_seconds"] - hv["average_handle_seconds"], 1)
                if hv["average_handle_seconds"] is not None and hu["average_handle_seconds"] is not None
                else None)
        return {"since": _utc(since), "until": _utc(until), "calls": calls,
                "checked": len(checked), "verified": len(verified),
                "failed": sum(1 for r in rows if r.verification == "failed"),
                "skipped": sum(1 for r in rows if r.verification == "skipped"),
                "verified_share": round(len(verified) / calls, 4) if calls else None,
                "verified_by_method": methods,
                "handle_time": {"verified": hv, "not_verified": hu,
                                "verified_shorter_by_seconds": diff}}


def _write_members(conn: Connection, upserts: list[Any], deletes: list[tuple[str, str]],
                   at: datetime, by: str) -> None:
    t = GroupMember.__table__
    keys = deletes + [(r.group, r.agent) for r in upserts]
    for i in range(0, len(keys), 400):          # one statement however many agents
        conn.execute(t.delete().where(tuple_(t.c.skill_group, t.c.agent_id).in_(keys[i:i + 400])))
    if upserts:
        conn.execute(t.insert(), [{"skill_group": r.group, "agent_id": r.agent, "level": r.level,
                                   "seeded": r.seeded, "updated_at": at, "updated_by": by[:40]}
                                  for r in upserts])


def _write_entries(conn: Connection, upserts: list[Any], deletes: list[tuple[str, str]],
                   at: datetime, by: str) -> None:
    t = AdminEntry.__table__
    for kind, key in deletes:
        conn.execute(t.delete().where(t.c.kind == kind, t.c.key == key))
    have = {(k, v) for k, v in conn.execute(select(t.c.kind, t.c.key))} if upserts else set()
    new = []
    for r in upserts:
        values = {"doc": _json_text(r.doc), "seeded": _json_text(r.seeded), "updated_at": at,
                  "updated_by": by[:40]}
        if (r.kind, r.key) in have:
            conn.execute(t.update().where(t.c.kind == r.kind, t.c.key == r.key).values(**values))
        else:
            new.append({"kind": r.kind, "key": r.key, **values})
    if new:                                     # a first start: one statement for them all
        conn.execute(t.insert(), new)


def _json_text(doc: Any) -> str | None:
    return None if doc is None else json.dumps(doc, sort_keys=True, ensure_ascii=False)


def _json_or_none(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _aware(dt: datetime) -> datetime:
    """SQLite gives naive datetimes back: they are UTC."""
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def _call_dict(c: Call) -> dict[str, Any]:
    return {
        "uniqueid": c.uniqueid, "linkedid": c.linkedid, "channel": c.channel,
        "caller_number": c.caller_number, "caller_name": c.caller_name, "did": c.did,
        "skill_group": c.skill_group, "verification": c.verification,
        "verification_method": c.verification_method,
        "arrived_at": _utc(c.arrived_at), "answered_at": _utc(c.answered_at),
        "ended_at": _utc(c.ended_at), "end_reason": c.end_reason,
        "direction": c.direction or "inbound", "rating": c.rating, "rated_at": _utc(c.rated_at),
        "key_trail": [{"node": k.node, "keys": k.keys, "at": _utc(k.at)} for k in c.key_trail],
        "events": [{"kind": e.kind, "at": _utc(e.at), "detail": e.detail} for e in c.events],
    }


def _recording_dict(r: Recording, call_uniqueid: str) -> dict[str, Any]:
    return {"id": r.id, "call": call_uniqueid, "agent_id": r.agent_id, "name": r.name,
            "status": r.status, "started_at": _utc(r.started_at), "ended_at": _utc(r.ended_at),
            "path": r.path, "seconds": r.seconds, "bytes": r.bytes, "sha256": r.sha256,
            "error": r.error, "paused": r.paused or []}


def _leg_dict(r: CallLeg) -> dict[str, Any]:
    return {"agent_id": r.agent_id, "role": r.role, "started_at": _utc(r.started_at),
            "ended_at": _utc(r.ended_at), "talk_seconds": r.talk_seconds,
            "hold_seconds": r.hold_seconds, "wrapup_seconds": r.wrapup_seconds,
            "reason": r.reason}
