"""The leader's lease (acd.leader) on a real database, SQLite and PostgreSQL: one holder at a
time, a standby takes it only once it has expired (the database server's clock), the
fencing token grows at each change of holder, a leader past its own deadline stops before
acting, and a clean stop frees the lease at once."""
from __future__ import annotations

import asyncio

import pytest
import structlog

from acd.leader import Lease
from tests.conftest import BOTH_DATABASES

pytestmark = BOTH_DATABASES


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Lost(Exception):
    pass


def _raise() -> None:
    raise Lost()


def lease(url: str, node: str, clock: Clock, seconds: float = 0.6) -> Lease:
    return Lease(url, node, seconds, structlog.get_logger(), clock=clock, on_lost=_raise)


async def test_one_holder_then_the_standby_after_expiry_with_a_new_token(db_url):
    clock = Clock()
    a, b = lease(db_url, "node-a", clock), lease(db_url, "node-b", clock)
    try:
        assert await a.try_take() and a.token == 1 and a.valid()
        assert not await b.try_take()                  # held: the standby waits
        assert await a.try_take() and a.token == 1     # renewed, same token
        await asyncio.sleep(0.7)                       # the row expires (database clock)
        assert await b.try_take() and b.token == 2     # taken over: a new token
        assert not await a.try_take()                  # the old leader cannot take it back
        # the old leader's own deadline: past it, it stops before acting
        clock.t += 0.6
        with pytest.raises(Lost):
            a.check()
    finally:
        await a.engine.dispose()
        await b.close()


async def test_a_clean_stop_frees_the_lease_at_once(db_url):
    clock = Clock()
    a, b = lease(db_url, "node-a", clock, seconds=30), lease(db_url, "node-b", clock, 30)
    try:
        assert await a.try_take()
        await a.close()                                # released, not left to expire
        waited = asyncio.ensure_future(b.wait_to_lead(every=0.05))
        await asyncio.wait_for(waited, 5)
        assert b.valid() and b.token == 2
    finally:
        await b.close()


async def test_a_renewal_that_fails_ends_the_leader(db_url):
    clock = Clock()
    a, b = lease(db_url, "node-a", clock, seconds=0.3), lease(db_url, "node-b", clock, 0.3)
    lost = asyncio.get_running_loop().create_future()
    a.on_lost = lambda: lost.done() or lost.set_result(True)
    try:
        assert await a.try_take()
        await asyncio.sleep(0.4)                       # expired in the database
        assert await b.try_take()                      # another node leads now
        a.keep()                                       # a's next renewal is refused
        assert await asyncio.wait_for(lost, 5)
    finally:
        a._renewing.cancel()
        await a.engine.dispose()
        await b.close()
