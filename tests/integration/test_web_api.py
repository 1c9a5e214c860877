"""The web layer on a real aiohttp server on loopback with a real store: logins, sessions,
roles, CSRF, WebSocket checks, the audit log, recent calls and notes, the screen pop, the
admin API. The ACD is a thin stand-in over the REAL core (as in test_http_api); real calls
are in tests/asterisk and tests/browser."""
from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest
import structlog
import yaml
from aiohttp.test_utils import TestServer

from acd import config as configmod
from acd.runtime.channels import Channels
from acd.runtime.monitor import Monitors
from acd.store.db import Store
from acd.web.api import make_app
from acd.web.auth import Auth, users_from_config
from acd.web.hub import Hub
from acd.web.pages import WebContext
from acd.web.webdb import WebDb
from tests.integration.test_http_api import CoreRuntime
from tests.web_login import FAST_PASSWORDS, login, password_of
from tests.conftest import BOTH_DATABASES

pytestmark = BOTH_DATABASES

WS_HEADERS = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
              "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


class Runtime(CoreRuntime):
    def call_info(self, call_id):
        return self.core.call_info(call_id)

    # monitoring as the real runtime's, with no supervisor phone configured
    def _monitors(self):
        if not hasattr(self, "_mon"):
            self._mon = Monitors(Channels(), None, acd=self.core, log=structlog.get_logger(),
                                 clock=lambda: self.now, phones={})
        return self._mon

    def monitor(self, user, mode, *, call_id=None, agent_id=None):
        return self._monitors().start(user, mode, call_id=call_id, agent_id=agent_id)

    def monitor_mode(self, user, mode):
        return self._monitors().change(user, mode)

    def monitor_stop(self, user):
        return self._monitors().stop(user)

    def monitoring(self, user):
        return self._monitors().view(user)


class Clock:
    def __init__(self):
        self.now = datetime.now(timezone.utc).timestamp()

    def __call__(self):
        return self.now


class Web:
    def __init__(self, server, cfg, store, runtime, auth, clock):
        self.server, self.cfg, self.store, self.rt, self.auth, self.clock = (
            server, cfg, store, runtime, auth, clock)
        self.sessions: list[aiohttp.ClientSession] = []

    def url(self, path=""):
        return str(self.server.make_url(path))

    def client(self) -> aiohttp.ClientSession:
        s = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.sessions.append(s)
        return s

    async def as_user(self, name):
        return await login(self.client(), name, password_of(self.cfg, name), base=self.url())

    async def add_call(self, uid, number="13800138000", name="Caller", agent="1001",
                       reason="caller_hangup", at=None):
        """A finished call answered by ``agent``, in the store as the runtime writes it."""
        at = at or datetime.now(timezone.utc)
        s = self.store
        await s.call_arrived(uniqueid=uid, channel=f"PJSIP/x-{uid}", caller_number=number,
                             caller_name=name, did="7000", at=at)
        await s.key_pressed(uid, node="menu", keys="1", at=at)
        await s.call_event(uid, "queued", at=at, detail={"group": "sales"})
        await s.call_update(uid, skill_group="sales", answered_at=at + timedelta(seconds=3))
        await s.call_event(uid, "answered", at=at + timedelta(seconds=3),
                           detail={"group": "sales", "agent": agent})
        await s.call_ended(uid, reason=reason, at=at + timedelta(seconds=30))


