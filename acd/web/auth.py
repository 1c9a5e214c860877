"""Web logins, sessions, roles, CSRF and the audit log, as one aiohttp middleware.

Users: every configured agent (user name = agent id, role ``agent``, bound to that agent) and
the ``web.users`` of the configuration (``supervisor`` or ``admin``). Passwords come from the
configuration or ``data/secrets.yaml`` and are stored as argon2id hashes (argon2-cffi).

Sessions are server-side rows (``web_sessions``): the cookie ``acd_session`` (HttpOnly,
SameSite=Strict) holds a random token, the database only its SHA-256. A session ends at its
expiry (``web.session_hours`` after the login) or at logout.

Every route has one entry in :data:`RULES` (who may use it); the middleware refuses a request
before its handler runs: 401 ``auth.required`` without a valid session, 403 ``auth.forbidden``
for the wrong role (or another agent's route), 403 ``auth.csrf`` for a state-changing request
without the session's ``X-CSRF-Token`` header or from another origin. WebSockets: the session
cookie, and an ``Origin`` that is this server's. A route without a rule is for admins only
(and logged: ``auth.no_rule``), so a forgotten route fails closed.

Every state-changing request (POST, PUT, PATCH, DELETE), refused ones included, is written to
the audit log: who, what (method, route, the agent or call it names, the JSON body with
secrets removed), when, the outcome.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from acd import log as acdlog
from acd.errors import UserError
from acd.web.forbidden import forbidden_page, wants_html
from acd.web.forwarded import Forwarded
from acd.web.request import json_object

COOKIE = "acd_session"
USER = web.RequestKey("user", dict)        # the session of the request (after the middleware)
AUDIT = web.RequestKey("audit", dict)      # what a handler adds to its audit entry
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WS_TOO_MANY = 1008                         # policy violation: over the WebSocket cap
ROLES = ("agent", "supervisor", "admin")

# --- who may use which route --------------------------------------------------------------

PUBLIC = "public"            # no session needed
ANY = "any"                  # any logged-in user
AGENT = "agent"              # an agent (their own page)
AGENT_SELF = "agent_self"    # the agent named by {agent}, or a supervisor or admin
SELF_ONLY = "self_only"      # only the agent named by {agent} (their own calls)
SUPERVISOR = "supervisor"    # supervisors and admins
ADMIN = "admin"
METRICS = "metrics"          # supervisors and admins, or the metrics bearer token

#: (method or "*", route pattern (fnmatch on aiohttp's canonical path), access). First match.
RULES: tuple[tuple[str, str, str], ...] = (
    ("GET", "/api/health", PUBLIC),
    ("GET", "/", PUBLIC),                       # a redirect: to the login or the user's page
    ("GET", "/login", PUBLIC),
    ("GET", "/static", PUBLIC),                 # the static folder (its canonical path)
    ("GET", "/vendor/jssip.js", PUBLIC),        # JsSIP from node_modules (acd/web/jssip.py)
    ("POST", "/api/auth/login", PUBLIC),
    ("*", "/api/auth/*", ANY),
    ("GET", "/agent", AGENT),
    ("GET", "/supervisor", SUPERVISOR),
    ("GET", "/wallboard", SUPERVISOR),           # the same board (?tv=1: a big screen)
    ("GET", "/reports", SUPERVISOR),
    ("GET", "/admin", ADMIN),
    ("GET", "/metrics", METRICS),
    # an agent's own things: their page, call control, recent calls and notes
    ("*", "/api/agents/{agent}/call", SELF_ONLY),
    ("*", "/api/agents/{agent}/call/*", SELF_ONLY),
    ("*", "/api/agents/{agent}/recent", SELF_ONLY),
    ("*", "/api/agents/{agent}/recent/*", SELF_ONLY),
    ("GET", "/api/agents/{agent}/pop/*", SELF_ONLY),
    ("GET", "/api/agents/{agent}/directory", SELF_ONLY),
    ("GET", "/api/agents/{agent}/targets", SELF_ONLY),
    ("*", "/api/agents/{agent}/phone", SELF_ONLY),        # the page as the phone
    ("GET", "/api/agents/{agent}", AGENT_SELF),
    ("GET", "/api/agents/{agent}/ws", AGENT_SELF),
    ("POST", "/api/agents/{agent}/login", AGENT_SELF),
    ("POST", "/api/agents/{agent}/logout", AGENT_SELF),
    ("POST", "/api/agents/{agent}/state", AGENT_SELF),
    ("POST", "/api/agents/{agent}/wrapup/end", AGENT_SELF),
    # the floor
    ("GET", "/api/agents", SUPERVISOR),
    ("GET", "/api/queues", SUPERVISOR),
    ("GET", "/api/supervisor/ws", SUPERVISOR),
    ("GET", "/api/stats/*", SUPERVISOR),
    ("GET", "/api/calls/{uniqueid}/recordings", ANY),   # agents: their own, if allowed
    ("GET", "/api/recordings/{id}/audio", ANY),          # (acd/web/recordings_api.py)
    ("DELETE", "/api/recordings/{id}", ADMIN),
    ("GET", "/api/calls", SUPERVISOR),
    ("GET", "/api/calls/{uniqueid}", SUPERVISOR),
    ("GET", "/api/reports/*", SUPERVISOR),
    ("*", "/api/monitor", SUPERVISOR),        # listen, whisper, barge (not agents)
    ("*", "/api/monitor/*", SUPERVISOR),
    # administration: supervisors see agents and groups and move agents between groups
    ("GET", "/api/admin/agents", SUPERVISOR),
    ("GET", "/api/admin/groups", SUPERVISOR),
    ("PUT", "/api/admin/groups/{group}/members/{agent}", SUPERVISOR),
    ("DELETE", "/api/admin/groups/{group}/members/{agent}", SUPERVISOR),
    ("*", "/api/admin/*", ADMIN),
    ("*", "/api/flows", ADMIN),
    ("*", "/api/flows/*", ADMIN),
    ("GET", "/api/openapi.json", ADMIN),
)


def access_for(method: str, canonical: str | None) -> str | None:
    """The access rule of a route (None: no rule; the middleware then allows admins only)."""
    if canonical is None:
        return ANY              # no such route: a 404 or 405, but only for a logged-in user
    m = "GET" if method == "HEAD" else method
    for rule_method, pattern, access in RULES:
        if rule_method in ("*", m) and fnmatchcase(canonical, pattern):
            return access
    return None


def allowed(access: str, user: dict[str, Any], agent_in_path: str | None) -> bool:
    role = user["role"]
    if access in (PUBLIC, ANY):
        return True
    if access == AGENT:
        return role == "agent"
    if access == AGENT_SELF:
        return role in ("supervisor", "admin") or (
            role == "agent" and agent_in_path is not None and user["agent_id"] == agent_in_path)
    if access == SELF_ONLY:
        return role == "agent" and agent_in_path is not None and user["agent_id"] == agent_in_path
    if access in (SUPERVISOR, METRICS):
        return role in ("supervisor", "admin")
    return role == "admin"      # ADMIN, and routes without a rule


# --- passwords --------------------------------------------------------------------------------

class Passwords:
    """argon2id (argon2-cffi's defaults: 3 passes, 64 MiB, 4 lanes). Blocking: call the
    methods in a thread (``asyncio.to_thread``)."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.ph = hasher or PasswordHasher()
        self._dummy = self.ph.hash(secrets.token_urlsafe(16))
        self._old: dict[str, bool] = {}     # parameter string -> not ours

    def hash(self, password: str) -> str:
        return self.ph.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        """True if ``password`` matches; for an unknown user (``stored`` None) the same work
        is done against a dummy hash, so the answer takes as long."""
        try:
            return self.ph.verify(stored or self._dummy, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_update(self, stored: str, password: str) -> bool:
        """The stored hash is not this password's (or uses old parameters)."""
        return not self.verify(stored, password) or self.old_parameters(stored)

    def old_parameters(self, stored: str) -> bool:
        """The hash was made with other parameters than ours (argon2 would make it again).
        Read once per parameter string (``$argon2id$v=19$m=...,t=...,p=...``), not per user;
        a string that is no argon2 hash counts as old."""
        params = stored.rsplit("$", 2)[0]
        old = self._old.get(params)
        if old is None:
            try:
                old = self.ph.check_needs_rehash(stored)
            except InvalidHashError:
                return True                 # not a hash of ours: made again
            self._old[params] = old
        return old


#: In the data folder: the key of the password checks (see :meth:`Auth.sync_users`).
CHECK_KEY_FILE = "password-check.key"


def check_key(data_dir: Path) -> bytes:
    """The key of the password checks, made once per data folder (owner only). A check is an
    HMAC of the user and the configured password under this key: it tells a start whether a
    configured password changed without argon2 (0.16 s a user), and is worthless without
    the key (the database alone gives nothing to crack faster than the argon2 hash)."""
    path = Path(data_dir) / CHECK_KEY_FILE
    for _ in range(2):
        try:
            return bytes.fromhex(path.read_text().strip())
        except FileNotFoundError:
            pass
        except ValueError:
            path.unlink(missing_ok=True)       # damaged: a new key (passwords checked once)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue                            # another process made it: read theirs
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_bytes(32).hex())
    return bytes.fromhex(path.read_text().strip())


# --- the login rate limit -------------------------------------------------------------------

class LoginLimiter:
    """Failed logins per key within a sliding window, each with a label (the user name tried).
    Plain Python, injected clock."""

    def __init__(self, attempts: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.attempts = attempts
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[tuple[float, str]]] = {}

    def _recent(self, key: str) -> deque[tuple[float, str]]:
        q = self._failures.get(key)
        if q is None:
            return deque()
        cutoff = self.clock() - self.window
        while q and q[0][0] <= cutoff:
            q.popleft()
        if not q:
            del self._failures[key]
        return q

    def retry_after(self, key: str, attempts: int | None = None) -> float:
        """Seconds until ``key`` may try again (0: now)."""
        limit = attempts or self.attempts
        q = self._recent(key)
        if len(q) < limit:
            return 0.0
        return max(0.0, q[-limit][0] + self.window - self.clock())

    def retry_after_distinct(self, key: str, labels: int) -> float:
        """Seconds until ``key`` may try again when ``labels`` different labels (user names)
        failed within the window (0: now): many names tried from one address is a scan;
        one name tried many times is that name's business alone."""
        latest: dict[str, float] = {}
        for at, label in self._recent(key):
            latest[label] = at
        if len(latest) < labels:
            return 0.0
        return max(0.0, sorted(latest.values())[-labels] + self.window - self.clock())

    def failed(self, key: str, label: str = "") -> None:
        self._recent(key)
        self._failures.setdefault(key, deque()).append((self.clock(), label))
        if len(self._failures) > 10000:          # bounded memory under a spray of names
            for k in list(self._failures)[:1000]:
                self._failures.pop(k, None)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)

    def undo(self, key: str) -> None:
        """Take back the latest failure of ``key`` (an attempt counted before it was checked)."""
        q = self._failures.get(key)
        if q:
            q.pop()
            if not q:
                del self._failures[key]


