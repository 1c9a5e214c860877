"""Who is at the other end of a request: the client's address and the scheme it used.

Behind a reverse proxy (TLS ended there) every request comes from the proxy's address over
plain HTTP. ``X-Forwarded-For`` and ``X-Forwarded-Proto`` say who and how, but anybody can send
them: they are read only when the request comes from one of ``web.trusted_proxies``, and the
client is the nearest address in ``X-Forwarded-For`` that is not itself a trusted proxy.
"""
from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from acd.netaddr import address_in, networks


class Forwarded:
    def __init__(self, trusted: Sequence[str] = ()) -> None:
        self.trusted = networks(trusted)

    def _is_trusted(self, address: str | None) -> bool:
        return address_in(address, self.trusted)

    def address(self, request: web.Request) -> str:
        """The client's address: the peer's, or through trusted proxies the nearest one
        ``X-Forwarded-For`` names that is not a trusted proxy."""
        remote = request.remote or ""
        if not self._is_trusted(remote):
            return remote
        hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")
                if h.strip()]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop[:64]
        return hops[0][:64] if hops else remote

    def scheme(self, request: web.Request) -> str:
        """``https`` or ``http``, as the client used it (a trusted proxy's
        ``X-Forwarded-Proto``, else this connection's)."""
        if self._is_trusted(request.remote):
            proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
            if proto in ("http", "https"):
                return proto
        return request.scheme


__all__ = ["Forwarded", "networks"]
