import asyncio

from acd.web.hub import Hub


async def test_publish_reaches_only_the_topic_in_order():
    hub = Hub()
    a, b = hub.subscribe("agent:1001"), hub.subscribe("agent:1002")
    hub.publish("agent:1001", {"type": "ring"})
    hub.publish("agent:1001", {"type": "answered"})
    assert (await a.get())["type"] == "ring"
    assert (await a.get())["type"] == "answered"
    assert b.queue.empty()


async def test_slow_subscriber_is_cut_off_not_silently_skipped():
    hub = Hub(limit=3)
    slow = hub.subscribe("supervisor")
    for i in range(5):
        hub.publish("supervisor", {"i": i})
    assert slow.overflowed
    assert hub.subscribers("supervisor") == 0
    got = []
    while (m := await slow.get()) is not None:
        got.append(m)
    assert got == []  # ends at once: the page must reconnect and take a fresh snapshot


async def test_close_wakes_a_waiting_reader():
    hub = Hub()
    sub = hub.subscribe("agent:1")
    reader = asyncio.ensure_future(sub.get())
    await asyncio.sleep(0)
    sub.close()
    assert await asyncio.wait_for(reader, 5) is None
