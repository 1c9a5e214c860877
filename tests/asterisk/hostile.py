"""A hostile carrier's caller: a SIP user agent written by hand (UDP on 127.0.0.1), so that the
From header of its INVITE carries exactly the bytes a test gives it: an escaped display name,
a long user part, percent-escapes in the URI. AMI Originate cannot carry those bytes (its
CallerID is parsed and re-quoted by Asterisk), a hand-made INVITE can.

It speaks just enough SIP for one call towards Asterisk: INVITE with an SDP offer, the
provisional and final replies, ACK, and BYE from either side (it answers Asterisk's BYE and
any other request with 200). It sends no RTP (Asterisk needs none from a caller); what
Asterisk sends it is read and dropped.

Waits have generous upper bounds: they end a stuck test, they never measure speed.
"""
from __future__ import annotations

import asyncio
import itertools
import secrets

WAIT = 20.0
T1 = 0.5                      # SIP's retransmission timer, for the INVITE and the BYE
_ids = itertools.count(1)


class _Rtp(asyncio.DatagramProtocol):
    def datagram_received(self, data: bytes, addr) -> None:  # noqa: ANN001
        pass                  # Asterisk's media: not listened to


class _Sip(asyncio.DatagramProtocol):
    def __init__(self, ua: "HostileCaller") -> None:
        self.ua = ua
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:  # noqa: ANN001
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:  # noqa: ANN001
        self.ua._received(data, addr)


def _headers(msg: bytes) -> tuple[str, dict[str, list[str]]]:
    head = msg.split(b"\r\n\r\n", 1)[0].decode("utf-8", errors="replace")
    lines = head.split("\r\n")
    out: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        out.setdefault(name.strip().lower(), []).append(value.strip())
    return lines[0], out


