"""Every route of the app, enumerated from its router (so a new route cannot be forgotten):
it has an access rule; without a session it is refused (401, or a redirect to the login page
for a page); with a role it does not allow it is refused (403) and changes nothing. WebSocket
routes are tried as WebSockets too."""
from __future__ import annotations

import re

import aiohttp
import pytest

from acd.web.auth import PUBLIC, access_for, allowed
from tests.integration.test_web_api import WS_HEADERS, web  # noqa: F401

SAMPLE = {"agent": "1001", "uniqueid": "c1", "username": "sup"}
USERS = {"agent 1001": {"role": "agent", "agent_id": "1001", "login": "1001"},
         "agent 1002": {"role": "agent", "agent_id": "1002", "login": "1002"},
         "supervisor": {"role": "supervisor", "agent_id": None, "login": "sup"},
         "admin": {"role": "admin", "agent_id": None, "login": "admin"}}


def routes(app):
    out = []
    for route in app.router.routes():
        res = route.resource
        if res is None or route.method == "HEAD":
            continue
        canonical = res.canonical
        path = "/static/app.css" if canonical == "/static" else re.sub(
            r"\{([^}:]+)(:[^}]*)?\}", lambda m: SAMPLE.get(m.group(1), "x"), canonical)
        methods = ["GET", "POST", "PUT", "DELETE"] if route.method == "*" else [route.method]
        out += [(m, canonical, path) for m in methods]
    return out


async def _state(web):  # noqa: F811
    agents = {a: v.get("state") for a, v in web.rt.agents().items()}
    from acd.web.webdb import WebDb
    recent = await WebDb(web.store).recent_calls("1001")
    return agents, [(c["uniqueid"], c["note"]) for c in recent]


async def test_every_route_has_a_rule_and_refuses_strangers_and_wrong_roles(web):  # noqa: F811
    await web.add_call("c1")
    app = web.server.app
    table = routes(app)
    assert len(table) > 30
    missing = [(m, c) for m, c, _ in table if access_for(m, c) is None]
    assert missing == [], f"routes without an access rule in acd.web.auth.RULES: {missing}"
    stranger = web.client()
    sessions = {name: await web.as_user(u["login"]) for name, u in USERS.items()}
    before = await _state(web)
    checked = refused = 0
    for method, canonical, path in table:
        access = access_for(method, canonical)
        r = await stranger.request(method, web.url(path), allow_redirects=False, json={})
        if access == PUBLIC:
            assert r.status not in (401, 403), (method, path)
            continue
        checked += 1
        if r.status == 302:
            assert r.headers["Location"].startswith("/login?next="), (method, path)
            assert method == "GET" and not path.startswith("/api/")
        else:
            assert r.status == 401, (method, path, r.status)
            assert (await r.json())["error"] == "auth.required"
        for name, user in USERS.items():
            if allowed(access, user, SAMPLE["agent"] if "{agent}" in canonical else None):
                continue
            s = sessions[name]
            r = await getattr(s, method.lower())(path, json={}) if method != "GET" else await s.get(path)
            assert r.status == 403, (name, method, path, r.status)
            if r.content_type == "text/html":     # a page: a page that says so, not JSON
                assert method == "GET" and not path.startswith("/api/")
                assert "auth.forbidden" in await r.text()
            else:
                assert (await r.json())["error"] == "auth.forbidden"
            refused += 1
    assert refused > 30
    assert await _state(web) == before          # nothing a refused request asked for happened


async def test_websockets_are_refused_to_strangers_and_wrong_roles(web):  # noqa: F811
    app = web.server.app
    ws_paths = sorted({p for m, c, p in routes(app) if m == "GET" and c.endswith("/ws")})
    assert ws_paths == ["/api/agents/1001/ws", "/api/supervisor/ws"]
    stranger = web.client()
    other = await web.as_user("1002")
    for path in ws_paths:
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await stranger.ws_connect(web.url(path))
        assert e.value.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await other.ws_connect(path)
        assert e.value.status == 403
        r = await other.get(path, headers=WS_HEADERS)
        assert r.status == 403
