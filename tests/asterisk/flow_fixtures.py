"""Fixtures for IVR flows on real calls: the test Asterisk rendered with the flows' numbers
(on top of the ACD tests' agents and groups, so every test of the session finds what it
needs), a server per test with its own flow folder, customers in the directory, and a small
business system (aiohttp on 127.0.0.1) for http nodes and HTTP directory lookups.

Waits have generous upper bounds: they end a stuck test, they never measure speed.
"""
from __future__ import annotations

import asyncio
import random
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from acd import config as configmod
from acd.app import Server
from acd.asterisk.runner import Asterisk
from acd.directory import import_rows
from tests.asterisk.acd_fixtures import RANDOM_SEED, WAIT, after, mark, waiting_in_queue
from tests.asterisk.calls import field

#: Numbers that run flows in the test Asterisk (rendered once for the session).
FLOW_NUMBERS = {"7301": "hotline", "7302": "walk", "7303": "verify", "7304": "lookup",
                "7305": "menu", "7306": "reload", "7307": "closed", "7308": "survey"}
FLOW_GROUPS = (configmod.GroupConfig(name="general", members={}),
               configmod.GroupConfig(name="orders", members={}),
               configmod.GroupConfig(name="payments", members={}))
EXAMPLES = Path(__file__).resolve().parents[2] / "ivr_flows"

CUSTOMERS = [
    {"customer_number": "12345", "name": "Li Lei", "phone": "13911112222", "id_number": "11010519491231002X"},
    {"customer_number": "67890", "name": "Han Meimei", "phone": "+8613933334444", "id_number": ""},
]


@pytest.fixture(scope="session")
def flows_config(asterisk, acd_config) -> configmod.Config:
    """The ACD tests' config plus the flows' numbers and groups, rendered into the running
    test Asterisk (a reload): a superset, so the ACD tests after these still find theirs."""
    names = {g.name for g in acd_config.groups}
    groups = tuple(acd_config.groups) + tuple(g for g in FLOW_GROUPS if g.name not in names)
    cfg = replace(acd_config, groups=groups,
                  flows=replace(acd_config.flows, numbers=dict(FLOW_NUMBERS)))
    Asterisk(install=asterisk.install, layout=asterisk.layout, cfg=cfg).up()
    return cfg


class FlowServers:
    """Start our server with flows written for the test."""

    def __init__(self, base: configmod.Config, tmp: Path) -> None:
        self.base = base
        self.tmp = tmp
        self.dir = tmp / "flows"
        self.dir.mkdir()
        self.servers: list[Server] = []

    def write(self, name: str, text: str) -> Path:
        p = self.dir / f"{name}.yaml"
        p.write_text(textwrap.dedent(text).lstrip())
        return p

    def copy_examples(self) -> None:
        for p in EXAMPLES.glob("*.yaml"):
            (self.dir / p.name).write_text(p.read_text())

    async def start(self, *, watch: float = 0.0, directory: dict[str, Any] | None = None,
                    customers: bool = True) -> Server:
        cfg = replace(self.base,
                      database=replace(self.base.database,
                                       url=f"sqlite+aiosqlite:///{self.tmp / 'acd.db'}"),
                      flows=replace(self.base.flows, dir=str(self.dir), watch_seconds=watch,
                                    numbers={n: f for n, f in FLOW_NUMBERS.items()
                                             if (self.dir / f"{f}.yaml").exists()}),
                      directory=replace(self.base.directory, **(directory or {})))
        srv = Server(cfg, rng=random.Random(RANDOM_SEED))
        await srv.start()
        self.servers.append(srv)
        await asyncio.wait_for(srv.runtime.ready.wait(), WAIT)
        if customers:
            await import_rows(srv.store, [dict(c) for c in CUSTOMERS])
        return srv

    async def close(self) -> None:
        for srv in self.servers:
            await srv.stop()


@pytest.fixture
async def flow_servers(flows_config, tmp_path):
    s = FlowServers(flows_config, tmp_path)
    yield s
    await s.close()


