"""The client's address and scheme behind a reverse proxy: X-Forwarded-* believed only from a
trusted proxy; the session cookie Secure when the client came over HTTPS."""
from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from acd.web.auth import Auth
from acd.netaddr import networks
from acd.web.forwarded import Forwarded


def req(peer: str, **headers: str) -> web.Request:
    r = make_mocked_request("GET", "/", headers=headers)
    r._transport_peername = (peer, 40000)              # as aiohttp reads request.remote
    return r


def test_headers_are_believed_only_from_a_trusted_proxy():
    fw = Forwarded(["10.0.0.5", "192.168.0.0/24"])
    spoofed = req("203.0.113.9", **{"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https"})
    assert (fw.address(spoofed), fw.scheme(spoofed)) == ("203.0.113.9", "http")
    proxied = req("10.0.0.5", **{"X-Forwarded-For": "1.2.3.4, 198.51.100.7, 192.168.0.3",
                                 "X-Forwarded-Proto": "https"})
    # the nearest hop that is not a proxy of ours: 198.51.100.7 (1.2.3.4 is what it claims)
    assert (fw.address(proxied), fw.scheme(proxied)) == ("198.51.100.7", "https")
    bare = req("10.0.0.5")
    assert (fw.address(bare), fw.scheme(bare)) == ("10.0.0.5", "http")
    assert Forwarded().address(proxied) == "10.0.0.5"        # no proxies trusted: the peer


def test_a_bad_proxy_entry_is_named():
    with pytest.raises(ValueError, match="'nope'"):
        networks(["10.0.0.1", "nope"])


def _cookie(auth: Auth, request: web.Request | None) -> str:
    resp = web.Response()
    auth.set_cookie(resp, "tok", request)
    return resp.cookies["acd_session"].output()


def test_the_session_cookie_is_secure_when_the_client_came_over_https():
    auth = Auth(None, trusted_proxies=["10.0.0.5"])
    assert "Secure" not in _cookie(auth, req("10.0.0.5"))
    assert "Secure" in _cookie(auth, req("10.0.0.5", **{"X-Forwarded-Proto": "https"}))
    assert "Secure" not in _cookie(auth, req("203.0.113.9", **{"X-Forwarded-Proto": "https"}))
    assert "Secure" in _cookie(Auth(None, secure_cookies=True), req("203.0.113.9"))