@pytest.fixture
async def web(tmp_path, db_url):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({
        "agents": [{"id": "1001", "name": "Alice"}, {"id": "1002", "name": "Bob"}],
        "groups": [{"name": "sales", "members": {"1001": 5, "1002": 3}}],
        "web": {"users": [{"username": "admin", "role": "admin"},
                          {"username": "sup", "role": "supervisor"}],
                "login_attempts": 3, "login_window": 60,
                "side_panels": [{"title": "Orders",
                                 "url": "https://erp.example/orders?customer={customer_id}&n={caller_number}"}]}}))
    cfg, _ = configmod.with_secrets(configmod.load(tmp_path / "config.yaml", environ={}))
    store = Store(db_url)
    hub = Hub()
    rt = Runtime(hub)
    clock = Clock()
    auth = Auth.from_config(WebDb(store), cfg, passwords=FAST_PASSWORDS, clock=clock)
    await auth.sync_users(users_from_config(cfg))
    app = make_app(store=store, ami=None, agi=None, cfg=cfg, runtime=rt, hub=hub,
                   web_ctx=WebContext(cfg, store, auth, rt, clock=clock))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    w = Web(server, cfg, store, rt, auth, clock)
    yield w
    for s in w.sessions:
        await s.close()
    await server.close()
    await store.close()


async def _audit(web):
    return await WebDb(web.store).audit_entries(limit=100)


# --- logins and sessions -------------------------------------------------------------------------

async def test_login_sets_a_strict_httponly_cookie_and_me_tells_the_role(web):
    c = web.client()
    r = await c.post(web.url("/api/auth/login"), json={"username": "1001",
                                                       "password": password_of(web.cfg, "1001")})
    assert r.status == 200
    body = await r.json()
    assert body["role"] == "agent" and body["agent_id"] == "1001" and body["home"] == "/agent"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    me = await (await c.get(web.url("/api/auth/me"))).json()
    assert me["username"] == "1001" and me["csrf"] == body["csrf"]
    # only the token's hash is stored
    token = c.cookie_jar.filter_cookies(web.server.make_url("/"))["acd_session"].value
    async with web.store.session() as s:
        from sqlalchemy import select

        from acd.store.models import WebSession, WebUser
        rows = list(await s.scalars(select(WebSession)))
        users = {u.username: u.password_hash for u in await s.scalars(select(WebUser))}
    assert len(rows) == 1 and token not in rows[0].token_hash
    assert users["1001"].startswith("$argon2id$") and set(users) == {"1001", "1002", "admin", "sup"}


async def test_wrong_password_unknown_user_and_the_rate_limit(web):
    c = web.client()
    for name, pw in (("1001", "wrong-password"), ("nobody", "whatever1"), ("1001", "")):
        r = await c.post(web.url("/api/auth/login"), json={"username": name, "password": pw})
        assert r.status in (400, 401)
        assert (await r.json())["error"] in ("auth.bad_credentials", "http.bad_request")
    for pw in ("wrong-2", "wrong-3"):
        r = await c.post(web.url("/api/auth/login"), json={"username": "1001", "password": pw})
        assert r.status == 401
    # third failure for this user from this address: now refused even with the right password
    r = await c.post(web.url("/api/auth/login"), json={"username": "1001",
                                                       "password": password_of(web.cfg, "1001")})
    assert r.status == 429 and (await r.json())["error"] == "auth.rate_limited"
    assert int(r.headers["Retry-After"]) > 0
    assert "acd_session" not in c.cookie_jar.filter_cookies(web.server.make_url("/"))
    web.clock.now += 61
    r = await c.post(web.url("/api/auth/login"), json={"username": "1001",
                                                       "password": password_of(web.cfg, "1001")})
    assert r.status == 200
    entries = [e for e in await _audit(web) if e["action"] == "login"]
    assert [e["status"] for e in entries][:2] == [200, 429]
    assert any(e["detail"].get("error") == "auth.bad_credentials" for e in entries)


