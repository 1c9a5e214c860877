"""A start does not run argon2 for a configured password that did not change: the users table
keeps an HMAC check of it under the data folder's key. Real store (SQLite), real argon2 (fast
parameters), a new process simulated by forgetting the in-process memo."""
from __future__ import annotations

import stat
from dataclasses import replace

from argon2 import PasswordHasher

from acd.web import auth as authmod
from acd.web.auth import Auth, Passwords, check_key, users_from_config
from acd.web.webdb import WebDb
from tests.web_login import test_store, web_test_config


class CountingPasswords(Passwords):
    def __init__(self) -> None:
        super().__init__(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
        self.hashed = self.verified = 0

    def hash(self, password: str) -> str:
        self.hashed += 1
        return super().hash(password)

    def verify(self, stored, password: str) -> bool:
        self.verified += 1
        return super().verify(stored, password)


async def _start(store, cfg, key) -> CountingPasswords:
    """A server start: a new process (no memo) syncs the configured users."""
    authmod._MEMO.clear()
    pw = CountingPasswords()
    await Auth(WebDb(store), passwords=pw, check_key=key).sync_users(users_from_config(cfg))
    return pw


async def test_a_restart_with_the_same_passwords_runs_no_argon2(tmp_path):
    store = await test_store(tmp_path)
    try:
        key = check_key(tmp_path / "data")
        cfg = web_test_config(agents=("1001", "1002", "1003"))
        users = len(users_from_config(cfg))
        first = await _start(store, cfg, key)
        assert (first.hashed, first.verified) == (users, 0)
        again = await _start(store, cfg, key)
        assert (again.hashed, again.verified) == (0, 0)
        # One password changed: that user alone is checked and hashed anew.
        agents = (replace(cfg.agents[0], web_password="new-pass-123"), *cfg.agents[1:])
        changed = replace(cfg, agents=agents)
        moved = await _start(store, changed, key)
        assert (moved.hashed, moved.verified) == (1, 1)
        # The key lost (another data folder): every password is verified once, none rehashed.
        lost = await _start(store, changed, bytes(32))
        assert (lost.hashed, lost.verified) == (0, users)
        # The hashes kept are the passwords' own: a login checks out.
        auth = Auth(WebDb(store), passwords=CountingPasswords(), check_key=key)
        token, session = await auth.login("1001", "new-pass-123", "127.0.0.1")
        assert session["username"] == "1001"
    finally:
        await store.close()


def test_the_key_is_made_once_owner_only(tmp_path):
    data = tmp_path / "data"
    key = check_key(data)
    path = data / authmod.CHECK_KEY_FILE
    assert len(key) == 32 and check_key(data) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    path.write_text("not hex")                      # damaged: a new key, passwords checked once
    assert len(check_key(data)) == 32 and check_key(data) != key
