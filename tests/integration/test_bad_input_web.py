"""Bad input at the web edge, on the real aiohttp server with the real store and auth (the
``web`` fixture of test_web_api): CSRF on every state-changing route (enumerated from the
router, so a new route cannot escape), forged / tampered / expired session cookies, oversize
bodies (413 ``http.too_large``), malformed JSON, wrong types and missing fields on every route
that changes something (never a 500), huge and binary WebSocket messages, the cap on open
WebSockets per session and per address, and a flood of requests from one client.

After each refusal the side effect did not happen; afterwards the agent can still be driven
and the calls and their notes are as they were."""
from __future__ import annotations

import asyncio
import json
import secrets

import aiohttp
import pytest
from structlog.testing import capture_logs

from acd import config as configmod
from acd.tools import server_api
from acd.errors import UserError
from acd.web.api import CALL_ACTIONS, MAX_BODY
from acd.web.auth import (ADMIN, AGENT, AGENT_SELF, ANY, METRICS, PUBLIC, SAFE_METHODS,
                          SELF_ONLY, SUPERVISOR, Auth, access_for)
from tests.integration.test_web_api import web  # noqa: F401
from tests.integration.test_web_routes import SAMPLE, _state, routes
from tests.web_login import password_of

#: Who may use a route of each access rule (a session that passes the role check).
USER_FOR = {AGENT: "1001", AGENT_SELF: "1001", SELF_ONLY: "1001", ANY: "1001",
            SUPERVISOR: "sup", METRICS: "sup", ADMIN: "admin", None: "admin"}


def changing_routes(app):
    return [(m, c, p) for m, c, p in routes(app) if m not in SAFE_METHODS]


async def sessions(web):  # noqa: F811
    return {name: await web.as_user(name) for name in ("1001", "1002", "sup", "admin")}


async def _refusals(web, error_id):  # noqa: F811
    from acd.web.webdb import WebDb
    entries = await WebDb(web.store).audit_entries(limit=1000)
    return sum(1 for e in entries if (e["detail"] or {}).get("refused") == error_id)


# --- CSRF on every state-changing route ----------------------------------------------------------

async def test_csrf_is_checked_on_every_state_changing_route(web):  # noqa: F811
    await web.add_call("c1")
    table = changing_routes(web.server.app)
    assert len(table) >= 15, table
    users = await sessions(web)
    evil = {"Origin": "http://evil.example"}
    before = await _state(web)
    audited_before = await _refusals(web, "auth.csrf")
    tried = 0
    for method, canonical, path in table:
        access = access_for(method, canonical)
        if access == PUBLIC:            # the login: no session yet, so only the Origin counts
            r = await web.client().request(method, web.url(path), headers=evil,
                                           json={"username": "1001", "password": "x"})
            assert r.status == 403 and (await r.json())["error"] == "auth.csrf", (method, path)
            continue
        me = users[USER_FOR[access]]
        other = users["1002" if USER_FOR[access] != "1002" else "1001"]
        for headers in ({},                                             # no token
                        {"X-CSRF-Token": ""},                           # empty token
                        {"X-CSRF-Token": other.csrf},                   # another user's token
                        {"X-CSRF-Token": me.csrf[:-1] + ("A" if me.csrf[-1] != "A" else "B")},
                        {"X-CSRF-Token": me.csrf, **evil},              # right token, other site
                        {"X-CSRF-Token": me.csrf, "Origin": "null"}):
            r = await me.client.request(method, web.url(path), headers=headers, json={})
            assert r.status == 403, (method, path, headers, r.status)
            assert (await r.json())["error"] == "auth.csrf", (method, path, headers)
            tried += 1
    assert await _state(web) == before           # not one of them changed anything
    # every refusal is in the audit log
    assert await _refusals(web, "auth.csrf") - audited_before == tried
    # and the same requests with the token go through (the check is what refused them)
    r = await users["1001"].post("/api/agents/1001/login")
    assert r.status == 200 and web.rt.agent("1001")["state"] == "idle"


# --- missing, forged, tampered and expired sessions ------------------------------------------------

