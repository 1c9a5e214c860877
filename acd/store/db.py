"""The store adapter: call records, key trails and timelines in SQL (SQLite by default).

One URL picks the database (``sqlite+aiosqlite:///...`` or ``postgresql+asyncpg://...``); the code
is the same for both. The schema is Alembic's: ``migrate()`` brings a database to the newest
revision and is run at start-up.
"""
from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import selectinload

from acd.store.models import AgentPending, AgentStateChange, Call, CallEvent, KeyPress
from acd.store.models import CallLeg

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: Caller-controlled text is kept, but only this much of it.
MAX_TEXT = 256
#: SQLite's busy timeout: how long one statement waits for another process's write lock
#: before "database is locked". aiosqlite runs each connection on its own thread, so the wait
#: holds that thread, never the event loop; in WAL mode reads do not wait at all. Writes the
#: IVR makes directly ride over a lock this long; the runtime's writes go through
#: :class:`acd.store.writer.StoreWriter`, which retries after it, in order.
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
    command.upgrade(alembic_config(url), "heads")
    if path is not None:
        # WAL from the start (it stays with the file): readers never wait for a writer,
        # so another process's write lock holds back writes only, never reads.
        with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)) as con:
            con.execute("PRAGMA journal_mode=WAL")


async def migrate_async(url: str) -> None:
    await asyncio.to_thread(migrate, url)


def _clip(text: str | None, limit: int = MAX_TEXT) -> str:
    return (text or "")[:limit]