async def test_one_users_failed_logins_never_lock_another_out_behind_one_address(web):
    """20 bad logins for 1001 from one address refused 1002's right password (a whole office
    behind one proxy locked out). Now only 1001 is held back; many names failing from one
    address (a scan) still holds the address back."""
    c = web.client()
    for i in range(20):
        r = await c.post(web.url("/api/auth/login"),
                         json={"username": "1001", "password": f"wrong-{i}"})
        assert r.status in (401, 429)
    r = await c.post(web.url("/api/auth/login"), json={"username": "1001",
                                                       "password": password_of(web.cfg, "1001")})
    assert r.status == 429                                   # 1001 from here: held back
    r = await c.post(web.url("/api/auth/login"), json={"username": "1002",
                                                       "password": password_of(web.cfg, "1002")})
    assert r.status == 200                                   # 1002: not 1001's failures
    web.clock.now += 61
    other = web.client()
    limit = web.cfg.web.login_attempts * 4
    for i in range(limit):
        r = await other.post(web.url("/api/auth/login"),
                             json={"username": f"user{i}", "password": "wrong-password"})
        assert r.status == 401
    r = await other.post(web.url("/api/auth/login"),
                         json={"username": "1002", "password": password_of(web.cfg, "1002")})
    assert r.status == 429 and (await r.json())["error"] == "auth.rate_limited"


async def test_a_session_expires_and_logout_ends_it(web):
    a = await web.as_user("1001")
    assert (await a.get("/api/agents/1001")).status == 200
    web.clock.now += web.cfg.web.session_hours * 3600 + 1
    r = await a.get("/api/agents/1001")
    assert r.status == 401 and (await r.json())["error"] == "auth.required"
    b = await web.as_user("1002")
    r = await b.post("/api/auth/logout")
    assert r.status == 200
    assert (await b.get("/api/agents/1002")).status == 401


async def test_pages_redirect_to_the_login_and_refuse_the_wrong_role(web):
    c = web.client()
    r = await c.get(web.url("/agent"), allow_redirects=False)
    assert r.status == 302 and r.headers["Location"] == "/login?next=/agent"
    r = await c.get(web.url("/login"))
    assert r.status == 200 and "Content-Security-Policy" in r.headers
    a = await web.as_user("1001")
    assert (await a.get("/agent")).status == 200
    r = await a.get("/supervisor")
    # a page with the way back, not raw JSON (a newcomer saw {"error": "auth.forbidden"})
    assert r.status == 403 and r.content_type == "text/html"
    page = await r.text()
    assert "auth.forbidden" in page and '<a id="home" href="/agent">' in page
    r = await a.get("/api/queues")                            # the API still answers JSON
    assert r.status == 403 and (await r.json())["error"] == "auth.forbidden"
    s = await web.as_user("sup")
    assert (await s.get("/supervisor")).status == 200 and (await s.get("/admin")).status == 403
    r = await s.get("/", allow_redirects=False)
    assert r.headers["Location"] == "/supervisor"


# --- CSRF, roles, WebSockets -----------------------------------------------------------------

async def test_csrf_and_origin_are_checked_and_a_refusal_changes_nothing(web):
    a = await web.as_user("1001")
    c = a.client
    r = await c.post(web.url("/api/agents/1001/login"))                    # no token
    assert r.status == 403 and (await r.json())["error"] == "auth.csrf"
    r = await c.post(web.url("/api/agents/1001/login"), headers={"X-CSRF-Token": "forged"})
    assert r.status == 403
    r = await a.post("/api/agents/1001/login", headers={"Origin": "http://evil.example"})
    assert r.status == 403 and (await r.json())["error"] == "auth.csrf"
    # this host, but another scheme: not this site (the scheme was not looked at)
    r = await a.post("/api/agents/1001/login",
                     headers={"Origin": web.url("").rstrip("/").replace("http://", "https://")})
    assert r.status == 403 and (await r.json())["error"] == "auth.csrf"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert web.rt.agent("1001")["state"] == "offline"
    r = await a.post("/api/agents/1001/login", headers={"Origin": web.url("").rstrip("/")})
    assert r.status == 200 and web.rt.agent("1001")["state"] == "idle"
    # every response is taken for the type it says (JSON never sniffed into HTML)
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    refused = [e for e in await _audit(web) if e["detail"].get("refused") == "auth.csrf"]
    assert len(refused) == 4