# --- users from the configuration ---------------------------------------------------------------

@dataclass(frozen=True)
class UserSpec:
    username: str
    role: str
    agent_id: str | None
    password: str


def users_from_config(cfg: Any) -> list[UserSpec]:
    """Each agent (user = agent id) and each ``web.users`` entry, with the passwords that
    ``with_secrets`` filled in."""
    out = [UserSpec(a.id, "agent", a.id, a.web_password) for a in cfg.agents]
    out += [UserSpec(u.username, u.role, None, u.password) for u in cfg.web.users]
    for u in out:
        if not u.password:     # a config loaded without its secrets: no web login for them
            acdlog.get_logger(component="auth").warning("auth.no_password", user=u.username)
    return [u for u in out if u.password]


#: (user, password) digest -> an argon2 hash of that password made in this process.
_MEMO: dict[str, str] = {}


def _memo_key(u: UserSpec) -> str:
    return hashlib.sha256(f"{u.username}\0{u.password}".encode()).hexdigest()


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _json_error(error_id: str, message: str, status: int, **headers: str) -> web.Response:
    return web.json_response({"error": error_id, "message": message}, status=status,
                             headers=headers or None)


def _redact(value: Any, depth: int = 0) -> Any:
    """A request body for the audit log: no secrets, bounded size."""
    if depth > 3:
        return "..."
    if isinstance(value, dict):
        return {str(k)[:40]: ("(hidden)" if any(w in str(k).lower() for w in ("password", "token", "secret"))
                              else _redact(v, depth + 1)) for k, v in list(value.items())[:20]}
    if isinstance(value, list):
        return [_redact(v, depth + 1) for v in value[:20]]
    if isinstance(value, str):
        return value[:200]
    return value