async def test_forged_tampered_and_expired_session_cookies_are_refused(web):  # noqa: F811
    a = await web.as_user("1001")
    token = a.client.cookie_jar.filter_cookies(web.server.make_url("/"))["acd_session"].value
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    forged = [secrets.token_urlsafe(32), flipped, token + "x", token[:-1], "", "x" * 5000,
              token.upper(), "../../etc/passwd", "%00" + token]
    for value in forged:
        c = aiohttp.ClientSession()
        web.sessions.append(c)
        for method, path in (("GET", "/api/agents/1001"), ("POST", "/api/agents/1001/login"),
                             ("GET", "/api/auth/me")):
            r = await c.request(method, web.url(path), headers={
                "Cookie": f"acd_session={value}", "X-CSRF-Token": a.csrf})
            assert r.status == 401, (value[:20], method, path, r.status)
            assert (await r.json())["error"] == "auth.required"
    assert web.rt.agent("1001")["state"] == "offline"
    assert (await a.get("/api/agents/1001")).status == 200      # the real one still works

    # expired: the cookie and its CSRF token together are refused, and nothing happens
    web.clock.now += web.cfg.web.session_hours * 3600 + 1
    r = await a.post("/api/agents/1001/login")
    assert r.status == 401 and (await r.json())["error"] == "auth.required"
    assert web.rt.agent("1001")["state"] == "offline"
    # logged out: the old cookie replayed is refused
    b = await web.as_user("1002")
    old = b.client.cookie_jar.filter_cookies(web.server.make_url("/"))["acd_session"].value
    assert (await b.post("/api/auth/logout")).status == 200
    c = aiohttp.ClientSession()
    web.sessions.append(c)
    r = await c.post(web.url("/api/agents/1002/login"),
                     headers={"Cookie": f"acd_session={old}", "X-CSRF-Token": b.csrf})
    assert r.status == 401 and web.rt.agent("1002")["state"] == "offline"


# --- oversize bodies ----------------------------------------------------------------------------------

