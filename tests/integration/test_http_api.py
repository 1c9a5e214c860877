"""The HTTP API and WebSocket streams on a real aiohttp server on loopback.

The runtime here is a thin stand-in over the REAL ACD core (no Asterisk): it checks the HTTP
layer's mapping of requests, errors and live events. The real runtime on real calls is tested
in tests/asterisk."""
import asyncio
from dataclasses import dataclass

import pytest
from aiohttp.test_utils import TestClient, TestServer

from acd.core import Acd, GroupConfig, Notify
from acd.errors import UserError
from acd.web.api import make_app
from acd.web.hub import Hub
from tests.web_login import login_as, test_store, web_for_tests


@dataclass
class _Cfg:
    class agi:  # noqa: N801
        host = "127.0.0.1"

    class hotline:  # noqa: N801
        number = "7000"


class CoreRuntime:
    """login/logout/state over the real core, Notify decisions published to the hub."""

    def __init__(self, hub: Hub) -> None:
        self.core = Acd([GroupConfig("sales", members={"1001": 5, "1002": 3})])
        self.hub = hub
        self.now = 1000.0
        self.known = {"1001", "1002"}
        self.ready = asyncio.Event()
        self.ready.set()

    def _run(self, decisions):
        for d in decisions:
            if isinstance(d, Notify):
                self.hub.publish(f"agent:{d.agent_id}", {"type": d.event, **d.payload})
        return self.agent

    def _check(self, agent_id):
        if agent_id not in self.known:
            raise UserError("agent.unknown", f"no agent {agent_id!r}")

    def agent(self, agent_id):
        self._check(agent_id)
        return self.core.snapshot_agents(self.now).get(agent_id, {"state": "offline"})

    def agents(self):
        return self.core.snapshot_agents(self.now)

    def queues(self):
        return self.core.snapshot_queues(self.now)

    def login(self, agent_id):
        self._check(agent_id)
        self._run(self.core.agent_login(agent_id, agent_id, self.now))
        return self.agent(agent_id)

    def logout(self, agent_id):
        self._check(agent_id)
        self._run(self.core.agent_logout(agent_id, self.now))
        return self.agent(agent_id)

    def set_state(self, agent_id, state, reason=""):
        self._check(agent_id)
        self._run(self.core.set_agent_state(agent_id, state, self.now, reason))
        return self.agent(agent_id)

    def end_wrapup(self, agent_id):
        self._check(agent_id)
        self._run(self.core.end_wrapup(agent_id, self.now))
        return self.agent(agent_id)

    def set_member(self, group, agent_id, level):
        self._check(agent_id)
        self._run(self.core.set_member(group, agent_id, level, self.now))


@pytest.fixture
async def client(tmp_path):
    """Logged in as an admin (every agent's routes and the supervisors' ones)."""
    hub = Hub()
    rt = CoreRuntime(hub)
    store = await test_store(tmp_path)
    app = make_app(store=None, ami=None, agi=None, cfg=_Cfg, runtime=rt, hub=hub,
                   web_ctx=await web_for_tests(store, rt))
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        c.runtime = rt
        yield await login_as(c, "admin")
    await store.close()


async def test_login_state_change_and_snapshots(client):
    r = await client.post("/api/agents/1001/login")
    assert r.status == 200 and (await r.json())["state"] == "idle"
    r = await client.post("/api/agents/1001/state", json={"state": "break", "reason": "lunch"})
    assert (await r.json())["state"] == "break"
    agents = (await (await client.get("/api/agents")).json())["agents"]
    assert agents["1001"]["state"] == "break"
    queues = (await (await client.get("/api/queues")).json())["queues"]
    assert "sales" in queues


async def test_refusals_are_json_with_stable_ids_and_change_nothing(client):
    r = await client.post("/api/agents/1001/state", json={"state": "break"})
    assert r.status == 409 and (await r.json())["error"] == "agent.not_logged_in"
    assert client.runtime.agent("1001")["state"] == "offline"
    r = await client.post("/api/agents/9999/login")
    assert r.status == 404 and (await r.json())["error"] == "agent.unknown"
    await client.post("/api/agents/1001/login")
    r = await client.post("/api/agents/1001/state", json={"state": "ringing"})
    assert r.status == 409
    assert client.runtime.agent("1001")["state"] == "idle"


@pytest.mark.parametrize("payload,why", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (b'{"state": 5}', "state must be text"),
    (b'{"state": ""}', "state is required"),
    (b'{"state": "break", "reason": "' + b"x" * 500 + b'"}', "longer than"),
])
async def test_malformed_bodies_are_refused(client, payload, why):
    await client.post("/api/agents/1001/login")
    r = await client.post("/api/agents/1001/state", data=payload,
                          headers={"Content-Type": "application/json"})
    body = await r.json()
    assert r.status == 400 and body["error"] == "http.bad_request" and why in body["message"]
    assert client.runtime.agent("1001")["state"] == "idle"


async def test_oversize_body_is_refused(client):
    r = await client.post("/api/agents/1001/state", data=b"x" * (128 * 1024),
                          headers={"Content-Type": "application/json"})
    assert r.status == 413 and (await r.json())["error"] == "http.too_large"


async def test_agent_websocket_sends_snapshot_then_live_events(client):
    await client.post("/api/agents/1001/login")
    async with client.ws_connect("/api/agents/1001/ws") as ws:
        first = await ws.receive_json(timeout=10)
        assert first["type"] == "snapshot" and first["agent"]["state"] == "idle"
        await client.post("/api/agents/1001/state", json={"state": "meeting"})
        ev = await ws.receive_json(timeout=10)
        assert ev["type"] == "state" and "seq" in ev


async def test_websocket_for_unknown_agent_is_refused_before_upgrade(client):
    r = await client.get("/api/agents/nobody/ws", headers={"Connection": "Upgrade", "Upgrade": "websocket",
                                                           "Sec-WebSocket-Version": "13",
                                                           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert r.status == 404


async def test_supervisor_websocket_snapshot(client):
    async with client.ws_connect("/api/supervisor/ws") as ws:
        first = await ws.receive_json(timeout=10)
        assert first["type"] == "snapshot" and "sales" in first["queues"]
