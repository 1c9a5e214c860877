"""The agent page's transfer picker: an agent reads the other agents with their state and
the groups with their queues; never another agent's list, never callers' numbers."""
from __future__ import annotations

from tests.integration.test_web_api import web  # noqa: F401  (the fixture)


async def test_an_agent_gets_the_others_and_the_groups_and_only_their_own(web):
    web.rt.login("1002")
    alice = await web.as_user("1001")
    r = await alice.get(web.url("/api/agents/1001/targets"))
    assert r.status == 200
    body = await r.json()
    assert [a["agent_id"] for a in body["agents"]] == ["1002"]
    assert body["agents"][0]["state"] == "idle" and body["agents"][0]["name"] == "Bob"
    assert body["groups"] == [{"name": "sales", "waiting": 0, "free": 1}]
    assert "caller_number" not in str(body)
    r = await alice.get(web.url("/api/agents/1002/targets"))
    assert r.status == 403
