"""Shared test setup. Tiers, fastest first: tests/unit (pure), tests/integration (real servers
on loopback, fake peers), tests/asterisk (real Asterisk, real SIP; marker ``asterisk``)."""
from pathlib import Path

import pytest

import acd.log
from acd.store.db import Store, migrate_async

PROJECT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/asterisk/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.asterisk)


@pytest.fixture(scope="session", autouse=True)
def _logging():
    acd.log.configure("debug", "console")


@pytest.fixture
async def store(tmp_path):
    """A migrated SQLite store in the test's folder (files that need another kind define
    their own ``store``)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'acd.db'}"
    await migrate_async(url)
    s = Store(url)
    yield s
    await s.close()
