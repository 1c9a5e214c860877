"""The ICE host candidates Asterisk offers a browser phone: its RTP address, and no other.

Asterisk (res_rtp_asterisk) offers every IPv4 address of the machine's interfaces (loopback
left out) as an ICE host candidate, whatever address RTP is bound to. Ours is bound to
``asterisk.media_address`` (``bind_rtp_to_media_address``), so those candidates name sockets
that do not exist, and on a loopback set-up the browser is never offered 127.0.0.1 at all
(seen on Asterisk 22.10: the offer carried only the network card's address; an ACL that keeps
only the media address left no candidate, and ICE never started). rtp.conf's
``[ice_host_candidates]`` maps an enumerated address to the one advertised: each of the
machine's addresses is mapped to the media address. The addresses are read when the
configuration is rendered (every start and every reload of ours).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import ipaddress
import socket


class _SockaddrIn(ctypes.Structure):
    _fields_ = [("family", ctypes.c_ushort), ("port", ctypes.c_uint16),
                ("addr", ctypes.c_ubyte * 4)]


class _Ifaddrs(ctypes.Structure):
    pass


_Ifaddrs._fields_ = [("next", ctypes.POINTER(_Ifaddrs)), ("name", ctypes.c_char_p),
                     ("flags", ctypes.c_uint), ("addr", ctypes.c_void_p),
                     ("netmask", ctypes.c_void_p), ("ifu", ctypes.c_void_p),
                     ("data", ctypes.c_void_p)]


def local_ipv4() -> list[str]:
    """The IPv4 addresses of this machine's interfaces (getifaddrs), loopback included."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    head = ctypes.POINTER(_Ifaddrs)()
    if libc.getifaddrs(ctypes.byref(head)) != 0:
        return []
    found: list[str] = []
    try:
        node = head
        while node:
            ifa = node.contents
            if ifa.addr:
                sa = ctypes.cast(ifa.addr, ctypes.POINTER(_SockaddrIn)).contents
                if sa.family == socket.AF_INET:
                    addr = ".".join(str(b) for b in sa.addr)
                    if addr not in found:
                        found.append(addr)
            node = ifa.next
    finally:
        libc.freeifaddrs(head)
    return found


def host_candidates(media_address: str, addresses: list[str] | None = None) -> str:
    """rtp.conf's ``[ice_host_candidates]``: every other local IPv4 address advertised as the
    media address (empty when the media address is not one IPv4 address)."""
    try:
        media = ipaddress.ip_address(media_address)
    except ValueError:
        return ""
    if media.version != 4 or media.is_unspecified:
        return ""
    others = [a for a in (local_ipv4() if addresses is None else addresses) if a != media_address]
    if not others:
        return ""
    return ("[ice_host_candidates]\n"
            + "".join(f"{a} => {media_address}\n" for a in others))