class BusinessSystem:
    """A business system on 127.0.0.1: a ticket endpoint, a customer lookup, and endpoints that
    hang (to prove timeouts) or fail. Every request is kept."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.runner: web.AppRunner | None = None
        self.port = 0
        self._release = asyncio.Event()

    async def start(self) -> "BusinessSystem":
        app = web.Application()
        app.router.add_post("/ticket", self.ticket)
        app.router.add_get("/lookup", self.lookup)
        app.router.add_route("*", "/hang", self.hang)
        app.router.add_route("*", "/fail", self.fail)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def ticket(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({"path": "/ticket", "body": body})
        return web.json_response({"ticket": {"id": "T-4711"}, "queue_hint": "orders"})

    async def lookup(self, request: web.Request) -> web.Response:
        self.requests.append({"path": "/lookup", "query": dict(request.query)})
        kind, value = request.query.get("kind"), request.query.get("value")
        for c in CUSTOMERS:
            if kind in c and c[kind] and value == c[kind]:
                return web.json_response({"found": True, "customer": c})
        return web.json_response({"found": False})

    async def hang(self, request: web.Request) -> web.Response:
        self.requests.append({"path": "/hang"})
        await self._release.wait()          # until the test ends: the caller must not wait on it
        return web.json_response({})

    async def fail(self, request: web.Request) -> web.Response:
        self.requests.append({"path": "/fail"})
        return web.json_response({"error": "down"}, status=503)

    async def close(self) -> None:
        self._release.set()
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def business():
    b = await BusinessSystem().start()
    yield b
    await b.close()


@pytest.fixture
def agi_replies(monkeypatch):
    """Every FastAGI command our server sends and Asterisk's reply to it, in order:
    (uniqueid, command, args, reply). The real session, only watched."""
    from agi.server import AgiSession
    seen: list[tuple[str, str, tuple, Any]] = []
    real = AgiSession.command

    async def command(self, name, *args):  # noqa: ANN001
        reply = await real(self, name, *args)
        seen.append((self.request.uniqueid, name, args, reply))
        return reply
    monkeypatch.setattr(AgiSession, "command", command)
    return seen


# --------------------------------------------------------------------------- on the call

async def agi_command(ami, since: int, channel: str, prefix: str, what: str = "") -> Any:
    """The IVR sent an AGI command starting with ``prefix`` on the channel."""
    return await after(ami, since, lambda e: e.name == "AGIExecStart"
                       and field(e, "Channel") == channel
                       and field(e, "Command").upper().startswith(prefix.upper()),
                       what or f"AGI {prefix}")


async def agi_end(ami, since: int, channel: str, prefix: str) -> Any:
    """The end of an AGI command (its result) starting with ``prefix``."""
    return await after(ami, since, lambda e: e.name == "AGIExecEnd"
                       and field(e, "Channel") == channel
                       and field(e, "Command").upper().startswith(prefix.upper()),
                       f"end of AGI {prefix}")


async def nth_command(ami, since: int, channel: str, prefix: str, n: int, what: str = "") -> Any:
    """The n-th (1-based) AGI command starting with ``prefix`` on the channel since ``since``."""
    def pred(e: Any) -> bool:
        if not (e.name == "AGIExecStart" and field(e, "Channel") == channel
                and field(e, "Command").upper().startswith(prefix.upper())):
            return False
        return sum(1 for x in ami.events.events[since:ami.events.events.index(e) + 1]
                   if x.name == "AGIExecStart" and field(x, "Channel") == channel
                   and field(x, "Command").upper().startswith(prefix.upper())) == n
    return await after(ami, since, pred, what or f"AGI {prefix} #{n}")


async def in_queue(ami, since: int, channel: str) -> Any:
    """The caller reached the ACD's queue context and waits there (music, in Asterisk)."""
    entered = await after(ami, since, lambda e: e.name == "Newexten" and field(e, "Channel") == channel
                          and field(e, "Context") == "acd-queue" and field(e, "Application") == "AGI",
                          "the caller in the queue context")
    at = ami.events.events.index(entered)
    return await after(ami, at, lambda e: waiting_in_queue(e, channel), "the caller waiting")


def commands(ami, channel: str, since: int = 0) -> list[str]:
    return [field(e, "Command") for e in ami.events.events[since:]
            if e.name == "AGIExecStart" and field(e, "Channel") == channel]


def trail(call: dict[str, Any]) -> list[tuple[str, str]]:
    return [(k["node"], k["keys"]) for k in call["key_trail"]]


__all__ = ["FLOW_NUMBERS", "agi_replies", "BusinessSystem", "FlowServers", "agi_command", "agi_end", "business",
           "commands", "flow_servers", "in_queue", "nth_command", "flows_config", "mark", "trail"]
