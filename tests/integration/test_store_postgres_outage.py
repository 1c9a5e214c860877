"""PostgreSQL stopped under a running server (``pg_ctl stop -m fast``, then started again on
the same port): the agents' changes go on, their records wait in the store writer's queue,
in order, the health route says "degraded" and a page's read is a clean 503; once the
database is back every record is written, nothing lost, and health says "ok" again. A real
PostgreSQL server of the test's own (tests/postgres.py), our real server, a fake Asterisk."""
from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from typing import Any

import aiohttp
import yaml

from acd import config as configmod
from acd.app import Server
from tests import postgres
from tests.integration.fake_ami import FakeAmi
from tests.integration.test_store_faults import _play_asterisk
from tests.web_login import login, password_of

WAIT = 30.0            # ends a stuck test; never measures speed


async def _server(tmp_path, url: str) -> tuple[Server, FakeAmi]:  # noqa: ANN001
    ami = await FakeAmi(secret="fake-ami-secret-1").start()
    _play_asterisk(ami)
    (tmp_path / "flows").mkdir(exist_ok=True)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "data_dir": "data",
        "database": {"url": url},
        "ami": {"port": ami.port, "secret": "fake-ami-secret-1"},
        "agents": [{"id": "1001", "name": "Alice"}, {"id": "1002", "name": "Bob"}],
        "groups": [{"name": "sales", "members": {"1001": 5, "1002": 3}}],
        "flows": {"dir": "flows", "watch_seconds": 0},
        "web": {"users": [{"username": "admin", "role": "admin"}]}}))
    path.chmod(0o600)
    cfg, _ = configmod.with_secrets(configmod.load(path, environ={}))
    cfg = replace(cfg, agi=replace(cfg.agi, port=postgres.free_port()),
                  http=replace(cfg.http, port=postgres.free_port()))
    srv = Server(cfg, rng=random.Random(7))
    await srv.start()
    await asyncio.wait_for(srv.runtime.ready.wait(), WAIT)
    return srv, ami


async def _until(check, what: str) -> Any:  # noqa: ANN001
    """``await check()`` until it gives something true (bounded); that value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        got = await check()
        if got:
            return got
        assert loop.time() < deadline, f"never: {what}"
        await asyncio.sleep(0.1)           # polling the health route, bounded


async def test_postgresql_stopped_under_the_server_loses_nothing(own_pg, tmp_path):
    pg = own_pg
    srv, ami = await _server(tmp_path, pg.url("acd"))
    base = f"http://127.0.0.1:{srv.http_port}"
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async def health() -> dict[str, Any]:
                async with http.get(f"{base}/api/health") as r:
                    assert r.status == 200
                    return await r.json()

            admin = await login(http, "admin", password_of(srv.cfg, "admin"), base)
            srv.runtime.login("1001")
            await srv.runtime.quiesce()
            before = await health()
            assert before["status"] == "ok" and before["store_writes"]["pending"] == 0, before

            await asyncio.to_thread(pg.stop, "fast")
            srv.runtime.set_state("1001", "break", "coffee")
            srv.runtime.login("1002")
            srv.runtime.set_state("1001", "idle", "back")

            async def failing() -> dict[str, Any] | None:
                h = await health()
                w = h["store_writes"]
                return h if w["failing"] and w["retries"] >= 3 else None
            during = await _until(failing, "the writer retrying while PostgreSQL is down")
            assert during["status"] == "degraded", during
            assert during["store_writes"]["pending"] == 3, during
            assert during["store_writes"]["failed"] == 0, during
            # A page's read while the database is away: a clean 503 with a stable id.
            async with admin.get("/api/calls") as r:
                assert r.status == 503, await r.text()
                assert (await r.json())["error"] == "store.unavailable"
            # The ACD goes on meanwhile.
            assert srv.runtime.agent("1001")["state"] == "idle"
            assert srv.runtime.agent("1002")["state"] == "idle"

            await asyncio.to_thread(pg.start)

            async def recovered() -> dict[str, Any] | None:
                h = await health()
                return h if h["status"] == "ok" and h["store_writes"]["pending"] == 0 else None
            after = await _until(recovered, "the backlog written once PostgreSQL is back")
            st = after["store_writes"]
            assert st["failed"] == 0 and not st["failing"] and st["outages"] >= 1, st
            async with admin.get("/api/calls") as r:
                assert r.status == 200, await r.text()
        rows = await srv.store.agent_states("1001")
        assert [(x["state"], x["reason"]) for x in rows] == [
            ("idle", "login"), ("break", "coffee"), ("idle", "back")]
        assert [x["state"] for x in await srv.store.agent_states("1002")] == ["idle"]
    finally:
        await srv.stop()
        await ami.stop()


async def test_postgresqls_own_errors_are_told_apart(pg_server):
    """Real errors from a real server: a connection ended by the server (57P01, as at a
    shutdown) and a refused connection pass by themselves; a duplicate key or bad SQL is
    the write's own fault and is never retried."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from acd.store.writes import is_transient

    url = pg_server.url(pg_server.new_database())
    engine = create_async_engine(url)
    seen: list[BaseException] = []
    try:
        async with engine.connect() as conn:
            await conn.execute(text("CREATE TABLE t (k int PRIMARY KEY)"))
            await conn.execute(text("INSERT INTO t VALUES (1)"))
            await conn.commit()
            for sql in ("INSERT INTO t VALUES (1)", "SELEC 1"):
                try:
                    await conn.execute(text(sql))
                except Exception as e:  # noqa: BLE001 - collected, looked at below
                    seen.append(e)
                await conn.rollback()
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar()
            await asyncio.to_thread(pg_server.psql, f"SELECT pg_terminate_backend({pid})")
            try:
                await conn.execute(text("SELECT 1"))
            except Exception as e:  # noqa: BLE001
                seen.append(e)
    finally:
        await engine.dispose()
    away = create_async_engine(f"postgresql+asyncpg://acd@127.0.0.1:{postgres.free_port()}/x")
    try:
        async with away.connect():
            pass
    except Exception as e:  # noqa: BLE001
        seen.append(e)
    finally:
        await away.dispose()
    assert [is_transient(e) for e in seen] == [False, False, True, True], seen
    assert [getattr(getattr(e, "orig", None), "sqlstate", None) for e in seen[:2]] == [
        "23505", "42601"]


