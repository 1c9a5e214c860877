"""Shared test setup. Tiers, fastest first: tests/unit (pure), tests/integration (real servers
on loopback, fake peers), tests/asterisk (real Asterisk, real SIP; marker ``asterisk``)."""
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import acd.log
from acd.store.db import Store, migrate, migrate_async
from tests import postgres

PROJECT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/asterisk/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.asterisk)


@pytest.fixture(scope="session", autouse=True)
def _logging():
    acd.log.configure("debug", "console")


#: Put on a module (``pytestmark = BOTH_DATABASES``) or a test: each test of it that uses
#: ``db_kind`` (through ``db_url`` or ``store``) runs on SQLite and on a real PostgreSQL server.
BOTH_DATABASES = pytest.mark.both_databases
DATABASES = ("sqlite", "postgresql")


def pytest_configure(config):
    config.addinivalue_line("markers", "both_databases: run on SQLite and on PostgreSQL")


def pytest_generate_tests(metafunc):
    if "db_kind" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
            "both_databases"):
        metafunc.parametrize("db_kind", DATABASES, indirect=True)


@pytest.fixture(scope="session")
def pg_server():
    """One PostgreSQL server for the test session (tests/postgres.py), with a migrated
    template database; stopped and removed at the end."""
    server = postgres.started()
    try:
        server.psql(f'CREATE DATABASE "{postgres.TEMPLATE}" TEMPLATE template0')
        with ThreadPoolExecutor(1) as thread:     # set up from inside a running loop
            thread.submit(migrate, server.url(postgres.TEMPLATE)).result()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def _own_pg_server():
    server = postgres.started()
    yield server
    server.close()


@pytest.fixture
def own_pg(_own_pg_server):
    """A PostgreSQL server of the test module's own (not the session's), for tests that stop
    and start it (tests/postgres.py), with a fresh, empty database ``acd``."""
    server = _own_pg_server
    server.start_if_stopped()       # a test that failed while it was stopped
    server.psql('DROP DATABASE IF EXISTS "acd" WITH (FORCE)')
    server.psql('CREATE DATABASE "acd"')
    return server


@pytest.fixture
def db_kind(request):
    """The database of ``db_url`` and ``store``: SQLite unless a test says both."""
    return getattr(request, "param", "sqlite")


def pg_database(request) -> str:
    """The URL of a fresh, migrated PostgreSQL database (a copy of the session's template);
    callable from any fixture, async ones included (``db_url`` is async: not from those)."""
    server = request.getfixturevalue("pg_server")
    name = server.new_database(template=postgres.TEMPLATE)
    request.addfinalizer(lambda: server.drop_database(name))     # ~8 MB each otherwise
    return server.url(name)


@pytest.fixture
async def db_url(request, db_kind, tmp_path):
    """A migrated database of the test's own: a SQLite file in its folder, or a fresh
    PostgreSQL database copied from the migrated template."""
    if db_kind == "postgresql":
        return pg_database(request)
    url = f"sqlite+aiosqlite:///{tmp_path / 'acd.db'}"
    await migrate_async(url)
    return url


@pytest.fixture
async def store(db_url):
    """A migrated store (files that need another kind define their own ``store``)."""
    s = Store(db_url)
    yield s
    await s.close()
