"""Addresses against lists of networks: who may open a FastAGI session (``agi.allow``), which
reverse proxies are believed (``web.trusted_proxies``)."""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(items: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or networks as networks (an address alone is a network of one). ValueError
    names a bad item."""
    out = []
    for item in items:
        try:
            out.append(ipaddress.ip_network(str(item).strip(), strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network") from None
    return tuple(out)


def _ip(address: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address without its zone suffix, an IPv4-mapped IPv6 address as its IPv4 address;
    not an address: None."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip


def address_in(address: str | None, nets: Sequence[Network]) -> bool:
    """Whether ``address`` (a zone suffix allowed; an IPv4-mapped IPv6 address as its IPv4
    address) is in one of ``nets``. Not an address: False."""
    ip = _ip(address)
    return ip is not None and any(ip in net for net in nets)


def canonical(address: str) -> str:
    """One spelling per address, for counting by address: ``::ffff:10.0.0.1`` and ``10.0.0.1``
    alike, IPv6 compressed, no zone. Not an address: unchanged."""
    ip = _ip(address)
    return str(ip) if ip is not None else address


__all__ = ["Network", "networks", "address_in", "canonical"]