async def test_an_agent_cannot_touch_another_agent_and_supervisors_can(web):
    a = await web.as_user("1001")
    for method, path in (("post", "/api/agents/1002/login"), ("post", "/api/agents/1002/state"),
                         ("get", "/api/agents/1002"), ("get", "/api/agents"),
                         ("get", "/api/queues"), ("get", "/api/admin/calls")):
        r = await getattr(a, method)(path, json={"state": "break"} if method == "post" else None)
        assert r.status == 403 and (await r.json())["error"] == "auth.forbidden", path
    assert web.rt.agent("1002")["state"] == "offline"
    s = await web.as_user("sup")
    assert (await s.post("/api/agents/1002/login")).status == 200
    r = await s.post("/api/agents/1002/state", json={"state": "break", "reason": "forced"})
    assert r.status == 200 and web.rt.agent("1002")["state"] == "break"
    entry = next(e for e in await _audit(web) if e["action"] == "POST /api/agents/{agent}/state"
                 and e["status"] == 200)
    assert entry["username"] == "sup" and entry["target"] == "/api/agents/1002/state"
    assert entry["detail"]["body"] == {"state": "break", "reason": "forced"}


async def test_websockets_need_the_session_the_role_and_this_origin(web):
    c = web.client()
    r = await c.get(web.url("/api/agents/1001/ws"), headers=WS_HEADERS)
    assert r.status == 401
    a = await web.as_user("1001")
    r = await a.get("/api/agents/1002/ws", headers=WS_HEADERS)
    assert r.status == 403
    r = await a.get("/api/supervisor/ws", headers=WS_HEADERS)
    assert r.status == 403
    r = await a.get("/api/agents/1001/ws", headers={**WS_HEADERS, "Origin": "http://evil.example"})
    assert r.status == 403 and (await r.json())["error"] == "auth.csrf"
    async with a.ws_connect("/api/agents/1001/ws", origin=web.url("").rstrip("/")) as ws:
        first = await ws.receive_json(timeout=10)
        assert first["type"] == "snapshot"
    s = await web.as_user("sup")
    async with s.ws_connect("/api/supervisor/ws") as ws:
        assert (await ws.receive_json(timeout=10))["type"] == "snapshot"


async def test_metrics_take_a_supervisor_or_the_bearer_token(web):
    c = web.client()
    assert (await c.get(web.url("/metrics"))).status == 401
    r = await c.get(web.url("/metrics"), headers={"Authorization": "Bearer wrong"})
    assert r.status == 401
    r = await c.get(web.url("/metrics"), headers={"Authorization": f"Bearer {web.cfg.web.metrics_token}"})
    assert r.status == 200 and "# TYPE acd_queue_waiting gauge" in await r.text()
    a = await web.as_user("1001")
    assert (await a.get("/metrics")).status == 403


# --- recent calls, notes, screen pop -----------------------------------------------------------

async def test_recent_calls_last_ten_delete_brings_the_next_older_and_notes(web):
    base = datetime.now(timezone.utc) - timedelta(hours=1)
    for i in range(12):
        await web.add_call(f"c{i:02d}", at=base + timedelta(minutes=i))
    await web.add_call("other", agent="1002", at=base)
    a = await web.as_user("1001")
    calls = (await (await a.get("/api/agents/1001/recent")).json())["calls"]
    assert [c["uniqueid"] for c in calls] == [f"c{i:02d}" for i in range(11, 1, -1)]
    r = await a.delete("/api/agents/1001/recent/c05")
    calls = (await r.json())["calls"]
    assert len(calls) == 10 and "c05" not in [c["uniqueid"] for c in calls]
    assert calls[-1]["uniqueid"] == "c01"                 # the next older came in
    assert await web.store.get_call("c05") is not None      # the record stays
    r = await a.put("/api/agents/1001/recent/c11/note", json={"text": "wants a refund <b>now</b>"})
    assert r.status == 200
    calls = (await (await a.get("/api/agents/1001/recent")).json())["calls"]
    assert calls[0]["note"] == "wants a refund <b>now</b>"
    # not the agent's call: refused, nothing written
    r = await a.put("/api/agents/1001/recent/other/note", json={"text": "x"})
    assert r.status == 404 and (await r.json())["error"] == "call.not_found"
    assert await WebDb(web.store).notes_of_call("other") == []
    r = await a.put("/api/agents/1001/recent/c11/note", json={"text": "x" * 2001})
    assert r.status == 400
    r = await a.delete("/api/agents/1001/recent/bad%20id")
    assert r.status == 400