class HostileCaller:
    """One call from a From header given as raw bytes: ``display`` is the display-name part
    exactly as sent (quotes and escapes included, or b"" for none), ``user`` the URI's user
    part exactly as sent (percent-escapes included)."""

    def __init__(self, sip_host: str, sip_port: int, number: str, *, user: bytes,
                 display: bytes = b"") -> None:
        self.host, self.port, self.number = sip_host, sip_port, number
        self.user, self.display = user, display
        self.call_id = f"hostile{next(_ids)}-{secrets.token_hex(6)}@127.0.0.1"
        self.from_tag = secrets.token_hex(6)
        self.to_tag = ""
        self.cseq = 1
        self.responses: list[tuple[str, dict[str, list[str]]]] = []
        self.requests: list[str] = []       # request lines Asterisk sent us
        self.final: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.bye_done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.ended_by_far_end = asyncio.Event()
        self._sip: _Sip | None = None
        self._rtp: asyncio.DatagramTransport | None = None
        self.sip_port = self.rtp_port = 0

    # ----------------------------------------------------------------- the wire

    def _send(self, data: bytes) -> None:
        assert self._sip is not None and self._sip.transport is not None
        self._sip.transport.sendto(data, (self.host, self.port))

    def _via(self) -> bytes:
        return (f"SIP/2.0/UDP 127.0.0.1:{self.sip_port};rport;"
                f"branch=z9hG4bK{secrets.token_hex(8)}").encode()

    def _from(self) -> bytes:
        name = self.display + b" " if self.display else b""
        return name + b"<sip:" + self.user + b"@127.0.0.1>;tag=" + self.from_tag.encode()

    def _to(self) -> bytes:
        to = f"<sip:{self.number}@{self.host}:{self.port}>".encode()
        return to + (f";tag={self.to_tag}".encode() if self.to_tag else b"")

    def _request(self, method: str, via: bytes, cseq: int, body: bytes = b"",
                 extra: list[bytes] = ()) -> bytes:
        lines = [f"{method} sip:{self.number}@{self.host}:{self.port} SIP/2.0".encode(),
                 b"Via: " + via, b"Max-Forwards: 70", b"From: " + self._from(),
                 b"To: " + self._to(), f"Call-ID: {self.call_id}".encode(),
                 f"CSeq: {cseq} {method}".encode(),
                 f"Contact: <sip:hostile@127.0.0.1:{self.sip_port}>".encode(), *extra,
                 b"User-Agent: hostile-carrier", f"Content-Length: {len(body)}".encode()]
        return b"\r\n".join(lines) + b"\r\n\r\n" + body

    def _sdp(self) -> bytes:
        return ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                f"m=audio {self.rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
                "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n").encode()

    def _received(self, data: bytes, addr) -> None:  # noqa: ANN001
        first, headers = _headers(data)
        if first.startswith("SIP/2.0 "):
            self.responses.append((first, headers))
            code = int(first.split()[1])
            method = headers.get("cseq", ["0 X"])[0].split()[-1]
            if method == "INVITE" and code >= 200:
                to = headers.get("to", [""])[0]
                if ";tag=" in to:
                    self.to_tag = to.split(";tag=", 1)[1].split(";")[0]
                self._ack(headers, code)
                if not self.final.done():
                    self.final.set_result(first)
            elif method == "BYE" and code >= 200 and not self.bye_done.done():
                self.bye_done.set_result(first)
            return
        # A request from Asterisk (BYE, OPTIONS, a re-INVITE): 200, echoing what must be.
        self.requests.append(first)
        reply = [b"SIP/2.0 200 OK"]
        for name in ("via", "from", "to", "call-id", "cseq"):
            for v in headers.get(name, []):
                reply.append(f"{name.title()}: {v}".encode())
        body = b""
        if first.startswith("INVITE "):
            body = self._sdp()
            reply += [f"Contact: <sip:hostile@127.0.0.1:{self.sip_port}>".encode(),
                      b"Content-Type: application/sdp"]
        reply.append(f"Content-Length: {len(body)}".encode())
        self._send(b"\r\n".join(reply) + b"\r\n\r\n" + body)
        if first.startswith("BYE "):
            self.ended_by_far_end.set()

    def _ack(self, headers: dict[str, list[str]], code: int) -> None:
        # For a 2xx a new transaction (new branch); for a failure the INVITE's own.
        via = self._via() if code < 300 else self._invite_via
        lines = [f"ACK sip:{self.number}@{self.host}:{self.port} SIP/2.0".encode(),
                 b"Via: " + via, b"Max-Forwards: 70", b"From: " + self._from(),
                 b"To: " + self._to(), f"Call-ID: {self.call_id}".encode(),
                 b"CSeq: 1 ACK", b"Content-Length: 0"]
        self._send(b"\r\n".join(lines) + b"\r\n\r\n")

    # ----------------------------------------------------------------- the call

    async def call(self, timeout: float = WAIT) -> str:
        """Send the INVITE (again on SIP's timer until a reply comes) and wait for the final
        reply; returns its status line (e.g. ``SIP/2.0 200 OK``)."""
        loop = asyncio.get_running_loop()
        t, self._sip = await loop.create_datagram_endpoint(lambda: _Sip(self),
                                                           local_addr=("127.0.0.1", 0))
        self.sip_port = t.get_extra_info("sockname")[1]
        self._rtp, _ = await loop.create_datagram_endpoint(_Rtp, local_addr=("127.0.0.1", 0))
        self.rtp_port = self._rtp.get_extra_info("sockname")[1]
        self._invite_via = self._via()
        invite = self._request("INVITE", self._invite_via, 1, self._sdp(),
                               [b"Content-Type: application/sdp", b"Allow: INVITE, ACK, BYE, CANCEL, OPTIONS"])
        deadline = loop.time() + timeout
        wait = T1
        while not self.responses:                   # retransmit until Asterisk answers at all
            self._send(invite)
            try:
                await asyncio.wait_for(asyncio.shield(self.final), wait)
            except asyncio.TimeoutError:
                assert loop.time() < deadline, f"no reply to the INVITE from {self.user[:40]!r}"
                wait = min(wait * 2, 4.0)
        return await asyncio.wait_for(self.final, max(1.0, deadline - loop.time()))

    async def bye(self, timeout: float = WAIT) -> str:
        """End the call from the caller's side; returns the BYE's final status line."""
        if self.ended_by_far_end.is_set():
            return "ended by Asterisk"
        self.cseq += 1
        bye = self._request("BYE", self._via(), self.cseq)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._send(bye)
            try:
                return await asyncio.wait_for(asyncio.shield(self.bye_done), T1 * 2)
            except asyncio.TimeoutError:
                if self.ended_by_far_end.is_set():
                    return "ended by Asterisk"
                assert loop.time() < deadline, "no reply to the BYE"

    def close(self) -> None:
        for t in (self._sip.transport if self._sip else None, self._rtp):
            if t is not None:
                t.close()


