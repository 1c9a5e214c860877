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
from tests.web_login import password_of, test_store, web_test_config


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


async def test_a_start_leaves_argon2_for_behind_and_pending_users_log_in_as_configured(tmp_path):
    """The server's start (``defer``): the users table at once, no argon2 on the way; a user
    not hashed yet logs in with the configured password (and only with it); hash_pending
    then does the work, a changed password's sessions ending when its turn comes."""
    import pytest

    from acd.errors import UserError
    store = await test_store(tmp_path)
    try:
        key = check_key(tmp_path / "data")
        cfg = web_test_config(agents=("1001", "1002"))
        users = len(users_from_config(cfg))
        authmod._MEMO.clear()
        pw = CountingPasswords()
        auth = Auth(WebDb(store), passwords=pw, check_key=key)
        await auth.sync_users(users_from_config(cfg), defer=True)
        assert (pw.hashed, auth.synced) == (0, {"users": users, "pending": users})
        before, session = await auth.login("1001", password_of(cfg, "1001"), "127.0.0.1")
        assert session["username"] == "1001"
        with pytest.raises(UserError) as err:
            await auth.login("1002", "wrong", "127.0.0.2")
        assert err.value.id == "auth.bad_credentials"
        assert await auth.hash_pending() == users and pw.hashed == users
        token, _ = await auth.login("1002", password_of(cfg, "1002"), "127.0.0.1")
        # A password changed in the config: pending; the old one logs in no more, the new one
        # does; the old sessions end when argon2 gets to it.
        authmod._MEMO.clear()
        agents = (replace(cfg.agents[0], web_password="new-pass-123"), *cfg.agents[1:])
        again = Auth(WebDb(store), passwords=CountingPasswords(), check_key=key)
        await again.sync_users(users_from_config(replace(cfg, agents=agents)), defer=True)
        assert again.synced == {"users": users, "pending": 1}
        with pytest.raises(UserError):
            await again.login("1001", password_of(cfg, "1001"), "127.0.0.3")
        since, _ = await again.login("1001", "new-pass-123", "127.0.0.4")
        assert await again.hash_pending() == 1
        assert not again._pending
        db = WebDb(store)
        assert await db.session(authmod._hash_token(before)) is None     # the old password's
        assert await db.session(authmod._hash_token(since)) is not None  # the new one's stays
        assert await db.session(authmod._hash_token(token)) is not None  # 1002: untouched
        await again.login("1001", "new-pass-123", "127.0.0.5")
        with pytest.raises(UserError):
            await again.login("1001", password_of(cfg, "1001"), "127.0.0.6")
    finally:
        await store.close()