async def test_screen_pop_has_region_customer_earlier_calls_and_encoded_panels(web):
    admin = await web.as_user("admin")
    r = await admin.post("/api/admin/customers/import",
                         data="customer_number,name,phone,id_number\nC-77,Zhang San,13912345678,11010119900307123X\n",
                         headers={"Content-Type": "text/csv"})
    assert r.status == 200 and (await r.json())["added"] == 1
    await web.add_call("old1", number="13912345678", at=datetime.now(timezone.utc) - timedelta(days=2))
    a = await web.as_user("1001")
    await a.put("/api/agents/1001/recent/old1/note", json={"text": "asked about order 5"})
    await web.add_call("now1", number="13912345678", name='<img src=x onerror=alert(1)>')
    r = await a.get("/api/agents/1001/pop/now1")
    pop = await r.json()
    assert r.status == 200
    assert pop["caller_name"] == '<img src=x onerror=alert(1)>'        # data, shown as text
    assert pop["region"]["province"] == "江苏省" and pop["region"]["city"] == "常州市"
    assert pop["customer"]["customer_id"] == "C-77" and pop["customer"]["name"] == "Zhang San"
    assert pop["customer"]["id_number"].endswith("123X") and "1101011990" not in pop["customer"]["id_number"]
    assert pop["group"] == "sales" and pop["key_trail"] == [{"node": "menu", "keys": "1"}]
    assert [e["uniqueid"] for e in pop["earlier_calls"]] == ["old1"]
    assert pop["earlier_calls"][0]["notes"] == ["asked about order 5"]
    assert pop["side_panels"] == [{"title": "Orders", "url":
                                   "https://erp.example/orders?customer=C-77&n=13912345678"}]
    # another agent's call is not theirs to pop
    b = await web.as_user("1002")
    r = await b.get("/api/agents/1002/pop/now1")
    assert r.status == 404


def test_panel_values_are_url_encoded():
    from acd.web.pages import fill_panel
    url = fill_panel("https://erp.example/o?c={customer_id}&n={caller_number}",
                     {"customer_id": "a&b=c/../#x", "caller_number": "<script>"})
    assert url == "https://erp.example/o?c=a%26b%3Dc%2F..%2F%23x&n=%3Cscript%3E"


def test_region_of_numbers():
    from acd.web.pages import caller_region
    assert caller_region("02161234567")["city"] == "上海市"
    assert caller_region("+8613800138000")["carrier"] == "中国移动"
    assert caller_region("<script>") is None and caller_region("") is None
    assert caller_region("1" * 40) is None


# --- admin -------------------------------------------------------------------------------------

async def test_admin_calls_filters_and_csv_export_neutralise_formulas(web):
    await web.add_call("a1", number="13800138000", name="=HYPERLINK(\"http://x\")")
    await web.add_call("a2", number="13900000000", agent="1002", reason="agent_hangup")
    admin = await web.as_user("admin")
    r = await admin.get("/api/admin/calls?agent=1002")
    assert [c["uniqueid"] for c in (await r.json())["calls"]] == ["a2"]
    r = await admin.get("/api/admin/calls?end_reason=caller_hangup&number=13800138000")
    assert [c["uniqueid"] for c in (await r.json())["calls"]] == ["a1"]
    r = await admin.get("/api/admin/calls?end_reason=nonsense")
    assert r.status == 400
    r = await admin.get("/api/admin/calls?since=yesterday")
    assert r.status == 400 and (await r.json())["error"] == "http.bad_request"
    r = await admin.get("/api/admin/calls.csv")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(await r.text())))
    by = {row["uniqueid"]: row for row in rows}
    assert by["a1"]["caller_name"].startswith("'=") and by["a1"]["caller_number"] == "13800138000"
    assert by["a2"]["agent_id"] == "1002" and by["a1"]["key_trail"] == "1"


