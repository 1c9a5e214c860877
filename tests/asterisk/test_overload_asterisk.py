"""Overload seen from Asterisk's side: while Asterisk answers AMI Pings later than
``overload.max_asterisk_ms``, a new caller gets their group's overload treatment (the
message and goodbye) instead of a place in the queue, on a real call. The threshold here is
set below any real round trip, so the real Pings of the real Asterisk are what make the
server overloaded."""
from __future__ import annotations

import asyncio
from dataclasses import replace

from tests.asterisk.acd_fixtures import (WAIT, Caller, acd_config, after, mark,  # noqa: F401
                                         serving, stored)
from tests.asterisk.calls import field


async def test_a_new_caller_while_asterisk_answers_late_hears_the_overload_message(
        acd_config, ami, tmp_path):
    cfg = replace(acd_config, overload=replace(acd_config.overload, max_asterisk_ms=0.001))
    async with serving(cfg, tmp_path) as srv:
        for _ in range(int(WAIT / 0.1)):         # the watch's first Pings (1 s apart)
            if srv.runtime.lag.overloaded:
                break
            await asyncio.sleep(0.1)
        assert srv.runtime.lag.overloaded and list(srv.runtime.lag.pings)
        m = mark(ami)
        caller = await Caller(ami, "7101").dial()
        await after(ami, m, lambda e: e.name == "Newexten" and field(e, "Channel") == caller.channel
                    and field(e, "Application") == "Playback"
                    and field(e, "AppData") == "all-circuits-busy-now", "the overload message")
        await caller.gone(m)
        call = await stored(srv, caller.uniqueid, ended=True)
        assert call["end_reason"] == "overflow"
        assert srv.runtime.queues()["sales"]["waiting"] == 0
        assert srv.runtime.lag.turned_away == 1