async def test_a_read_after_a_quiet_restart_of_postgresql_just_works(own_pg):
    """The server restarted while nothing was written (at night, say): the store's pooled
    connections are dead, and the next read finds that out before using one (a ping at
    checkout) instead of failing a page's request."""
    from acd.store.db import Store, migrate_async

    url = own_pg.url("acd")
    await migrate_async(url)
    store = Store(url)
    try:
        assert await store.recent_calls() == []          # a connection now in the pool
        await asyncio.to_thread(own_pg.stop, "fast")
        await asyncio.to_thread(own_pg.start)
        assert await store.recent_calls() == []
        assert await store.latest_agent_states() == {}
    finally:
        await store.close()


async def test_a_database_the_start_cannot_reach_is_said_plainly(pg_server, monkeypatch):
    """No server at the address, no such database, a login refused, no driver: a stable
    error id and the URL without its password, not a traceback."""
    import sys

    from acd.errors import UserError
    from acd.store.db import migrate_async

    port = postgres.free_port()
    cases = [(f"postgresql+asyncpg://acd:s3cret@127.0.0.1:{port}/acd", "store.unreachable"),
             (pg_server.url("no_such_database"), "store.unreachable"),
             (pg_server.url("postgres").replace("://acd@", "://no_such_role:s3cret@"),
              "store.unreachable")]                               # the login refused
    for url, error_id in cases:
        try:
            await migrate_async(url)
        except UserError as e:
            assert e.id == error_id and "s3cret" not in e.message, e.message
            assert "127.0.0.1" in e.message, e.message
        else:
            raise AssertionError(f"{url}: migrated")
    monkeypatch.setitem(sys.modules, "asyncpg", None)        # as if not installed
    try:
        await migrate_async(pg_server.url("postgres"))
    except UserError as e:
        assert e.id == "store.driver_missing" and "[postgresql]" in e.message, e.message
    else:
        raise AssertionError("migrated without asyncpg")


async def test_a_server_stopped_while_postgresql_is_down_writes_its_backlog_at_the_next_start(
        own_pg, tmp_path):
    import structlog

    from acd.store.writer import spill_path_for

    url = own_pg.url("acd")
    srv, ami = await _server(tmp_path, url)
    spill = spill_path_for(srv.cfg.database_url, tmp_path / "data")   # beside config.yaml
    try:
        srv.runtime.login("1001")
        await srv.runtime.quiesce()
        await asyncio.to_thread(own_pg.stop, "fast")
        srv.runtime.set_state("1001", "break", "coffee")
        srv.runtime.login("1002")

        async def failing() -> bool:
            return srv.runtime.writer.status()["failing"]
        await _until(failing, "the writer seeing PostgreSQL gone")
        srv.runtime.writer.stop_wait = 0.3
        with structlog.testing.capture_logs() as logs:
            await srv.stop()
        spilled = [e for e in logs if e["event"] == "store.writes_spilled"]
        assert [(e["pending"], e["spill"]) for e in spilled] == [(2, str(spill))]
    finally:
        await ami.stop()
        if srv.store is not None:
            await srv.store.close()

    await asyncio.to_thread(own_pg.start)
    srv, ami = await _server(tmp_path, url)         # the next start, PostgreSQL back
    try:
        assert not spill.exists()
        await srv.runtime.quiesce()
        rows = await srv.store.agent_states("1001")
        assert [(r["state"], r["reason"]) for r in rows] == [("idle", "login"),
                                                             ("break", "coffee")]
        assert [r["state"] for r in await srv.store.agent_states("1002")] == ["idle"]
        assert srv.runtime.agent("1001")["state"] == "break"
        assert srv.runtime.agent("1002")["state"] == "idle"
    finally:
        await srv.stop()
        await ami.stop()
