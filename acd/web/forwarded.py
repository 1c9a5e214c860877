"""Who is at the other end of a request: the client's address and the scheme it used.

Behind a reverse proxy (TLS ended there) every request comes from the proxy's address over
plain HTTP. ``X-Forwarded-For`` and ``X-Forwarded-Proto`` say who and how, but anybody can send
them: they are read only when the request comes from one of ``web.trusted_proxies``, and the
client is the nearest address in ``X-Forwarded-For`` that is not itself a trusted proxy.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(items: Sequence[str]) -> tuple[Network, ...]:
    """``web.trusted_proxies`` as networks (an address alone is a network of one).
    ValueError names a bad item."""
    out = []
    for item in items:
        try:
            out.append(ipaddress.ip_network(str(item).strip(), strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network") from None
    return tuple(out)


class Forwarded:
    def __init__(self, trusted: Sequence[str] = ()) -> None:
        self.trusted = networks(trusted)

    def _is_trusted(self, address: str | None) -> bool:
        if not self.trusted or not address:
            return False
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.trusted)

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