def _utc(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.isoformat()


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(url)
        if url.startswith("sqlite"):
            @event.listens_for(self.engine.sync_engine, "connect")
            def _pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
                cur = dbapi_conn.cursor()
                cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")   # first: bounds the rest
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.close()
        self.session = async_sessionmaker(self.engine, expire_on_commit=False)

    async def close(self) -> None:
        await self.engine.dispose()

    # --- writes ----------------------------------------------------------------------------

    async def call_arrived(self, *, uniqueid: str, channel: str, caller_number: str,
                           caller_name: str, did: str, at: datetime,
                           linkedid: str | None = None) -> int:
        """Record a new call; a second arrival of the same uniqueid (an IVR retry) keeps the first."""
        async with self.session() as s, s.begin():
            found = await s.scalar(select(Call).where(Call.uniqueid == uniqueid))
            if found:
                return found.id
            call = Call(uniqueid=uniqueid, linkedid=linkedid, channel=_clip(channel, 255),
                        caller_number=_clip(caller_number), caller_name=_clip(caller_name),
                        did=_clip(did, 64), arrived_at=at)
            s.add(call)
            s.add(CallEvent(call=call, at=at, kind="arrived", detail={"did": _clip(did, 64)}))
            await s.flush()
            return call.id

    async def key_pressed(self, uniqueid: str, *, node: str, keys: str, at: datetime) -> None:
        async with self.session() as s, s.begin():
            call = await self._call(s, uniqueid)
            seq = len(call.key_trail)
            s.add(KeyPress(call=call, seq=seq, node=_clip(node, 64), keys=_clip(keys), at=at))

    async def call_event(self, uniqueid: str, kind: str, *, at: datetime,
                         detail: dict[str, Any] | None = None) -> None:
        async with self.session() as s, s.begin():
            call = await self._call(s, uniqueid)
            s.add(CallEvent(call=call, at=at, kind=kind, detail=detail or {}))

    async def call_ended(self, uniqueid: str, *, reason: str, at: datetime) -> bool:
        """Set the call's one end reason. False (and nothing changed) if it had one already."""
        async with self.session() as s, s.begin():
            call = await self._call(s, uniqueid)
            if call.end_reason is not None:
                return False
            call.end_reason = reason
            call.ended_at = at
            s.add(CallEvent(call=call, at=at, kind="ended", detail={"reason": reason}))
            return True

    async def call_update(self, uniqueid: str, *, skill_group: str | None = None,
                          answered_at: datetime | None = None) -> None:
        """Set the call's skill group (its latest queue) and its first answer time."""
        async with self.session() as s, s.begin():
            call = await self._call(s, uniqueid)
            if skill_group is not None:
                call.skill_group = _clip(skill_group, 64)
            if answered_at is not None and call.answered_at is None:
                call.answered_at = answered_at

    async def agent_state(self, agent_id: str, state: str, *, reason: str, at: datetime,
                          previous: str | None = None, call_uniqueid: str | None = None) -> None:
        async with self.session() as s, s.begin():
            s.add(AgentStateChange(agent_id=agent_id, state=state, reason=_clip(reason), at=at,
                                   previous=previous, call_uniqueid=call_uniqueid))

    async def agent_pending(self, agent_id: str, state: str | None, *, reason: str,
                            at: datetime) -> None:
        """The state the agent asked for during a call (None: no pending state any more)."""
        async with self.session() as s, s.begin():
            s.add(AgentPending(agent_id=agent_id, state=state, reason=_clip(reason), at=at))

    # --- call control: legs, ratings, outbound calls (migration 0003) -------------------

    async def outbound_call(self, *, uniqueid: str, agent_id: str, number: str,
                            at: datetime) -> int:
        """Record an agent's outbound call (``number`` is the customer's)."""
        async with self.session() as s, s.begin():
            found = await s.scalar(select(Call).where(Call.uniqueid == uniqueid))
            if found:
                return found.id
            call = Call(uniqueid=uniqueid, channel="", caller_number=_clip(number),
                        caller_name="", did="", arrived_at=at, direction="outbound")
            s.add(call)
            s.add(CallEvent(call=call, at=at, kind="outbound",
                            detail={"agent": agent_id, "number": _clip(number, 64)}))
            await s.flush()
            return call.id

    async def call_rating(self, uniqueid: str, rating: int, *, at: datetime) -> None:
        """The caller's satisfaction rating (1-5); a second rating replaces the first."""
        if not 1 <= int(rating) <= 5:
            raise ValueError(f"a rating is 1 to 5, not {rating!r}")
        async with self.session() as s, s.begin():
            call = await self._call(s, uniqueid)
            call.rating = int(rating)
            call.rated_at = at
            s.add(CallEvent(call=call, at=at, kind="rated", detail={"rating": int(rating)}))

    async def call_leg(self, uniqueid: str, *, agent_id: str, role: str, started_at: datetime,
                       ended_at: datetime, talk: float, hold: float, reason: str) -> None:
        """An agent's part of a call is over: talk and hold seconds."""
        async with self.session() as s, s.begin():
            call = await self._call(s, uniqueid)
            s.add(CallLeg(call_id=call.id, agent_id=_clip(agent_id, 40), role=_clip(role, 16),
                          started_at=started_at, ended_at=ended_at, talk_seconds=float(talk),
                          hold_seconds=float(hold), reason=_clip(reason, 32)))

    async def call_leg_wrapup(self, uniqueid: str, agent_id: str, seconds: float) -> None:
        """The agent's wrap-up after their (newest) leg of the call."""
        async with self.session() as s, s.begin():
            call = await self._call(s, uniqueid)
            leg = await s.scalar(select(CallLeg).where(CallLeg.call_id == call.id,
                                                       CallLeg.agent_id == agent_id)
                                 .order_by(CallLeg.id.desc()).limit(1))
            if leg is not None:
                leg.wrapup_seconds = float(seconds)

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
        async with self.session() as s, s.begin():
            call = await self._call(s, uniqueid)
            call.verification = _clip(result, 16)
            call.verification_method = _clip(method, 32) if method else None
            s.add(CallEvent(call=call, at=at, kind="verification",
                            detail={"result": result, "method": method, **(detail or {})}))

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

    @staticmethod
    async def _call(s, uniqueid: str) -> Call:  # noqa: ANN001
        call = await s.scalar(select(Call).where(Call.uniqueid == uniqueid)
                              .options(selectinload(Call.key_trail)))
        if call is None:
            raise LookupError(f"no call record for uniqueid {uniqueid!r}")
        return call


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


def _leg_dict(r: CallLeg) -> dict[str, Any]:
    return {"agent_id": r.agent_id, "role": r.role, "started_at": _utc(r.started_at),
            "ended_at": _utc(r.ended_at), "talk_seconds": r.talk_seconds,
            "hold_seconds": r.hold_seconds, "wrapup_seconds": r.wrapup_seconds,
            "reason": r.reason}
