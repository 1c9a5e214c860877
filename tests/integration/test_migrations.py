"""Alembic's migrations on SQLite and on a real PostgreSQL server: from an empty database to
the newest revision (the schema then is the models' exactly), and from each earlier revision
(each one alone, with a call recorded there) up to the newest (the call still reads back whole). Every
revision in the migrations folder is walked, whatever its number."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from acd.store.db import MIGRATIONS, Store, alembic_config
from acd.store.models import Base
from tests.conftest import BOTH_DATABASES

pytestmark = BOTH_DATABASES

AT = datetime(2026, 11, 21, 9, 0, tzinfo=timezone.utc)
SCRIPTS = ScriptDirectory.from_config(alembic_config("sqlite://"))
#: Every revision, oldest first (read from the migrations folder, not listed here), and the
#: heads that start-up upgrades to (the revisions branch: several heads).
REVISIONS = [s.revision for s in reversed(list(SCRIPTS.walk_revisions()))]
HEADS = set(SCRIPTS.get_heads())


@pytest.fixture
def empty_url(request, db_kind, tmp_path):
    """A database with no tables at all."""
    if db_kind == "postgresql":
        server = request.getfixturevalue("pg_server")
        name = server.new_database()
        request.addfinalizer(lambda: server.drop_database(name))
        return server.url(name)
    return f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"


async def _upgrade(url: str, to: str) -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(url), to)


async def _current(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(
                lambda c: MigrationContext.configure(c).get_current_heads()))
    finally:
        await engine.dispose()


def test_every_migration_file_is_walked():
    files = [p for p in (MIGRATIONS / "versions").glob("*.py") if not p.name.startswith("_")]
    assert len(REVISIONS) == len(set(REVISIONS)) == len(files) >= 10


async def test_from_empty_to_the_newest_the_schema_is_the_models(empty_url):
    await _upgrade(empty_url, "heads")
    assert await _current(empty_url) == HEADS
    engine = create_async_engine(empty_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata))
    finally:
        await engine.dispose()
    # Tables, columns, types, nullability and the models' indexes as the models say; some
    # composite indexes live in the migrations only (the models do not declare them).
    assert [d for d in diff if not (isinstance(d, tuple) and d[0] == "remove_index")] == []
    await _upgrade(empty_url, "heads")          # a second run finds nothing to do
    assert await _current(empty_url) == HEADS


@pytest.mark.parametrize("revision", REVISIONS)
async def test_from_an_earlier_revision_to_the_newest_keeps_the_calls(empty_url, revision):
    await _upgrade(empty_url, revision)
    assert await _current(empty_url) == {revision}
    engine = create_async_engine(empty_url)
    try:
        async with engine.begin() as conn:      # the columns every revision has
            await conn.execute(text(
                "INSERT INTO calls (uniqueid, channel, caller_number, caller_name, did,"
                " arrived_at, ended_at, end_reason) VALUES ('old.1', 'PJSIP/c', '13800138000',"
                " 'Zoë', '7000', :at, :at, 'caller_hangup')"), {"at": AT})
            await conn.execute(text(
                "INSERT INTO agent_state_changes (agent_id, state, reason, at)"
                " VALUES ('1001', 'idle', '', :at)"), {"at": AT})
    finally:
        await engine.dispose()
    await _upgrade(empty_url, "heads")
    assert await _current(empty_url) == HEADS
    store = Store(empty_url)
    try:
        call = await store.get_call("old.1")
        assert (call["caller_name"], call["end_reason"], call["arrived_at"]) == (
            "Zoë", "caller_hangup", AT.isoformat())
        assert (await store.latest_agent_states())["1001"]["state"] == "idle"
        # The newest schema takes writes on the upgraded rows.
        await store.call_event("old.1", "note", at=AT)
        assert [e["kind"] for e in (await store.get_call("old.1"))["events"]] == ["note"]
    finally:
        await store.close()