async def test_oversize_bodies_get_a_413_json_error_on_every_route(web):  # noqa: F811
    users = await sessions(web)
    big = b'{"state": "' + b"x" * MAX_BODY + b'"}'
    before = await _state(web)
    for method, canonical, path in changing_routes(web.server.app):
        if canonical == "/api/admin/customers/import":
            continue                      # a CSV stream with its own limit (test_web_api)
        access = access_for(method, canonical)
        me = users[USER_FOR[access]] if access != PUBLIC else None
        client = me.client if me else web.client()
        headers = {"Content-Type": "application/json"}
        if me:
            headers["X-CSRF-Token"] = me.csrf
        r = await client.request(method, web.url(path), data=big, headers=headers)
        assert r.status == 413, (method, path, r.status)
        body = await r.json()
        assert body["error"] == "http.too_large" and "KiB" in body["message"], (path, body)
        # a body that arrives in chunks, without a length, is refused too where it is read
        if canonical in ("/api/agents/{agent}/state", "/api/auth/login"):
            async def chunks():
                for _ in range(MAX_BODY // 4096 + 2):
                    yield b" " * 4096
            r = await client.request(method, web.url(path), data=chunks(), headers=headers)
            assert r.status == 413 and (await r.json())["error"] == "http.too_large", path
    assert await _state(web) == before
    # the server is fine: a normal request right after
    r = await users["1001"].post("/api/agents/1001/state", json={"state": "idle"})
    assert r.status in (200, 409)


# --- malformed JSON, wrong types, missing fields -------------------------------------------------------

#: Routes that read a JSON body, with its fields.
JSON_FIELDS = {
    "/api/agents/{agent}/state": ("state", "reason"),
    "/api/agents/{agent}/call/transfer": ("to_agent", "to_group"),
    "/api/agents/{agent}/call/consult": ("to_agent", "to_group"),
    "/api/agents/{agent}/call/dial": ("number",),
    "/api/agents/{agent}/recent/{uniqueid}/note": ("text",),
    "/api/auth/login": ("username", "password"),
}
ENDS_SESSIONS = ("/api/auth/logout", "/api/admin/users/{username}/logout")
MALFORMED = [b"{", b"[]", b"null", b'"text"', b"1e999", b"NaN", b'{"a": }', b"\xff\xfe{}",
             b"[" * 20000 + b"]" * 20000, b'{"a": ' * 5000 + b"1" + b"}" * 5000,
             b"\x00\x01\x02", '{"state": "\udcff"}'.encode("utf-8", "surrogatepass")]
WRONG = [1, 1.5, True, None, [], {}, ["idle"], {"$ne": ""}, "x" * 5000, -1]


def with_call_control(rt):
    """Call control on the stand-in runtime, over the real core (as acd.runtime does)."""
    core_names = {"hold": "hold_call", "resume": "resume_call", "hangup": "hang_up"}
    seq = iter(range(1, 10**6))

    def control(name):
        def act(agent_id, *args, **kw):
            rt._check(agent_id)
            if name == "dial":
                kw["call_id"] = f"out-{next(seq)}"
            rt._run(getattr(rt.core, core_names.get(name, name))(agent_id, *args, rt.now, **kw)
                    if name != "dial" else rt.core.dial(agent_id, args[0], rt.now, **kw))
            return rt.agent(agent_id)
        return act

    def no_recording(agent_id):
        rt._check(agent_id)             # as the runtime's recorder: this call records nothing
        raise UserError("recording.none", f"agent {agent_id} has no call being recorded")

    for name in CALL_ACTIONS.values():
        setattr(rt, name, no_recording if name.endswith("_recording") else control(name))


async def test_malformed_json_wrong_types_and_missing_fields_never_give_a_500(web):  # noqa: F811
    with_call_control(web.rt)
    await web.add_call("c1")
    users = await sessions(web)
    table = changing_routes(web.server.app)
    assert {c for _m, c, _p in table} >= set(JSON_FIELDS)
    before_call = await web.store.get_call("c1")

    async def send(method, canonical, path, data):
        access = access_for(method, canonical)
        me = users[USER_FOR[access]] if access != PUBLIC else None
        client = me.client if me else web.client()
        headers = {"Content-Type": "application/json", **({"X-CSRF-Token": me.csrf} if me else {})}
        r = await client.request(method, web.url(path), data=data, headers=headers)
        if r.status == 200 and canonical in ENDS_SESSIONS:      # logged out: log in again
            name = USER_FOR[access] if canonical == "/api/auth/logout" else SAMPLE["username"]
            users[name] = await web.as_user(name)
        assert r.status < 500 or r.status == 503, (method, path, data[:40], r.status)
        if r.status >= 400:
            body = await r.json()
            assert isinstance(body.get("error"), str) and body.get("message"), (path, body)
            assert r.status != 503 or body["error"] == "acd.unavailable"   # flows not running
        return r.status, (await r.json()) if r.content_type == "application/json" else None

    for method, canonical, path in table:
        for data in MALFORMED:
            status, body = await send(method, canonical, path, data)
            if canonical in JSON_FIELDS:
                assert status == 400 and body["error"] == "http.bad_request", (path, data[:20])
        fields = JSON_FIELDS.get(canonical, ("state", "text", "number"))
        for name in fields:
            for value in WRONG:
                good = {"state": "idle", "text": "ok", "number": "13800138000",
                        "username": "1001", "password": "x", "to_group": "sales"}
                body = {k: good[k] for k in fields if k in good}
                body[name] = value
                status, answer = await send(method, canonical, path,
                                            json.dumps(body).encode())
                if canonical in JSON_FIELDS and not (isinstance(value, str) and len(value) < 200):
                    assert status in (400, 401, 409), (path, name, value, status)
        if canonical in JSON_FIELDS:       # every field missing: {}
            status, answer = await send(method, canonical, path, b"{}")
            assert status == 400 and answer["error"] == "http.bad_request", (path, answer)

    # nobody is stuck: the agent can be driven through its states; the record is whole
    a = users["1001"]
    assert web.rt.agent("1001")["state"] in ("offline", "idle", "break")
    if web.rt.agent("1001")["state"] != "offline":
        assert (await a.post("/api/agents/1001/logout")).status == 200
    for path, body, state in (("/api/agents/1001/login", None, "idle"),
                              ("/api/agents/1001/state", {"state": "break", "reason": "lunch"},
                               "break"),
                              ("/api/agents/1001/state", {"state": "idle"}, "idle"),
                              ("/api/agents/1001/logout", None, "offline")):
        r = await a.post(path, json=body)
        assert r.status == 200, (path, await r.text())
        assert web.rt.agent("1001")["state"] == state
    assert await web.store.get_call("c1") == before_call       # the call record is whole


# --- WebSockets: huge and binary messages, and the cap on open ones -------------------------------------

async def _snapshot(ws):
    msg = await asyncio.wait_for(ws.receive(), 30)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    assert msg.json()["type"] == "snapshot"


async def test_a_huge_websocket_message_closes_that_socket_only(web):  # noqa: F811
    a = await web.as_user("1001")
    keep = await a.ws_connect("/api/agents/1001/ws")
    await _snapshot(keep)
    for junk in (b"\x00\xff" * 100, b"\xc3\x28"):               # binary, ignored
        await keep.send_bytes(junk)
    await keep.send_str("{not json")                           # text we do not act on
    ws = await a.ws_connect("/api/agents/1001/ws")
    await _snapshot(ws)
    await ws.send_str("x" * 100_000)
    msg = await asyncio.wait_for(ws.receive(), 30)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                        aiohttp.WSMsgType.CLOSING), msg
    assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    # the other socket still gets live events, and a new one gets its snapshot
    assert (await a.post("/api/agents/1001/login")).status == 200
    msg = await asyncio.wait_for(keep.receive(), 30)
    assert msg.type == aiohttp.WSMsgType.TEXT and msg.json()["type"] != "snapshot", msg
    again = await a.ws_connect("/api/agents/1001/ws")
    await _snapshot(again)
    for w in (keep, again):
        await w.close()


