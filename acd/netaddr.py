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


def address_in(address: str | None, nets: Sequence[Network]) -> bool:
    """Whether ``address`` (a zone suffix allowed; an IPv4-mapped IPv6 address as its IPv4
    address) is in one of ``nets``. Not an address: False."""
    if not address or not nets:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in nets)


__all__ = ["Network", "networks", "address_in"]