# --- the whole thing ----------------------------------------------------------------------------

class Auth:
    """Sessions and the middleware. ``clock`` gives UNIX seconds (tests move it)."""

    def __init__(self, db: Any, *, session_hours: float = 12.0, login_attempts: int = 5,
                 login_window: float = 300.0, metrics_token: str = "",
                 clock: Callable[[], float] = time.time, passwords: Passwords | None = None,
                 secure_cookies: bool = False, websockets_per_session: int = 8,
                 websockets_per_address: int = 100, check_key: bytes | None = None,
                 trusted_proxies: Sequence[str] = ()) -> None:
        self.db = db
        self.check_key = check_key          # None: every start verifies every password
        self.session_seconds = session_hours * 3600.0
        self.clock = clock
        self.passwords = passwords or Passwords()
        self.limiter = LoginLimiter(login_attempts, login_window, clock)
        self.metrics_token = metrics_token
        self.secure_cookies = secure_cookies
        self.forwarded = Forwarded(trusted_proxies)
        self.homes: dict[str, str] = {}     # each role's own page (set with the routes)
        self._cache: dict[str, dict[str, Any]] = {}     # token hash -> session (ours only)
        # Open WebSockets: their handler task -> (token hash, user, address). Ended when the
        # session ends (expiry, logout, the user's sessions ended or their password changed).
        self._live: dict[asyncio.Task, tuple[str, str, str]] = {}
        self.ws_per_session = websockets_per_session
        self.ws_per_address = websockets_per_address
        self.log = acdlog.get_logger(component="auth")
        self.synced: dict[str, int] = {}    # the last sync_users: users, pending
        # Users whose password argon2 has yet to check or hash: name -> (user, stored hash).
        self._pending: dict[str, tuple[UserSpec, str | None]] = {}
        self._sessions_before: datetime | None = None   # see sync_users
        self.session_ended: list[Callable[[str], Any]] = []   # async, given the key at logout

    @classmethod
    def from_config(cls, db: Any, cfg: Any, **kw: Any) -> "Auth":
        w = cfg.web
        key = kw.pop("check_key") if "check_key" in kw else check_key(cfg.path(cfg.data_dir))
        return cls(db, session_hours=w.session_hours, login_attempts=w.login_attempts,
                   login_window=w.login_window, metrics_token=w.metrics_token,
                   websockets_per_session=w.websockets_per_session,
                   websockets_per_address=w.websockets_per_address,
                   secure_cookies=w.secure_cookies, trusted_proxies=w.trusted_proxies,
                   check_key=key, **kw)

    def _check(self, u: "UserSpec") -> str | None:
        if self.check_key is None:
            return None
        return hmac.new(self.check_key, f"{u.username}\0{u.password}".encode(),
                        hashlib.sha256).hexdigest()

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), timezone.utc)

    # --- users and sessions ---------------------------------------------------------------

    async def sync_users(self, specs: Iterable[UserSpec], *, defer: bool = False) -> None:
        """Make the users table the configured users. A user whose stored check matches the
        configured password keeps the hash without argon2 (a start does not grow with the
        number of users); the others are *pending* until :meth:`hash_pending` has checked
        their stored hash or made a new one (argon2: a new user, a changed password, a lost
        key), and that user's sessions end if the password changed. ``defer``: return with
        them pending (a server start: :meth:`hash_pending` runs behind, and a pending user
        logs in with the configured password meanwhile); else they are done first."""
        specs = list(specs)
        have = await self.db.users()
        rows, pending = [], {}
        for u in specs:
            old = have.get(u.username) or {}
            h = old.get("password_hash") or None         # "": not hashed yet
            check = self._check(u)
            # A hash this process made for the same user and password is reused (a server
            # started again, tests): argon2 is slow on purpose.
            seen = _MEMO.get(_memo_key(u))
            if not (check is not None and h is not None and old.get("password_check") == check
                    and not self.passwords.old_parameters(h)):
                if seen is not None and (h is None or h == seen) \
                        and not self.passwords.old_parameters(seen):
                    h = seen
                else:                       # argon2 to come; the row as it is meanwhile
                    pending[u.username] = (u, h)
                    h, check = h or "", old.get("password_check")
            if u.username not in pending:
                _MEMO[_memo_key(u)] = h
            rows.append({"username": u.username, "role": u.role, "agent_id": u.agent_id,
                         "password_hash": h, "password_check": check})
        now = self._now()
        await self.db.put_users(rows, now=now)
        # Deferred, a user may log in with the new password before argon2 gets to them: the
        # sessions to end are those from before (else: every session of the user).
        self._sessions_before = now if defer else None
        self._pending = pending
        self.synced = {"users": len(rows), "pending": len(pending)}
        self._cache.clear()
        if not defer:
            await self.hash_pending()
        gone = {key for key, _u, _a in self._live.values() if await self.db.session(key) is None}
        self._end_live(lambda k, _u: k in gone)
        await self.db.drop_expired(self._now())

    async def hash_pending(self, batch: int = 8) -> int:
        """argon2 for the pending users (see :meth:`sync_users`), in a thread, ``batch`` at a
        time, each batch written at once; users with a stored hash first (a password that
        changed: their sessions from before the sync end; one made since, with the new
        password, stays). Returns how many hashes were made."""
        todo = sorted(self._pending.values(), key=lambda p: p[1] is None)
        made = 0
        stop = threading.Event()        # cancelled: the thread ends after the user at hand
        for i in range(0, len(todo), batch):
            chunk = todo[i:i + batch]

            def work() -> list[tuple[UserSpec, str, bool, bool]]:
                out = []
                for u, stored in chunk:
                    if stop.is_set():
                        break
                    new = stored is None or self.passwords.needs_update(stored, u.password)
                    out.append((u, self.passwords.hash(u.password) if new else stored, new,
                                new and stored is not None))
                return out
            try:
                done = await asyncio.to_thread(work)
            except asyncio.CancelledError:
                stop.set()
                raise
            made += sum(new for _u, _h, new, _c in done)
            await self.db.set_passwords(
                [{"username": u.username, "password_hash": h, "password_check": self._check(u),
                  "changed": changed} for u, h, _n, changed in done],
                now=self._now(), sessions_before=self._sessions_before)
            for u, h, _new, _changed in done:
                _MEMO[_memo_key(u)] = h
                if self._pending.get(u.username, (None,))[0] is u:
                    del self._pending[u.username]
            await self._end_gone({u.username for u, _h, _n, changed in done if changed})
        return made

    async def _end_gone(self, users: set[str]) -> None:
        """These users' cached sessions are read again; their open WebSockets whose session
        is gone end."""
        if not users:
            return
        for key in [k for k, v in self._cache.items() if v["username"] in users]:
            self._cache.pop(key, None)
        gone = {key for key, name, _a in list(self._live.values())
                if name in users and await self.db.session(key) is None}
        self._end_live(lambda k, _u: k in gone)

    def _password_ok(self, pending: tuple[UserSpec, str | None] | None,
                     user: dict[str, Any] | None, password: str) -> bool:
        """A login's password: a pending user's against the configured password (as slow
        as an argon2 check: every user's answer takes as long), the others' against their
        hash. Blocking (a thread)."""
        if pending is None:
            return self.passwords.verify(user["password_hash"] if user else None, password)
        self.passwords.verify(None, password)
        want = hashlib.sha256(pending[0].password.encode()).digest()
        return hmac.compare_digest(hashlib.sha256(password.encode()).digest(), want)

    async def login(self, username: str, password: str, address: str) -> tuple[str, dict[str, Any]]:
        """A new session (token, session) or UserError auth.rate_limited / auth.bad_credentials."""
        # Per user and address: that user's guesses from there. Per address: how many
        # different names failed from there (a scan). One user's failures never lock another
        # user out, behind a proxy or a NAT where a whole office shares one address.
        name = username.lower()
        keys = (f"user:{address}:{name}", f"addr:{address}")
        wait = max(self.limiter.retry_after(keys[0]),
                   self.limiter.retry_after_distinct(keys[1], self.limiter.attempts * 4))
        if wait > 0:
            err = UserError("auth.rate_limited", f"Too many failed logins; try again in "
                                                 f"{int(wait) + 1} s.")
            err.retry_after = int(wait) + 1     # type: ignore[attr-defined]
            raise err
        # Counted as failed before the check (no await in between), so attempts sent all at
        # once cannot slip past the limit while the first ones are being checked.
        for k in keys:
            self.limiter.failed(k, name)
        pending = self._pending.get(username)     # before the row: its hash is on record
        user = await self.db.user(username) if username else None
        ok = await asyncio.to_thread(self._password_ok, pending, user, password)
        if not ok or user is None:
            raise UserError("auth.bad_credentials", "Wrong user name or password.")
        self.limiter.succeeded(keys[0])
        self.limiter.undo(keys[1])
        token = secrets.token_urlsafe(32)
        now = self._now()
        expires = now + timedelta(seconds=self.session_seconds)
        csrf = secrets.token_urlsafe(24)
        await self.db.add_session(token_hash=_hash_token(token), user=user, csrf=csrf, now=now,
                                  expires=expires, address=address)
        key = _hash_token(token)
        session = {"username": user["username"], "role": user["role"],
                   "agent_id": user["agent_id"], "csrf": csrf, "expires_at": expires, "key": key}
        self._cache[key] = session
        return token, session

    async def session_of(self, request: web.Request) -> dict[str, Any] | None:
        """The request's valid session, or None (none, unknown, or expired)."""
        token = request.cookies.get(COOKIE)
        if not token or len(token) > 200:
            return None
        key = _hash_token(token)
        s = self._cache.get(key)
        if s is None:
            s = await self.db.session(key)
            if s is None:
                return None
            s["key"] = key
            self._cache[key] = s
            if len(self._cache) > 5000:
                self._cache.pop(next(iter(self._cache)))
        if s["expires_at"] <= self._now():
            self._cache.pop(key, None)
            await self.db.drop_session(key)
            return None
        return s

    async def logout(self, request: web.Request) -> None:
        token = request.cookies.get(COOKIE)
        if token:
            key = _hash_token(token)
            self._cache.pop(key, None)
            await self.db.drop_session(key)
            self._end_live(lambda k, _u: k == key)
            for ended in self.session_ended:
                await ended(key)

    def _end_live(self, which: Callable[[str, str], bool]) -> None:
        """Close the open WebSockets of ended sessions (their handlers are cancelled: the
        connection closes and the page, reconnecting, is sent to the login); and tell
        ``session_ended`` (an admin's logout of the user, a password changed)."""
        ended = set()
        for task, (key, user, _address) in list(self._live.items()):
            if which(key, user) and task is not asyncio.current_task():
                task.cancel()
                ended.add(key)
        for key in ended:
            for callback in self.session_ended:
                asyncio.ensure_future(callback(key))

    def end_all_live(self) -> None:
        """Close every open WebSocket (the server stops)."""
        self._end_live(lambda _k, _u: True)

    def forget_user(self, username: str) -> None:
        """Drop a user's cached sessions (their rows were deleted)."""
        for key in [k for k, v in self._cache.items() if v["username"] == username]:
            self._cache.pop(key, None)
        self._end_live(lambda _k, u: u == username)

    def set_cookie(self, response: web.StreamResponse, token: str,
                   request: web.Request | None = None) -> None:
        """The session cookie: Secure with ``web.secure_cookies``, or when the client came
        over HTTPS (to us, or to a trusted proxy)."""
        secure = self.secure_cookies or (request is not None
                                         and self.forwarded.scheme(request) == "https")
        response.set_cookie(COOKIE, token, max_age=int(self.session_seconds), path="/",
                            httponly=True, samesite="Strict", secure=secure)

    # --- the middleware ---------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        resource = request.match_info.route.resource
        canonical = resource.canonical if resource is not None else None
        access = access_for(request.method, canonical)
        if access is None:
            self.log.warning("auth.no_rule", method=request.method, route=canonical)
            access = ADMIN
        agent_in_path = request.match_info.get("agent")
        is_ws = request.headers.get("Upgrade", "").lower() == "websocket"
        changing = request.method not in SAFE_METHODS

        if access == PUBLIC:
            if changing and not self._same_origin(request):
                return _json_error("auth.csrf", "This request came from another site.", 403)
            return await handler(request)

        if access == METRICS and self._bearer_ok(request):
            return await handler(request)

        user = await self.session_of(request)
        if user is None:
            if request.method == "GET" and not is_ws and wants_html(request):
                raise web.HTTPFound(f"/login?next={_quote_next(request.path_qs)}")
            return _json_error("auth.required", "Log in first (no session, or it expired).", 401)
        request[USER] = user
        if not allowed(access, user, agent_in_path):
            if changing:
                await self._audit(request, user, 403, {"refused": "auth.forbidden"})
            if request.method == "GET" and not is_ws and wants_html(request):
                return forbidden_page(user["role"], request.path, self.homes.get(user["role"], "/"))
            return _json_error("auth.forbidden",
                               f"The role {user['role']} may not use {request.method} {canonical}.", 403)
        if is_ws and not self._same_origin(request):
            return _json_error("auth.csrf", "This WebSocket was opened from another site.", 403)
        if is_ws:
            return await self._live_socket(request, handler, user)
        if changing:
            sent = request.headers.get(CSRF_HEADER, "")
            if not self._same_origin(request) or not hmac.compare_digest(sent, user["csrf"]):
                await self._audit(request, user, 403, {"refused": "auth.csrf"})
                return _json_error("auth.csrf", f"Missing or wrong {CSRF_HEADER} header, or "
                                                "another site's request.", 403)
            # The body is read for the log after the handler (which reads it first: a body
            # read here would look empty to the handler).
            try:
                response = await handler(request)
            except web.HTTPException as e:
                await self._audit(request, user, e.status, await self._body_for_audit(request))
                raise
            except Exception:
                await self._audit(request, user, 500, await self._body_for_audit(request))
                raise
            detail = await self._body_for_audit(request)
            if isinstance(response, web.Response) and response.status >= 400:
                detail["error"] = _error_id(response)
            detail.update(request.get(AUDIT, {}))
            await self._audit(request, user, response.status, detail)
            return response
        return await handler(request)

    async def _live_socket(self, request: web.Request, handler: Any,
                           user: dict[str, Any]) -> web.StreamResponse:
        """A WebSocket lives no longer than its session, and a session (or an address) has
        at most ``ws_per_session`` (``ws_per_address``) open: one more is accepted and closed
        at once with 1008 and the reason, so the page shows it instead of retrying blindly."""
        task = asyncio.current_task()
        assert task is not None
        key, address = user.get("key", ""), self.forwarded.address(request)
        open_here = [(k, a) for k, _u, a in self._live.values()]
        by_session = sum(1 for k, _a in open_here if k == key)
        by_address = sum(1 for _k, a in open_here if a == address)
        if by_session >= self.ws_per_session or by_address >= self.ws_per_address:
            which, limit = (("session", self.ws_per_session) if by_session >= self.ws_per_session
                            else ("address", self.ws_per_address))
            self.log.warning("web.ws_refused", user=user["username"], address=address,
                             route=request.path, per=which, limit=limit)
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            await ws.close(code=WS_TOO_MANY, message=f"too many open connections for this "
                                                     f"{which} (at most {limit})".encode())
            return ws
        self._live[task] = (key, user["username"], address)
        left = (user["expires_at"] - self._now()).total_seconds()
        timer = asyncio.get_running_loop().call_later(max(0.0, left), task.cancel)
        try:
            return await handler(request)
        finally:
            timer.cancel()
            self._live.pop(task, None)

    def _bearer_ok(self, request: web.Request) -> bool:
        given = request.headers.get("Authorization", "")
        return bool(self.metrics_token) and given.startswith("Bearer ") and hmac.compare_digest(
            given[7:].strip().encode(), self.metrics_token.encode())

    def _same_origin(self, request: web.Request) -> bool:
        """No Origin header (not a browser, or a same-origin GET) or this server's: the same
        host and the same scheme (a page over http may not act on the https site)."""
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        try:
            parts = urlsplit(origin)
        except ValueError:
            return False
        return (parts.netloc.lower() == (request.host or "").lower()
                and parts.scheme.lower() == self.forwarded.scheme(request))

    async def _body_for_audit(self, request: web.Request) -> dict[str, Any]:
        detail: dict[str, Any] = {}
        if request.match_info:
            detail["route"] = {k: v[:80] for k, v in request.match_info.items()}
        length = request.content_length or 0
        if request.content_type == "application/json" and 0 < length <= 64 * 1024:
            try:
                detail["body"] = _redact(json.loads(await request.read()))
            except (ValueError, UnicodeDecodeError, RecursionError):
                detail["body"] = "(not JSON)"
            except web.HTTPException:
                pass
        elif length:
            detail["body"] = f"({request.content_type}, {length} bytes)"
        return detail

    async def audit(self, request: web.Request, user: dict[str, Any], action: str, status: int,
                    detail: dict[str, Any]) -> None:
        """An audit entry named by the caller (logins, logouts)."""
        try:
            await self.db.audit(at=self._now(), username=user.get("username", ""),
                                role=user.get("role", ""), action=action, target=request.path,
                                status=status, detail=detail, address=self.forwarded.address(request))
        except Exception:
            self.log.exception("auth.audit_failed", action=action, user=user.get("username"))

    async def _audit(self, request: web.Request, user: dict[str, Any], status: int,
                     detail: dict[str, Any]) -> None:
        resource = request.match_info.route.resource
        canonical = resource.canonical if resource is not None else request.path
        await self.audit(request, user, f"{request.method} {canonical}", status, detail)

    # --- the routes: /api/auth/* -------------------------------------------------------------

    def add_routes(self, app: web.Application, homes: dict[str, str]) -> None:
        self.homes = dict(homes)
        async def login(request: web.Request) -> web.Response:
            data = await json_object(request)
            username, password = data.get("username"), data.get("password")
            if not isinstance(username, str) or not isinstance(password, str) \
                    or not 0 < len(username) <= 40 or not 0 < len(password) <= 200:
                return _json_error("http.bad_request", "username and password are required text", 400)
            who = {"username": username, "role": ""}
            try:
                token, session = await self.login(username, password, self.forwarded.address(request))
            except UserError as e:
                status = 429 if e.id == "auth.rate_limited" else 401
                await self.audit(request, who, "login", status, {"error": e.id})
                headers = {"Retry-After": str(getattr(e, "retry_after", 1))} if status == 429 else {}
                return _json_error(e.id, e.message, status, **headers)
            await self.audit(request, session, "login", 200, {})
            response = web.json_response(_me(session, homes))
            self.set_cookie(response, token, request)
            return response

        async def logout(request: web.Request) -> web.Response:
            await self.logout(request)
            await self.audit(request, request[USER], "logout", 200, {})
            response = web.json_response({"ok": True})
            response.del_cookie(COOKIE, path="/")
            return response

        async def me(request: web.Request) -> web.Response:
            return web.json_response(_me(request[USER], homes))

        app.router.add_post("/api/auth/login", login)
        app.router.add_post("/api/auth/logout", logout)
        app.router.add_get("/api/auth/me", me)


def pages_for(user: dict[str, Any]) -> list[str]:
    """The pages (not the API) this user may open, from RULES: where a login may go next."""
    return [pattern for method, pattern, access in RULES
            if method == "GET" and pattern.count("/") == 1 and pattern not in ("/", "/login",
                                                                           "/static")
            and access != METRICS and allowed(access, user, None)]


def _me(session: dict[str, Any], homes: dict[str, str]) -> dict[str, Any]:
    return {"username": session["username"], "role": session["role"],
            "agent_id": session["agent_id"], "csrf": session["csrf"],
            "expires_at": session["expires_at"].isoformat(), "home": homes.get(session["role"], "/"),
            "pages": pages_for(session)}


def _quote_next(path: str) -> str:
    from urllib.parse import quote
    return quote(path if path.startswith("/") and not path.startswith("//") else "/", safe="/")


def _error_id(response: web.Response) -> str | None:
    try:
        return json.loads(response.body or b"{}").get("error")  # type: ignore[arg-type]
    except (ValueError, AttributeError, TypeError):
        return None
