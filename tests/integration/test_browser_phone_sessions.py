"""The web sessions a browser phone's SIP password is bound to: every way a session ends is
told to ``Auth.session_ended`` (acd.web.browser_phone takes the password back there): the
user's logout, and an admin ending the user's sessions while their page is open."""
from __future__ import annotations

import asyncio

from tests.integration.test_web_api import web  # noqa: F401


async def _told(ended: list[str], n: int) -> None:
    for _ in range(200):
        if len(set(ended)) >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"session_ended told {ended}, wanted {n} sessions")


async def test_logout_and_an_admins_end_of_sessions_are_told(web):
    ended: list[str] = []

    async def told(key: str) -> None:
        ended.append(key)
    web.auth.session_ended.append(told)

    alice = await web.as_user("1001")
    async with alice.ws_connect("/api/agents/1001/ws"):      # the agent page, open
        admin = await web.as_user("admin")
        r = await admin.post("/api/admin/users/1001/logout")
        assert r.status == 200 and (await r.json())["ended"] == 1
        await _told(ended, 1)
    bob = await web.as_user("1002")
    assert not [k for k in ended if k != ended[0]]          # Bob's session lives on
    r = await bob.post("/api/auth/logout")
    assert r.status == 200
    await _told(ended, 2)
    assert len(set(ended)) == 2 and all(len(k) == 64 for k in ended)   # the sessions' keys
