"""Records waiting for a locked or full database show on the supervisor's wall board and in
/metrics while they wait, and disappear from both once written."""
from __future__ import annotations

import asyncio
import sqlite3

from acd.store.writer import StoreWriter
from tests.integration.test_web_api import web  # noqa: F401  (the fixture)


async def test_the_backlog_shows_on_the_wall_board_and_in_metrics(web):  # noqa: F811
    gate = asyncio.Event()
    tries = 0

    async def locked_until_gate() -> None:
        nonlocal tries
        tries += 1
        if not gate.is_set():
            raise sqlite3.OperationalError("database is locked")

    writer = StoreWriter(first_delay=0.01, max_delay=0.05)
    web.rt.writer = writer
    writer.start()
    try:
        for _ in range(3):
            writer.submit("test", locked_until_gate)
        sup = await web.as_user("sup")
        for _ in range(200):                          # bounded: until the first retry failed
            if tries >= 1 and writer.status()["failing"]:
                break
            await asyncio.sleep(0.01)
        board = await (await sup.get("/api/stats/wallboard")).json()
        assert board["store_writes"]["degraded"] is True
        assert board["store_writes"]["pending"] == 3
        text = await (await sup.get("/metrics")).text()
        assert "acd_store_writes_pending 3" in text and "acd_store_writes_failing 1" in text
        gate.set()
        await asyncio.wait_for(writer.drain(), 10)
        board = await (await sup.get("/api/stats/wallboard")).json()
        assert board["store_writes"]["pending"] == 0 and not board["store_writes"]["degraded"]
        text = await (await sup.get("/metrics")).text()
        assert "acd_store_writes_pending 0" in text and "acd_store_writes_failing 0" in text
    finally:
        await writer.stop()
