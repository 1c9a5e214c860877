"""The supervisors' WebSocket on a real aiohttp server: the whole board as it opens (with the
number of the last change), then only what changed, numbered on; a page that asks
(``{"type": "resync"}``) gets the whole board again, in order; anything else it sends is
ignored. The board comes from the REAL core through the runtime's real Pages and Hub; the
runtime around them is a thin stand-in (no Asterisk)."""
from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from acd.core import Acd, GroupConfig
from acd.runtime.effects import Pages
from acd.web.api import make_app
from acd.web.hub import Hub
from tests.web_login import login_as, test_store, web_for_tests

WAIT = 10.0            # ends a stuck test; never measures speed


class _Cfg:
    class agi:  # noqa: N801
        host = "127.0.0.1"

    class hotline:  # noqa: N801
        number = "7000"


class BoardRuntime:
    """The runtime's board path: the real core's views, sent by the real Pages."""

    def __init__(self, hub: Hub) -> None:
        self.core = Acd([GroupConfig("sales", members={"1001": 5, "1002": 3})])
        self.now = 1000.0
        self.pages = Pages(hub, None, ringing=lambda c, a: False, save_pending=lambda d: None,
                           snapshot=lambda: {"queues": self.core.snapshot_queues(self.now),
                                             "agents": self.core.snapshot_agents(self.now)})

    def change(self, decisions) -> None:  # noqa: ANN001
        list(decisions)
        self.pages.snapshot_soon()

    def queues(self):
        return self.core.snapshot_queues(self.now)

    def agents(self):
        return self.core.snapshot_agents(self.now)


@pytest.fixture
async def sup(tmp_path):
    hub = Hub()
    rt = BoardRuntime(hub)
    store = await test_store(tmp_path)
    app = make_app(store=None, ami=None, agi=None, cfg=_Cfg, runtime=rt, hub=hub,
                   web_ctx=await web_for_tests(store, rt))
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        c.runtime = rt
        yield await login_as(c, "sup")
    await store.close()


async def test_the_board_then_its_changes_numbered_and_again_when_asked(sup):
    rt = sup.runtime
    rt.change(rt.core.agent_login("1001", "1001", rt.now))
    async with sup.ws_connect("/api/supervisor/ws") as ws:
        first = await ws.receive_json(timeout=WAIT)
        assert first["type"] == "snapshot" and "sales" in first["queues"]
        assert first["agents"]["1001"]["state"] == "idle"
        seq = first["seq"]
        rt.change(rt.core.agent_login("1002", "1002", rt.now))
        delta = await ws.receive_json(timeout=WAIT)
        assert delta["type"] == "delta" and delta["seq"] == seq + 1
        assert set(delta["agents"]) == {"1002"} and set(delta["queues"]) == {"sales"}
        await ws.send_str("not json")                   # ignored
        await ws.send_json({"type": "something else"})  # ignored
        await ws.send_json({"type": "resync"})
        again = await ws.receive_json(timeout=WAIT)
        assert again["type"] == "snapshot" and again["seq"] == seq + 1
        assert again["agents"]["1002"]["state"] == "idle"
        rt.change(rt.core.set_agent_state("1001", "break", rt.now, "lunch"))
        delta = await ws.receive_json(timeout=WAIT)
        assert delta["seq"] == seq + 2 and delta["agents"]["1001"]["reason"] == "lunch"


async def test_two_supervisors_each_get_every_change_after_their_own_snapshot(sup):
    rt = sup.runtime
    async with sup.ws_connect("/api/supervisor/ws") as a:
        seq_a = (await a.receive_json(timeout=WAIT))["seq"]
        rt.change(rt.core.agent_login("1001", "1001", rt.now))
        assert set((await a.receive_json(timeout=WAIT))["agents"]) == {"1001"}
        async with sup.ws_connect("/api/supervisor/ws") as b:
            first_b = await b.receive_json(timeout=WAIT)
            assert first_b["seq"] == seq_a + 1 and first_b["agents"]["1001"]["state"] == "idle"
            rt.change(rt.core.agent_login("1002", "1002", rt.now))
            for ws in (a, b):
                delta = await ws.receive_json(timeout=WAIT)
                assert delta["seq"] == seq_a + 2 and set(delta["agents"]) == {"1002"}
