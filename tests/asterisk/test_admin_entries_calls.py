"""An agent and a skill group made on the admin API while the server runs take a real call:
Asterisk gets the new PJSIP endpoint and the group's number without a restart (the rendered
configuration, pjsip and dialplan reloaded through AMI: acd.asterisk.live), the new agent's
phone registers with the password shown once, and a caller dialling the new group's number
is bridged to them; a pjsip reload while that call is up leaves it up. Removed again, the
endpoint is gone from Asterisk."""
from __future__ import annotations

import asyncio

import aiohttp

from acd.ami.client import AmiError
from tests.asterisk.acd_fixtures import Caller, acd_config, mark, serving  # noqa: F401
from tests.asterisk.calls import until
from tests.asterisk.phones import SoftPhone
from tests.web_login import login

NEW_AGENT, NEW_GROUP, NEW_NUMBER = "1009", "pagegroup", "7151"


async def _endpoint_exists(ami, endpoint: str) -> bool:
    try:
        rows = await ami.action_list("PJSIPShowEndpoint", Endpoint=endpoint)
    except AmiError:
        return False
    return any(r.get("ObjectName") == endpoint for r in rows)


async def test_an_agent_and_a_group_made_on_the_admin_page_take_a_real_call(
        acd_config, ami, tmp_path):
    assert not await _endpoint_exists(ami, NEW_AGENT)
    admin_password = next(u.password for u in acd_config.web.users if u.role == "admin")
    admin_name = next(u.username for u in acd_config.web.users if u.role == "admin")
    phone = None
    async with serving(acd_config, tmp_path) as srv, \
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        base = f"http://127.0.0.1:{srv.http_port}"
        admin = await login(http, admin_name, admin_password, base)
        r = await admin.post("/api/admin/agents", json={"id": NEW_AGENT, "name": "Dora"})
        made = await r.json()
        assert r.status == 201 and made["asterisk"] == "reloaded", made
        assert await _endpoint_exists(ami, NEW_AGENT)
        r = await admin.post("/api/admin/groups", json={"name": NEW_GROUP,
                                                        "number": NEW_NUMBER})
        assert r.status == 201 and (await r.json())["asterisk"] == "reloaded"
        groups = {g["name"]: g for g in
                  (await (await admin.get("/api/admin/groups")).json())["groups"]}
        r = await admin.put(f"/api/admin/groups/{NEW_GROUP}/members/{NEW_AGENT}",
                            json={"level": 1, "version": groups[NEW_GROUP]["members_version"]})
        assert r.status == 200, await r.text()
        try:
            a = acd_config.asterisk
            phone = SoftPhone(NEW_AGENT, made["secrets"]["password"], a.sip_host, a.sip_port,
                              answer="auto")
            await phone.start()
            srv.runtime.login(NEW_AGENT)
            await until(lambda: srv.runtime.agent(NEW_AGENT)["reachable"],
                        "the new agent's phone registered")
            caller = await Caller(ami, NEW_NUMBER).dial()
            assert await caller.bridged() == NEW_AGENT
            # a pjsip reload while the call is up (an admin adds a supervisor with a phone):
            # the call goes on
            since = mark(ami)
            r = await admin.post("/api/admin/users", json={"username": "sup9", "phone": "9099"})
            assert r.status == 201 and (await r.json())["asterisk"] == "reloaded"
            await asyncio.sleep(1.0)
            assert not [e for e in ami.events.events[since:] if e.name == "Hangup"], \
                "a call dropped by the reload"
            assert srv.runtime.agent(NEW_AGENT)["state"] == "talking"
            await caller.hangup()
            await until(lambda: srv.runtime.agent(NEW_AGENT)["state"] == "idle",
                        "the new agent idle again")
        finally:
            if phone is not None:
                await phone.stop()
        srv.runtime.logout(NEW_AGENT)
        agents = {x["agent_id"]: x for x in
                  (await (await admin.get("/api/admin/agents")).json())["agents"]}
        r = await admin.delete(f"/api/admin/agents/{NEW_AGENT}"
                               f"?version={agents[NEW_AGENT]['version']}")
        assert r.status == 200 and (await r.json())["asterisk"] == "reloaded"
        groups = {g["name"]: g for g in
                  (await (await admin.get("/api/admin/groups")).json())["groups"]}
        r = await admin.delete(f"/api/admin/groups/{NEW_GROUP}"
                               f"?version={groups[NEW_GROUP]['version']}")
        assert r.status == 200, await r.text()
        assert not await _endpoint_exists(ami, NEW_AGENT)
