"""The real-Asterisk tier: one Asterisk instance ("test") for the whole run, on its own ports,
with the loopback trunk on, so Asterisk can place real SIP calls to its own hotline.

If Asterisk cannot be provisioned here, these tests fail loudly: they are never skipped.
"""
from __future__ import annotations

import fcntl
import tempfile
from pathlib import Path
from dataclasses import replace
import pytest
import yaml

from acd import config as configmod
from acd.ami.client import AmiClient
from acd.app import Server
from acd.asterisk.runner import Asterisk

from tests.conftest import PROJECT, pg_database
from tests.asterisk.calls import EventLog

# Ports apart from `make run`'s defaults, so tests can run beside a running server.
# Slot 0; see _slot_config for parallel runs.
TEST_CONFIG = {
    "data_dir": "data",
    "hotline": {"number": "7000", "agi_retry_seconds": 1, "agi_retry_count": 30},
    "asterisk": {"instance": "test", "root": str(PROJECT / ".cache" / "asterisk-root"),
                 "sip_port": 15060, "http_port": 18088, "rtp_start": 21000, "rtp_end": 21999, "loopback_trunk": True},
    "ami": {"port": 15038, "ping_interval": 2, "ping_timeout": 2},
    "agi": {"port": 14573},
    "http": {"port": 18080},
    "logging": {"level": "debug"},
    # The event loop's lag guard (overload.max_lag_ms) is tested on its own (unit tier);
    # here a busy machine must not turn a test's callers away.
    "overload": {"max_lag_ms": 5000},
    "agents": [{"id": "1001", "name": "Alice"}, {"id": "1002", "name": "Bob"}],
}


def _slot_config(slot: int) -> dict:
    """Slot N moves every port by 10*N (RTP by 1000*N) and names the instance test<N>, so
    test runs in parallel (several checkouts, several sessions) never share an Asterisk."""
    cfg = yaml.safe_load(yaml.safe_dump(TEST_CONFIG))
    if slot:
        a = cfg["asterisk"]
        a["instance"] = f"test{slot}"
        a["sip_port"] += 10 * slot
        a["http_port"] += 10 * slot
        a["rtp_start"] += 1000 * slot
        a["rtp_end"] += 1000 * slot
        for key in ("ami", "agi", "http"):
            cfg[key]["port"] += 10 * slot
    return cfg


@pytest.fixture(scope="session")
def test_slot():
    """Hold a lock on the first free slot for the whole run. The locks are machine-wide (the
    ports are), so runs from different checkouts never collide."""
    lock_dir = Path(tempfile.gettempdir()) / "acd-test-slots"
    lock_dir.mkdir(parents=True, exist_ok=True)
    for slot in range(20):
        f = open(lock_dir / f"slot{slot}.lock", "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            continue
        yield slot
        f.close()
        return
    raise RuntimeError("all 20 test slots are taken: are that many test runs going on?")


@pytest.fixture(scope="session")
def test_config(tmp_path_factory, test_slot) -> configmod.Config:
    d = tmp_path_factory.mktemp("acd")
    path = d / "config.yaml"
    path.write_text(yaml.safe_dump(_slot_config(test_slot)))
    cfg = configmod.load(path, environ={})
    cfg, _ = configmod.with_secrets(cfg)
    return cfg


@pytest.fixture(scope="session")
def asterisk(test_config) -> Asterisk:
    ast = Asterisk.for_config(test_config)
    ast.down()  # a leftover from an interrupted run
    ast.up()
    yield ast
    ast.down()


@pytest.fixture
async def server(asterisk, test_config, tmp_path, request, db_kind):
    """Our server, on a fresh database per test (PostgreSQL for a test marked for both
    databases: tests/conftest.py)."""
    url = (pg_database(request) if db_kind == "postgresql"
           else f"sqlite+aiosqlite:///{tmp_path / 'acd.db'}")
    cfg = replace(test_config, database=replace(test_config.database, url=url))
    srv = Server(cfg)
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def ami(asterisk, test_config):
    """The test's own AMI connection: places calls and watches events."""
    c = test_config.ami
    client = AmiClient(c.host, c.port, c.username, c.secret, action_timeout=10)
    events = EventLog()
    client.on_event(events.add)
    await client.start(connect_timeout=15)
    client.events = events
    yield client
    # Nothing a test placed may outlive it.
    await client.action("Command", Command="channel request hangup all")
    await client.close()
