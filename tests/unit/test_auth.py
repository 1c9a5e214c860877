"""Web auth without a server: the route rules, roles, the login rate limit, passwords."""
import pytest
from argon2 import PasswordHasher

from acd.web import auth
from acd.web.auth import (ADMIN, AGENT_SELF, ANY, METRICS, PUBLIC, SELF_ONLY, SUPERVISOR,
                          LoginLimiter, Passwords, access_for, allowed)

AGENT = {"role": "agent", "agent_id": "1001"}
SUP = {"role": "supervisor", "agent_id": None}
ADM = {"role": "admin", "agent_id": None}


@pytest.mark.parametrize("method,route,access", [
    ("GET", "/api/health", PUBLIC),
    ("POST", "/api/auth/login", PUBLIC),
    ("GET", "/static", PUBLIC),
    ("POST", "/api/auth/logout", ANY),
    ("GET", "/api/agents/{agent}", AGENT_SELF),
    ("HEAD", "/api/agents/{agent}", AGENT_SELF),
    ("POST", "/api/agents/{agent}/state", AGENT_SELF),
    ("POST", "/api/agents/{agent}/call/hold", SELF_ONLY),
    ("POST", "/api/agents/{agent}/call/transfer/cancel", SELF_ONLY),
    ("DELETE", "/api/agents/{agent}/recent/{uniqueid}", SELF_ONLY),
    ("GET", "/api/agents", SUPERVISOR),
    ("GET", "/api/supervisor/ws", SUPERVISOR),
    ("GET", "/metrics", METRICS),
    ("POST", "/api/admin/customers/import", ADMIN),
    ("POST", "/api/flows/reload", ADMIN),
])
def test_route_rules(method, route, access):
    assert access_for(method, route) == access


def test_a_route_without_a_rule_has_none_and_an_unmatched_path_needs_a_login():
    assert access_for("GET", "/api/something/new") is None
    assert access_for("DELETE", "/api/health") is None        # only GET is public
    assert access_for("GET", None) == ANY


def test_roles():
    assert allowed(AGENT_SELF, AGENT, "1001") and not allowed(AGENT_SELF, AGENT, "1002")
    assert allowed(AGENT_SELF, SUP, "1002") and allowed(AGENT_SELF, ADM, "1002")
    assert allowed(SELF_ONLY, AGENT, "1001")
    assert not allowed(SELF_ONLY, AGENT, "1002") and not allowed(SELF_ONLY, SUP, "1001")
    assert not allowed(SUPERVISOR, AGENT, None) and allowed(SUPERVISOR, SUP, None)
    assert not allowed(ADMIN, SUP, None) and allowed(ADMIN, ADM, None)
    assert allowed(auth.AGENT, AGENT, None) and not allowed(auth.AGENT, ADM, None)


def test_login_limiter_counts_failures_in_a_sliding_window():
    now = [1000.0]
    lim = LoginLimiter(3, 60, clock=lambda: now[0])
    for _ in range(3):
        assert lim.retry_after("k") == 0
        lim.failed("k")
    assert lim.retry_after("k") == pytest.approx(60)
    now[0] += 30
    assert lim.retry_after("k") == pytest.approx(30)
    now[0] += 30.001
    assert lim.retry_after("k") == 0
    lim.failed("k")
    lim.succeeded("k")
    assert lim.retry_after("k") == 0
    assert lim.retry_after("other") == 0


def test_an_address_is_held_back_by_many_names_failing_never_by_one_name_failing_often():
    now = [1000.0]
    lim = LoginLimiter(3, 60, clock=lambda: now[0])
    for _ in range(20):                       # one user's guesses: that user's business
        lim.failed("addr", "alice")
    assert lim.retry_after_distinct("addr", 3) == 0
    lim.failed("addr", "bob")
    now[0] += 10
    lim.failed("addr", "carol")               # three names from one address: a scan
    assert lim.retry_after_distinct("addr", 3) == pytest.approx(50)
    now[0] += 50.001
    assert lim.retry_after_distinct("addr", 3) == 0


def test_passwords_are_argon2id_and_verify():
    pw = Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    h = pw.hash("correct horse")
    assert h.startswith("$argon2id$") and "correct horse" not in h
    assert pw.verify(h, "correct horse")
    assert not pw.verify(h, "wrong")
    assert not pw.verify(None, "correct horse")           # unknown user: still refused
    assert not pw.verify("not a hash", "x")
    assert not pw.needs_update(h, "correct horse") and pw.needs_update(h, "changed")


def test_redaction_for_the_audit_log():
    out = auth._redact({"password": "x", "api_token": "y", "state": "break", "deep": {"a": [1] * 50},
                        "text": "z" * 500})
    assert out["password"] == "(hidden)" and out["api_token"] == "(hidden)"
    assert out["state"] == "break" and len(out["deep"]["a"]) == 20 and len(out["text"]) == 200
