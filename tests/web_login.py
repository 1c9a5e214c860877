"""Logging in to the web API in tests, the way a browser does: POST /api/auth/login sets the
session cookie; every state-changing request then carries the session's X-CSRF-Token.

``await login(client, "1001", password)`` returns an :class:`Authed` client whose ``post``,
``put``, ``delete`` add the header (and ``get`` / ``ws_connect`` pass through), so tests keep
their assertions and only log in first.
"""
from __future__ import annotations

from typing import Any

from argon2 import PasswordHasher

from acd.web.auth import Passwords

#: A quick hasher for tests (argon2id with tiny costs); the server's default is argon2's own.
FAST_PASSWORDS = Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


class Authed:
    """A client (aiohttp TestClient or ClientSession with a base URL) plus the session."""

    def __init__(self, client: Any, me: dict[str, Any], base: str = "") -> None:
        self.client = client
        self.me = me
        self.csrf = me["csrf"]
        self.base = base

    def _url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base + path

    def _h(self, kw: dict[str, Any]) -> dict[str, Any]:
        headers = dict(kw.pop("headers", None) or {})
        headers.setdefault("X-CSRF-Token", self.csrf)
        kw["headers"] = headers
        return kw

    def get(self, path: str, **kw: Any):
        return self.client.get(self._url(path), **kw)

    def post(self, path: str, **kw: Any):
        return self.client.post(self._url(path), **self._h(kw))

    def put(self, path: str, **kw: Any):
        return self.client.put(self._url(path), **self._h(kw))

    def delete(self, path: str, **kw: Any):
        return self.client.delete(self._url(path), **self._h(kw))

    def ws_connect(self, path: str, **kw: Any):
        return self.client.ws_connect(self._url(path), **kw)

    def __getattr__(self, name: str) -> Any:      # runtime, app, server, ... of a TestClient
        return getattr(self.client, name)


async def login(client: Any, username: str, password: str, base: str = "") -> Authed:
    r = await client.post(base + "/api/auth/login", json={"username": username, "password": password})
    body = await r.json()
    assert r.status == 200, f"login as {username} failed: {r.status} {body}"
    return Authed(client, body, base)


def password_of(cfg: Any, username: str) -> str:
    """The web password of a user (an agent id or a web.users name) from a config that went
    through with_secrets."""
    for a in cfg.agents:
        if a.id == username:
            return a.web_password
    for u in cfg.web.users:
        if u.username == username:
            return u.password
    raise KeyError(username)


# --- a web layer for tests that build the app themselves -------------------------------------

def test_password(username: str) -> str:
    return f"test-password-{username}"


#: The password checks' key of the web tests (the server keeps one in its data folder).
TEST_CHECK_KEY = bytes(range(32))


def web_test_config(agents=("1001", "1002"), groups=()):
    """A configuration with these agents and an admin and a supervisor, all with known
    passwords (:func:`test_password`)."""
    from acd import config as configmod
    return configmod.Config(
        agents=tuple(configmod.AgentConfig(id=a, name=a, password=test_password(a) + "-sip",
                                           web_password=test_password(a)) for a in agents),
        groups=tuple(groups),
        web=configmod.WebConfig(users=(
            configmod.WebUserConfig(username="admin", role="admin", password=test_password("admin")),
            configmod.WebUserConfig(username="sup", role="supervisor", password=test_password("sup")))))


async def test_store(tmp_path):
    """A migrated SQLite store in ``tmp_path`` (the caller closes it)."""
    from acd.store.db import Store, migrate_async
    url = f"sqlite+aiosqlite:///{tmp_path / 'web-test.db'}"
    await migrate_async(url)
    return Store(url)


async def web_for_tests(store, runtime=None, cfg=None, **kw):
    """The web layer (logins, sessions) for ``make_app(..., web=...)`` in tests."""
    from acd.web.pages import web_context
    kw.setdefault("check_key", TEST_CHECK_KEY)     # no key file written by the tests
    return await web_context(cfg or web_test_config(), store, runtime,
                             passwords=FAST_PASSWORDS, **kw)


async def login_as(client, username: str, base: str = "") -> Authed:
    """Log in as a user of :func:`web_test_config`."""
    return await login(client, username, test_password(username), base)


test_password.__test__ = False          # not tests, whatever pytest thinks of the names
test_store.__test__ = False
