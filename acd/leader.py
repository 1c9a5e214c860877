"""One leader among servers that share a database: a lease row with a fencing token.

Two (or more) ``acd run`` processes share one PostgreSQL database and one Asterisk
(``ha.enabled``). Exactly one is the leader: it holds the row of table ``ha_lease`` until
``expires``, and renews it every third of ``ha.lease_seconds``. The others are standbys: they
try to take the row every second, which succeeds only once it has expired, and then start
serving (the runtime rebuilds its state from Asterisk and the store, as after a restart).

Why a lease row and not an advisory lock held on a session: a frozen leader (SIGSTOP, a
long pause) keeps its database session, so its lock would never pass to the standby; a lease
expires by itself. The times are the database server's (``now()``), never a node's clock, so
two machines' clocks need not agree.

Fencing. A leader acts only while its own deadline has not passed: ``valid_until`` is the
monotonic time when it *sent* its last successful renewal plus the lease minus a margin, so
it is always before the row's expiry as the database counts it. Every AMI action, FastAGI
session and store write first asks :meth:`Lease.check`; once the deadline has passed (the
renewal failed, or the process was frozen and has just woken up) the process ends at once
(exit status 75) without acting again, before another node can have taken over. A process
manager (systemd, the container's restart policy) starts it again, as a standby.
The token grows by one at each change of holder: the log shows who led when.
"""
from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

#: The exit status of a leader that lost its lease (EX_TEMPFAIL: start again, as a standby).
LOST_EXIT = 75
NAME = "acd"


def _now_sql(dialect: str) -> str:
    """The database server's time, in seconds since the epoch."""
    if dialect == "postgresql":
        return "extract(epoch from clock_timestamp())"
    return "(julianday('now') - 2440587.5) * 86400.0"


class Lease:
    """The lease of node ``node`` over the database at ``url``."""

    def __init__(self, url: str, node: str, seconds: float, log: Any, *,
                 clock: Callable[[], float] = time.monotonic,
                 on_lost: Callable[[], None] | None = None) -> None:
        self.node, self.seconds, self.log, self.clock = node, float(seconds), log, clock
        self.engine: AsyncEngine = create_async_engine(url, pool_size=1, max_overflow=0) \
            if not url.startswith("sqlite") else create_async_engine(url)
        self.valid_until = float("-inf")
        self.token = 0
        self.on_lost = on_lost or _exit       # ends the process; the server adds its spill
        self._renewing: asyncio.Task | None = None

    # ---- the row

    async def try_take(self) -> bool:
        """Take the lease if it is free or expired, or renew it if it is ours. True: we hold
        it now, until ``valid_until`` (monotonic)."""
        sent = self.clock()
        now = _now_sql(self.engine.dialect.name)
        async with self.engine.begin() as conn:
            row = (await conn.execute(text(
                f"UPDATE ha_lease SET token = token + CASE WHEN holder = :me THEN 0 ELSE 1 END, "
                f"holder = :me, expires = {now} + :secs "
                f"WHERE name = :name AND (holder = :me OR expires < {now}) "
                f"RETURNING token"), {"me": self.node, "secs": self.seconds, "name": NAME}
            )).first()
        if row is None:
            return False
        if row[0] != self.token:
            self.log.info("ha.leader", node=self.node, token=row[0])
        self.token = row[0]
        self.valid_until = sent + self.seconds * 2 / 3       # before the row's expiry
        return True

    async def release(self) -> None:
        """A clean stop: the lease is free at once (the standby need not wait it out)."""
        if self.valid():
            async with self.engine.begin() as conn:
                await conn.execute(text("UPDATE ha_lease SET expires = 0 "
                                        "WHERE name = :name AND holder = :me"),
                                   {"name": NAME, "me": self.node})
        self.valid_until = float("-inf")

    # ---- leading

    def valid(self) -> bool:
        return self.clock() < self.valid_until

    def check(self) -> None:
        """Before acting: the lease must still be ours, else the process ends now."""
        if not self.valid():
            self.lost("expired before an action")

    def lost(self, why: str) -> None:
        self.log.critical("ha.lease_lost", node=self.node, token=self.token, why=why)
        self.on_lost()

    async def wait_to_lead(self, every: float = 1.0) -> None:
        """A standby's wait: try every ``every`` seconds until the lease is ours."""
        announced = False
        while True:
            try:
                if await self.try_take():
                    return
            except Exception as e:  # noqa: BLE001 - the database away: keep trying
                self.log.warning("ha.lease_unreachable", error=str(e)[:200])
            if not announced:
                self.log.info("ha.standby", node=self.node)
                announced = True
            await asyncio.sleep(every)

    def keep(self) -> None:
        """Renew every third of the lease while leading; a renewal that fails or comes too
        late ends the process (see the module docstring)."""
        self._renewing = asyncio.ensure_future(self._keep())

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self.seconds / 3)
            self.check()                       # frozen past the deadline: gone before acting
            try:
                held = await asyncio.wait_for(self.try_take(),
                                              max(0.05, self.valid_until - self.clock()))
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - a lost database link: try again, in time
                self.log.warning("ha.renew_failed", error=str(e)[:200])
                continue
            if not held:
                self.lost("taken by another node")

    async def close(self) -> None:
        if self._renewing is not None:
            self._renewing.cancel()
            await asyncio.gather(self._renewing, return_exceptions=True)
        try:
            await self.release()
        finally:
            await self.engine.dispose()


def _exit() -> None:
    os._exit(LOST_EXIT)        # no clean-up: it would act (AMI actions, writes)


__all__ = ["LOST_EXIT", "Lease"]
