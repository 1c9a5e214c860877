"""Agents, groups and web users created, changed and removed on the admin API while the real
server runs (acd.web.entries_api): checked by config.yaml's rules, in force at once in the
ACD and the logins, refused against an older version, audited without secrets, kept across a
restart, and a later edit of config.yaml wins for what it changes (acd.admin_config).

The real :class:`acd.app.Server` (SQLite, runtime, HTTP) with Asterisk's side of AMI played by
FakeAmi; the same on a real Asterisk, with a phone registering to the new endpoint, is in
tests/asterisk/test_admin_entries_calls.py.
"""
from __future__ import annotations

import asyncio
import random
from dataclasses import replace

import aiohttp
import pytest
import yaml
from argon2 import PasswordHasher

from acd import config as configmod
from acd.app import Server
from acd.web import auth as authmod
from acd.web.webdb import WebDb
from tests.integration.fake_ami import FakeAmi
from tests.integration.test_startup_queries import _play_asterisk
from tests.web_login import login

SECRET = "fake-ami-secret-entries"
WAIT = 30.0


@pytest.fixture(autouse=True)
def quick_argon2(monkeypatch):
    monkeypatch.setattr(authmod, "PasswordHasher",
                        lambda: PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    yield
    authmod._MEMO.clear()


def _write(path, wrapup: float) -> None:
    path.write_text(yaml.safe_dump({
        "data_dir": "data",
        "agents": [{"id": "1001", "name": "Alice"}, {"id": "1002", "name": "Bob"}],
        "groups": [{"name": "sales", "members": {"1001": 1, "1002": 1},
                    "wrapup_seconds": wrapup}],
        "flows": {"dir": "flows", "watch_seconds": 0},
        "web": {"users": [{"username": "admin", "role": "admin"},
                          {"username": "sup", "role": "supervisor"}]}}))
    path.chmod(0o600)


def _config(tmp_path, port: int) -> configmod.Config:
    cfg, _ = configmod.with_secrets(configmod.load(tmp_path / "config.yaml", environ={}))
    return replace(cfg, agi=replace(cfg.agi, port=0), http=replace(cfg.http, port=0),
                   ami=replace(cfg.ami, port=port, secret=SECRET))


async def _server(cfg) -> Server:
    srv = Server(cfg, rng=random.Random(3))
    await srv.start()
    await asyncio.wait_for(srv.runtime.ready.wait(), WAIT)
    return srv


def _password(cfg, user: str) -> str:
    return next(u.password for u in cfg.web.users if u.username == user)


async def test_agents_groups_users_from_the_api_in_force_at_once_and_after_a_restart(tmp_path):
    (tmp_path / "flows").mkdir()
    _write(tmp_path / "config.yaml", 0)
    ami = await FakeAmi(secret=SECRET).start()
    _play_asterisk(ami, ["1001", "1002"])
    cfg = _config(tmp_path, ami.port)
    srv = await _server(cfg)
    base = f"http://127.0.0.1:{srv.http_port}"
    jar = aiohttp.CookieJar(unsafe=True)
    try:
        async with aiohttp.ClientSession(cookie_jar=jar) as h, \
                aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as h2, \
                aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as h3:
            admin = await login(h, "admin", _password(cfg, "admin"), base)
            sup = await login(h2, "sup", _password(cfg, "sup"), base)
            agents = (await (await admin.get("/api/admin/agents")).json())["agents"]
            assert [(a["agent_id"], a["origin"]) for a in agents] == [
                ("1001", "config.yaml"), ("1002", "config.yaml")]

            # only admins create; bad input gets the config's rules, naming the field
            r = await sup.post("/api/admin/agents", json={"id": "1003", "name": "Carol"})
            assert r.status == 403
            for body, status, error, text in [
                    ({"name": "No id"}, 400, "admin.key_needed", "id"),
                    ({"id": "bad id", "name": "X"}, 400, "config.invalid", "id:"),
                    ({"id": "1004", "name": 'Eve"; evil'}, 400, "config.invalid", "name:"),
                    ({"id": "1004", "password": "chosen-by-me"}, 400, "admin.secret_given", ""),
                    ({"id": "1004", "shoe_size": 44}, 400, "config.invalid", "unknown key"),
                    ({"id": "1001", "name": "Again"}, 409, "admin.exists", "")]:
                r = await admin.post("/api/admin/agents", json=body)
                got = await r.json()
                assert (r.status, got["error"]) == (status, error), (body, got)
                assert text in got["message"], got
            assert [a.id for a in srv.cfg.agents] == ["1001", "1002"]   # nothing written

            # a new agent: passwords shown once, a web login at once, in the ACD at once
            r = await admin.post("/api/admin/agents", json={"id": "1003", "name": "Carol"})
            made = await r.json()
            assert r.status == 201, made
            assert set(made["secrets"]) == {"password", "web_password"}
            assert "password" not in made["agent"] and made["agent"]["has_password"]
            assert made["asterisk"] == "not_managed"
            carol = await login(h3, "1003", made["secrets"]["web_password"], base)
            r = await carol.post("/api/agents/1003/login")
            assert r.status == 200, await r.text()
            listed = (await (await admin.get("/api/admin/agents")).json())["agents"]
            assert [(a["agent_id"], a["origin"]) for a in listed][-1] == ("1003", "admin page")
            assert all("password" not in a for a in listed)

            # a new group; the new agent joins it through the memberships API
            r = await admin.post("/api/admin/groups", json={
                "name": "vip", "strategy": "round_robin", "wrapup_seconds": 15})
            assert r.status == 201, await r.text()
            groups = {g["name"]: g for g in
                      (await (await sup.get("/api/admin/groups")).json())["groups"]}
            r = await sup.put("/api/admin/groups/vip/members/1003",
                              json={"level": 2, "version": groups["vip"]["members_version"]})
            assert r.status == 200, await r.text()
            assert srv.runtime.queues()["vip"]["logged_in"] == 1

            # a group's settings change, at once; an older version is refused
            v = groups["sales"]["version"]
            r = await admin.put("/api/admin/groups/sales", json={"version": v,
                                                                 "wrapup_seconds": 30})
            assert r.status == 200, await r.text()
            assert srv.runtime.acd.wrapup_seconds("sales") == 30.0
            r = await admin.put("/api/admin/groups/sales", json={"version": v,
                                                                 "wrapup_seconds": 45})
            assert (r.status, (await r.json())["error"]) == (409, "admin.conflict")
            fresh = {g["name"]: g["version"] for g in
                     (await (await sup.get("/api/admin/groups")).json())["groups"]}
            r = await admin.put("/api/admin/groups/sales", json={"version": fresh["sales"],
                                                                 "ring_timeout": -1})
            got = await r.json()          # the version is fresh: the refusal is the rule's
            assert (r.status, got["error"]) == (400, "config.invalid"), got
            assert srv.runtime.acd.wrapup_seconds("sales") == 30.0

            # a logged-in agent cannot be removed; logged out, they can, with their memberships
            v3 = listed[-1]["version"]
            r = await admin.delete(f"/api/admin/agents/1003?version={v3}")
            assert (r.status, (await r.json())["error"]) == (409, "agent.logged_in")
            await carol.post("/api/agents/1003/logout")
            r = await admin.delete(f"/api/admin/agents/1003?version={v3}")
            assert r.status == 200, await r.text()
            assert "1003" not in srv.runtime.endpoints
            assert srv.runtime.queues()["vip"]["logged_in"] == 0
            r = await h3.post(f"{base}/api/auth/login", json={
                "username": "1003", "password": made["secrets"]["web_password"]})
            assert r.status == 401

            # a supervisor who manages one group changes that group's members only
            users = {u["username"]: u for u in
                     (await (await admin.get("/api/admin/users")).json())["users"]}
            r = await admin.put("/api/admin/users/sup", json={
                "version": users["sup"]["version"], "groups": ["nope"]})
            got = await r.json()
            assert (r.status, got["error"]) == (400, "config.invalid") and "groups" in \
                got["message"], got
            r = await admin.put("/api/admin/users/sup", json={
                "version": users["sup"]["version"], "groups": ["vip"]})
            assert r.status == 200, await r.text()
            groups = {g["name"]: g for g in
                      (await (await sup.get("/api/admin/groups")).json())["groups"]}
            r = await sup.put("/api/admin/groups/sales/members/1001",
                              json={"level": 3, "version": groups["sales"]["members_version"]})
            assert (r.status, (await r.json())["error"]) == (403, "auth.not_your_group")
            r = await sup.put("/api/admin/groups/vip/members/1001",
                              json={"level": 3, "version": groups["vip"]["members_version"]})
            assert r.status == 200, await r.text()
            r = await admin.put("/api/admin/groups/sales/members/1001",   # admins: any group
                                json={"level": 3, "version": groups["sales"]["members_version"]})
            assert r.status == 200, await r.text()
            # a group a supervisor manages cannot go while they name it
            groups = {g["name"]: g for g in
                      (await (await admin.get("/api/admin/groups")).json())["groups"]}
            r = await admin.delete(f"/api/admin/groups/vip?version={groups['vip']['version']}")
            got = await r.json()
            assert (r.status, got["error"]) == (400, "config.invalid"), got
            assert "web.users" in got["message"]

            # a supervisor made on the page; the file's supervisor removed on the page
            r = await admin.post("/api/admin/users", json={"username": "sup2",
                                                           "role": "supervisor"})
            assert r.status == 201 and set((await r.json())["secrets"]) == {"password"}
            users = {u["username"]: u for u in
                     (await (await admin.get("/api/admin/users")).json())["users"]}
            r = await admin.delete(f"/api/admin/users/sup?version={users['sup']['version']}")
            assert r.status == 200, await r.text()
            r = await sup.get("/api/admin/agents")
            assert r.status == 401                       # their session ended with them

            entries = await WebDb(srv.store).audit_entries(limit=50)
            made_row = next(e for e in entries if e["action"] == "POST /api/admin/agents"
                            and e["status"] == 201)
            assert made_row["username"] == "admin"
            assert made_row["detail"]["before"] is None
            after = made_row["detail"]["after"]
            assert (after["id"], after["name"], after["has_password"],
                    after["has_web_password"]) == ("1003", "Carol", True, True)
            assert "password" not in after and "web_password" not in after
            changed = next(e for e in entries if e["target"] == "/api/admin/groups/sales" and e["action"].startswith("PUT")
                           and e["status"] == 200)
            assert (changed["detail"]["before"]["wrapup_seconds"],
                    changed["detail"]["after"]["wrapup_seconds"]) == (0.0, 30.0)
            assert made["secrets"]["password"] not in str(entries)
            assert made["secrets"]["web_password"] not in str(entries)
        await srv.stop()

        # a restart keeps the page's changes
        srv = await _server(cfg)
        assert [a.id for a in srv.cfg.agents] == ["1001", "1002"]
        assert {g.name: g.wrapup_seconds for g in srv.cfg.groups} == {"sales": 30.0,
                                                                      "vip": 15.0}
        assert [u.username for u in srv.cfg.web.users] == ["admin", "sup2"]
        await srv.stop()

        # a later edit of config.yaml wins for what it changes
        _write(tmp_path / "config.yaml", 10)
        srv = await _server(_config(tmp_path, ami.port))
        assert {g.name: g.wrapup_seconds for g in srv.cfg.groups} == {"sales": 10.0,
                                                                      "vip": 15.0}
        assert [u.username for u in srv.cfg.web.users] == ["admin", "sup2"]
    finally:
        await srv.stop()
        await ami.stop()