async def test_websockets_are_capped_per_session_and_per_address(web):  # noqa: F811
    web.auth.ws_per_session, web.auth.ws_per_address = 2, 3
    a = await web.as_user("1001")
    s = await web.as_user("sup")
    opened = []
    for _ in range(2):
        ws = await a.ws_connect("/api/agents/1001/ws")
        await _snapshot(ws)
        opened.append(ws)
    with capture_logs() as logs:
        extra = await a.ws_connect("/api/agents/1001/ws")       # the session's third
        msg = await asyncio.wait_for(extra.receive(), 30)
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1008, msg
    assert "session" in msg.extra and "at most 2" in msg.extra
    refused = [e for e in logs if e["event"] == "web.ws_refused"]
    assert refused and refused[0]["user"] == "1001" and refused[0]["per"] == "session"
    # another login from the same address: one more fits, then the address is full
    ws = await s.ws_connect("/api/supervisor/ws")
    await _snapshot(ws)
    opened.append(ws)
    with capture_logs() as logs:
        extra = await s.ws_connect("/api/supervisor/ws")
        msg = await asyncio.wait_for(extra.receive(), 30)
    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1008 and "address" in msg.extra
    assert [e["per"] for e in logs if e["event"] == "web.ws_refused"] == ["address"]
    # the refused ones hold nothing: one closed, one more may open
    await opened.pop(0).close()
    for _ in range(100):                      # the server sees the close (bounded wait)
        if len(web.auth._live) < 3:
            break
        await asyncio.sleep(0.05)
    ws = await s.ws_connect("/api/supervisor/ws")
    await _snapshot(ws)
    opened.append(ws)
    for w in opened:
        await w.close()


async def test_the_load_tools_agent_pages_say_why_the_server_refused_them(web):  # noqa: F811
    """`acd load --pages` (and the bench) opens every page from one login: over the cap, the
    error names the server's close code and reason instead of only counting."""
    web.auth.ws_per_session, web.auth.ws_per_address = 1, 10
    login = ("admin", password_of(web.cfg, "admin"))
    async with server_api.ServerApi(web.url("/"), login) as api:
        pages = server_api.AgentPages(api, ["1001", "1002"])
        with pytest.raises(UserError) as err:
            await pages.start(timeout=5)
        await pages.stop()
    assert err.value.id == "load.pages"
    assert "only 1 of 2" in err.value.message and "1008" in err.value.message
    assert "at most 1" in err.value.message
    web.auth.ws_per_session = 2
    async with server_api.ServerApi(web.url("/"), login) as api:
        pages = server_api.AgentPages(api, ["1001", "1002"])
        await pages.start(timeout=30)
        await pages.stop()
    assert pages.refused == ""


def test_the_websocket_caps_come_from_the_config(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("web:\n  websockets_per_session: 3\n  websockets_per_address: 7\n")
    cfg = configmod.load(path, environ={"ACD_WEB__WEBSOCKETS_PER_ADDRESS": "9"})
    auth = Auth.from_config(None, cfg)
    assert (auth.ws_per_session, auth.ws_per_address) == (3, 9)


# --- many requests from one client --------------------------------------------------------------------

async def test_a_flood_from_one_client_does_not_starve_another(web):  # noqa: F811
    flooder = await web.as_user("1001")
    other = await web.as_user("sup")
    bad = [flooder.post("/api/agents/1001/state", data=b"{", headers={
        "Content-Type": "application/json"}) for _ in range(100)]
    reads = [flooder.get("/api/agents/1001") for _ in range(200)]
    logins = [web.client().post(web.url("/api/auth/login"),
                                json={"username": "1002", "password": "wrong-password"})
              for _ in range(20)]
    flood = asyncio.gather(*(asyncio.ensure_future(x) for x in bad + reads + logins))
    # while the flood is on, the other user's requests are answered
    r = await asyncio.wait_for(other.get("/api/agents"), 120)
    assert r.status == 200 and set((await r.json())["agents"]) == {"1001", "1002"}
    answers = await asyncio.wait_for(flood, 300)
    statuses = [r.status for r in answers]
    assert statuses[:100] == [400] * 100 and statuses[100:300] == [200] * 200
    # the login limit holds for attempts sent all at once: 3 were checked, the rest refused
    assert sorted(statuses[300:]) == [401] * web.cfg.web.login_attempts + [429] * (
        20 - web.cfg.web.login_attempts)
    r = await other.get("/api/agents/1001")
    assert r.status == 200 and r.headers["Content-Type"].startswith("application/json")