async def test_directory_import_refuses_a_bad_csv_whole_and_is_audited(web):
    admin = await web.as_user("admin")
    r = await admin.post("/api/admin/customers/import",
                         data="customer_number,name,phone\nC1,A,13800000001\n,B,x\n",
                         headers={"Content-Type": "text/csv"})
    assert r.status == 400 and (await r.json())["error"] == "directory.bad_csv"
    r = await admin.get("/api/admin/customers?q=C1")
    assert (await r.json())["customer"] is None                  # nothing imported
    r = await admin.post("/api/admin/customers/import", json={"x": 1})
    assert r.status == 400
    entries = [e for e in await _audit(web) if e["action"] == "POST /api/admin/customers/import"]
    assert [e["status"] for e in entries] == [400, 400]
    assert entries[-1]["detail"]["error"] == "directory.bad_csv"


async def test_admin_ends_a_users_sessions(web):
    a = await web.as_user("1001")
    admin = await web.as_user("admin")
    users = {u["username"]: u for u in (await (await admin.get("/api/admin/users")).json())["users"]}
    assert users["1001"]["sessions"] == 1 and users["1001"]["agent_id"] == "1001"
    r = await admin.post("/api/admin/users/1001/logout")
    assert r.status == 200 and (await r.json())["ended"] == 1
    assert (await a.get("/api/agents/1001")).status == 401
    assert (await admin.post("/api/admin/users/ghost/logout")).status == 404   # user.unknown


async def test_openapi_lists_every_api_route(web):
    admin = await web.as_user("admin")
    doc = await (await admin.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    app = web.server.app
    for route in app.router.routes():
        res = route.resource
        if res is None or route.method == "HEAD" or not res.canonical.startswith("/api/"):
            continue
        assert route.method.lower() in doc["paths"][res.canonical], res.canonical


async def test_sessions_survive_a_restart_of_the_web_layer(web):
    a = await web.as_user("1001")
    web.auth._cache.clear()                  # a new process: only the database knows
    assert (await a.get("/api/agents/1001")).status == 200


async def test_changed_password_in_the_config_ends_the_users_sessions(web):
    from dataclasses import replace
    a = await web.as_user("1001")
    agents = tuple(replace(x, web_password="a-new-password") if x.id == "1001" else x
                   for x in web.cfg.agents)
    await web.auth.sync_users(users_from_config(replace(web.cfg, agents=agents)))
    assert (await a.get("/api/agents/1001")).status == 401
    c = web.client()
    r = await c.post(web.url("/api/auth/login"), json={"username": "1001", "password": "a-new-password"})
    assert r.status == 200
    await asyncio.sleep(0)


async def test_an_open_websocket_ends_with_its_session(web):
    a = await web.as_user("1001")
    b = await web.as_user("1002")
    admin = await web.as_user("admin")
    async with a.ws_connect("/api/agents/1001/ws") as ws_a, b.ws_connect("/api/agents/1002/ws") as ws_b:
        assert (await ws_a.receive_json(timeout=10))["type"] == "snapshot"
        assert (await ws_b.receive_json(timeout=10))["type"] == "snapshot"
        await a.post("/api/auth/logout")
        msg = await ws_a.receive(timeout=10)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
        r = await admin.post("/api/admin/users/1002/logout")
        assert (await r.json())["ended"] == 1
        msg = await ws_b.receive(timeout=10)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    # and it cannot come back
    r = await a.get("/api/agents/1001/ws", headers=WS_HEADERS)
    assert r.status == 401
