"""The real-Asterisk tier: one Asterisk instance ("test") for the whole run, on its own ports,
with the loopback trunk on, so Asterisk can place real SIP calls to its own hotline.

If Asterisk cannot be provisioned here, these tests fail loudly: they are never skipped.
"""
from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from acd import config as configmod
from acd.ami.client import AmiClient
from acd.app import Server
from acd.asterisk.runner import Asterisk

from tests.conftest import PROJECT
from tests.asterisk.calls import EventLog

# Ports apart from `make run`'s defaults, so tests can run beside a running server.
TEST_CONFIG = {
    "data_dir": "data",
    "hotline": {"number": "7000", "agi_retry_seconds": 1, "agi_retry_count": 30},
    "asterisk": {"instance": "test", "root": str(PROJECT / ".cache" / "asterisk-root"),
                 "sip_port": 15060, "rtp_start": 21000, "rtp_end": 21999, "loopback_trunk": True},
    "ami": {"port": 15038, "ping_interval": 2, "ping_timeout": 2},
    "agi": {"port": 14573},
    "http": {"port": 18080},
    "logging": {"level": "debug"},
    "agents": [{"id": "1001", "name": "Alice"}, {"id": "1002", "name": "Bob"}],
}


@pytest.fixture(scope="session")
def test_config(tmp_path_factory) -> configmod.Config:
    d = tmp_path_factory.mktemp("acd")
    path = d / "config.yaml"
    path.write_text(yaml.safe_dump(TEST_CONFIG))
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
async def server(asterisk, test_config, tmp_path):
    """Our server, on a fresh database per test."""
    cfg = replace(test_config, database=replace(test_config.database,
                                                url=f"sqlite+aiosqlite:///{tmp_path / 'acd.db'}"))
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
