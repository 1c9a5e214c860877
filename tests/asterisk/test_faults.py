import asyncio, time
from acd.app import Server
from tests.asterisk.calls import TestCaller, field

async def test_explore_stop(server, ami):
    caller = TestCaller(ami, "7000", "13800138000", "Test Caller")
    await caller.dial()
    await caller.wait_ivr_command("GET DATA")
    t0 = time.monotonic()
    mark = len(ami.events.events)
    await server.stop()
    print("stopped after", time.monotonic() - t0)
    await asyncio.sleep(16)
    for e in ami.events.events[mark:]:
        ch = field(e, "Channel")
        if ch == caller.hotline_channel or e.name.startswith("AGI"):
            print(round(time.monotonic()-t0,2), e.name, {k: v for k, v in e.fields.items() if k in ("Variable","Value","Command","Result","Application","AppData","Channel","Cause","Class")})
    srv2 = Server(server.cfg)
    await srv2.start()
    await caller.wait_ivr_command("GET DATA")
    print("again in IVR", time.monotonic() - t0)
    await srv2.stop()