def pct(raw: bytes) -> bytes:
    """Percent-escape every byte but letters and digits: a URI user part a carrier may send,
    whatever the bytes (CR, LF and NUL included)."""
    return "".join(chr(c) if chr(c).isascii() and chr(c).isalnum() else f"%{c:02X}"
                   for c in raw).encode()


async def flood(ami, channel: str, digits: str, *, duration_ms: int = 60,  # noqa: ANN001
                batch: int = 10) -> int:
    """A DTMF flood from the caller's side: each digit is an AMI PlayDTMF on the caller's
    channel (RFC 4733 events towards the hotline), a batch at a time, without waiting for
    each to arrive (as ``Caller.send_dtmf`` does). Stops once the channel is gone; returns
    how many digits went out."""
    sent = 0
    for i in range(0, len(digits), batch):
        done = await asyncio.gather(*(ami.action("PlayDTMF", Channel=channel, Digit=d,
                                                 Duration=duration_ms)
                                      for d in digits[i:i + batch]), return_exceptions=True)
        ok = [r for r in done if not isinstance(r, BaseException)]
        sent += len(ok)
        if len(ok) < len(done):
            break
    return sent


#: Caller IDs a hostile carrier sends, and what our server stores and shows of them (the
#: documented form: see tests/asterisk/test_bad_callers.py). The HTML one wraps a customer's
#: number (tests/browser's directory): it must not find that customer.
# (what it is, display name as sent, URI user part as sent, stored name, stored number)
CR_LF = b"1\r\nagi_request: agi://127.0.0.1/evil\r\n\r\n200 result=1"
CASES = [
    ("html",
     b'"<script>window.__pwned=1</script><img src=x onerror=\'window.__pwned=2\'>"',
     pct(b"<b>13912345678</b><svg onload=alert(1)>"),
     "<script>window.__pwned=1</script><img src=x onerror='window.__pwned=2'>",
     "<b>13912345678</b><svg onload=alert(1)>"),
    ("quotes",
     b'"it\'s \\"quoted\\" `back`"', pct(b"'\"`"),
     'it\'s \\"quoted\\" `back`', "'\"`"),
    ("sql",
     b'"\' OR 1=1; DROP TABLE calls; --"', pct(b"1' OR '1'='1"),
     "' OR 1=1; DROP TABLE calls; --", "1' OR '1'='1"),
    ("control characters, CR/LF, NUL",
     b'"a\\\x01b\x02c\x1fd\x7fe\tf"', pct(CR_LF) + b"%00hidden",
     "a\\bcdef", "1agi_request: agi://127.0.0.1/evil200 result=1"),
    ("non-ASCII",
     '"张三 😀 \u202eRTL\u200f"'.encode(), pct("+86张三😀".encode()),
     "张三 😀 \u202eRTL\u200f", "+86张三😀"),
    ("1,000 characters",
     ('"' + "长" * 1000 + '"').encode(), b"1" * 1000,
     "长" * 26, "1" * 79),
]
