"""Memberships changed over the API while running: a supervisor moves an agent, the ACD
follows, the store keeps it, the audit log says before and after; a stale version is a
conflict, not an overwrite; bad input has stable ids and changes nothing."""
from __future__ import annotations

from acd.web.webdb import WebDb
from tests.integration.test_web_api import web  # noqa: F401  (the fixture)

URL = "/api/admin/groups/sales/members/{agent}"


async def _version(client, web):
    r = await client.get(web.url("/api/admin/groups"))
    assert r.status == 200
    [sales] = (await r.json())["groups"]
    return sales["members"], sales["members_version"]


async def test_a_supervisor_changes_a_level_removes_and_adds_a_member(web):
    sup = await web.as_user("sup")
    members, v0 = await _version(sup, web)
    assert members == {"1001": 5, "1002": 3}
    r = await sup.put(web.url(URL.format(agent="1002")), json={"level": 7, "version": v0})
    assert r.status == 200
    body = await r.json()
    assert body["members"] == {"1001": 5, "1002": 7}
    members, v1 = await _version(sup, web)
    assert members == {"1001": 5, "1002": 7} and v1 == body["members_version"] != v0
    assert web.rt.core.snapshot_queues(web.rt.now)["sales"]["agents"]["offline"] == 2

    r = await sup.delete(web.url(URL.format(agent="1002") + f"?version={v1}"))
    assert r.status == 200 and (await r.json())["members"] == {"1001": 5}
    assert web.rt.core.snapshot_queues(web.rt.now)["sales"]["agents"]["offline"] == 1
    rows = {(x.group, x.agent): x for x in await web.store.member_rows()}
    assert rows[("sales", "1002")].level is None          # kept as removed: survives a restart
    audit = [e for e in await WebDb(web.store).audit_entries(limit=50)
             if e["action"].startswith(("PUT /api/admin/groups", "DELETE /api/admin/groups"))]
    assert [(e["detail"]["before"], e["detail"]["after"]) for e in reversed(audit)] == [
        (3, 7), (7, None)]
    assert all(e["username"] == "sup" for e in audit)


async def test_a_stale_version_is_a_conflict_and_changes_nothing(web):
    admin, sup = await web.as_user("admin"), await web.as_user("sup")
    _, v0 = await _version(sup, web)
    r = await admin.put(web.url(URL.format(agent="1001")), json={"level": 1, "version": v0})
    assert r.status == 200
    r = await sup.put(web.url(URL.format(agent="1002")), json={"level": 9, "version": v0})
    assert r.status == 409 and (await r.json())["error"] == "admin.conflict"
    members, _ = await _version(sup, web)
    assert members == {"1001": 1, "1002": 3}


async def test_bad_changes_have_stable_ids_and_agents_may_not(web):
    agent = await web.as_user("1001")
    r = await agent.put(web.url(URL.format(agent="1001")), json={"level": 9, "version": "x"})
    assert r.status == 403
    sup = await web.as_user("sup")
    _, v = await _version(sup, web)
    for url, body, status, error in (
            ("/api/admin/groups/nope/members/1001", {"level": 1, "version": v}, 404,
             "group.unknown"),
            (URL.format(agent="9999"), {"level": 1, "version": v}, 404, "agent.unknown"),
            (URL.format(agent="1001"), {"level": "high", "version": v}, 400, "admin.bad_level"),
            (URL.format(agent="1001"), {"level": True, "version": v}, 400, "admin.bad_level"),
            (URL.format(agent="1001"), {"level": -1, "version": v}, 400, "admin.bad_level"),
            (URL.format(agent="1001"), {"level": 1}, 400, "admin.version_needed")):
        r = await sup.put(web.url(url), json=body)
        assert r.status == status and (await r.json())["error"] == error, (url, body)
    r = await sup.delete(web.url(URL.format(agent="1002") + f"?version={v}"))
    assert r.status == 200
    _, v_after = await _version(sup, web)
    r = await sup.delete(web.url(URL.format(agent="1002") + f"?version={v_after}"))
    assert r.status == 404 and (await r.json())["error"] == "admin.not_member"
    r = await sup.put(web.url(URL.format(agent="1002")), json={"level": 3, "version": v_after})
    assert r.status == 200
    _, v = await _version(sup, web)
    r = await sup.put(web.url(URL.format(agent="1001")), data="not json",
                      headers={"Content-Type": "application/json"})
    assert r.status == 400
    members, v2 = await _version(sup, web)
    assert members == {"1001": 5, "1002": 3} and v2 == v
