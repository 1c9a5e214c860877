"""The FastAGI wire protocol, without any I/O.

Asterisk connects, sends a block of ``agi_name: value`` header lines ended by an empty line,
then waits for one command line at a time and answers each with a reply (one line, or several
for ``520-``).  Asterisk may also write ``HANGUP`` on its own when the channel hangs up.

Everything a remote party sends is parsed here and refused with :class:`AgiProtocolError`, whose
``id`` is a stable log event name.  Everything we send goes through :func:`format_command`, which
refuses values that could end the line early (newline, carriage return, NUL) so that a
caller-controlled value can never become a second command.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

MAX_HEADERS = 64
MAX_HEADER_LINE = 2048          # bytes, newline included
MAX_USAGE_LINES = 200           # lines in a 520- usage block
# res_agi reads a command into a 2048 byte buffer: a longer line is cut and its tail would be
# run as a second command, so we refuse to write one.
MAX_COMMAND_LINE = 2047         # bytes, newline included

HANGUP_LINE = "HANGUP"


class AgiError(Exception):
    """Base of all AGI errors; ``id`` is a stable event name for logs."""

    id = "agi.error"

    def __init__(self, message: str = "", *, id: str | None = None):
        super().__init__(message or (id or self.id))
        if id is not None:
            self.id = id


class AgiProtocolError(AgiError):
    """The remote party sent something that is not valid AGI."""

    id = "agi.protocol_error"


class AgiArgumentError(AgiError, ValueError):
    """A command or argument we were asked to send cannot be sent safely."""

    id = "agi.bad_argument"


class AgiHangup(AgiError):
    """The channel hung up (511 reply) or Asterisk closed the connection."""

    id = "agi.hangup"


class AgiTimeout(AgiError):
    """No reply to a command within the command timeout."""

    id = "agi.command_timeout"


class AgiCommandError(AgiError):
    """Asterisk refused a command (510, 520, other non-200 code) or reported failure (-1)."""

    id = "agi.command_error"

    def __init__(self, reply: "AgiReply", message: str = ""):
        super().__init__(message or f"AGI command failed: {reply.code} {reply.result or ''} {reply.data or ''}".strip())
        self.reply = reply


# --------------------------------------------------------------------------- headers

_HEADER_RE = re.compile(r"(agi_[a-z0-9_]+):[ \t]?(.*)", re.ASCII)
_ARG_RE = re.compile(r"agi_arg_([1-9][0-9]{0,3})", re.ASCII)


def _text(line: bytes | str) -> str:
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="replace")
    return line.rstrip("\r\n")


@dataclass(frozen=True)
class AgiRequest:
    """One FastAGI request: the headers Asterisk sent, and what they mean."""

    script: str                      # request URL path without the leading "/"
    query: dict[str, str]            # request URL query (?a=1&b=2), first value of each name
    headers: dict[str, str]          # every agi_* header as sent

    def _h(self, name: str) -> str:
        return self.headers.get(name, "")

    @property
    def request(self) -> str:
        return self._h("agi_request")

    @property
    def channel(self) -> str:
        return self._h("agi_channel")

    @property
    def uniqueid(self) -> str:
        return self._h("agi_uniqueid")

    @property
    def caller_id_num(self) -> str:
        return self._h("agi_callerid")

    @property
    def caller_id_name(self) -> str:
        return self._h("agi_calleridname")

    @property
    def dnid(self) -> str:
        return self._h("agi_dnid")

    @property
    def extension(self) -> str:
        return self._h("agi_extension")

    @property
    def context(self) -> str:
        return self._h("agi_context")

    @property
    def args(self) -> list[str]:
        """``agi_arg_1``, ``agi_arg_2``, ... in numeric order, up to the first gap."""
        out = []
        while (value := self.headers.get(f"agi_arg_{len(out) + 1}")) is not None:
            out.append(value)
        return out


class HeaderParser:
    """Feed header lines one at a time; :meth:`feed` returns the request after the empty line."""

    def __init__(self, max_headers: int = MAX_HEADERS, max_line: int = MAX_HEADER_LINE):
        self.max_headers = max_headers
        self.max_line = max_line
        self.headers: dict[str, str] = {}

    def feed(self, line: bytes | str) -> AgiRequest | None:
        size = len(line.encode("utf-8", errors="replace")) if isinstance(line, str) else len(line)
        if size > self.max_line:
            raise AgiProtocolError(f"header line of {size} bytes", id="agi.header_too_long")
        text = _text(line)
        if text == "":
            return build_request(self.headers)
        if len(self.headers) >= self.max_headers:
            raise AgiProtocolError(f"more than {self.max_headers} headers", id="agi.too_many_headers")
        m = _HEADER_RE.fullmatch(text)
        if m is None or "\x00" in text:
            raise AgiProtocolError(f"not an agi header: {text[:80]!r}", id="agi.bad_header")
        name, value = m.group(1), m.group(2)
        if name in self.headers:
            raise AgiProtocolError(f"duplicate header {name}", id="agi.bad_header")
        self.headers[name] = value
        return None


def build_request(headers: dict[str, str]) -> AgiRequest:
    """Check the required headers and make the request out of them."""
    url = headers.get("agi_request", "")
    if not url or headers.get("agi_network") != "yes":
        raise AgiProtocolError("agi_request or agi_network: yes missing", id="agi.no_request")
    try:
        parts = urlsplit(url)
        query = {}
        for k, v in parse_qsl(parts.query, keep_blank_values=True):
            query.setdefault(k, v)
    except ValueError as exc:
        raise AgiProtocolError(f"bad agi_request URL: {url[:80]!r}", id="agi.no_request") from exc
    return AgiRequest(script=parts.path.lstrip("/"), query=query, headers=dict(headers))


def parse_headers(block: bytes | str, *, max_headers: int = MAX_HEADERS,
                  max_line: int = MAX_HEADER_LINE) -> AgiRequest:
    """Parse a whole header block (lines up to and including the empty line)."""
    if isinstance(block, str):
        block = block.encode("utf-8", errors="replace")
    parser = HeaderParser(max_headers, max_line)
    for line in block.splitlines(keepends=True):
        request = parser.feed(line)
        if request is not None:
            return request
    raise AgiProtocolError("header block not ended by an empty line", id="agi.header_eof")


# --------------------------------------------------------------------------- replies

@dataclass(frozen=True)
class AgiReply:
    """``200 result=1 (timeout) endpos=1234`` -> code=200, result='1', data='timeout',
    extra={'endpos': '1234'}.  For other codes ``result`` is None and ``data`` is the text
    (for a 520 block, the usage text)."""

    code: int
    result: str | None = None
    data: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


_CODE_RE = re.compile(r"([0-9]{3})(?:([ -])(.*))?", re.ASCII | re.DOTALL)
_RESULT_RE = re.compile(r"result=(\S*)[ \t]*(.*)", re.DOTALL)
_EXTRA_RE = re.compile(r'([^\s="()]+)=("[^"]*"|[^\s"()]*)')
_EXTRAS_RE = re.compile(r'(?:[ \t]+[^\s="()]+=(?:"[^"]*"|[^\s"()]*))*[ \t]*')
_END_OF_USAGE = "520 End of proper usage."


def is_hangup_line(line: bytes | str) -> bool:
    """The line Asterisk writes by itself when the channel hangs up (AGISIGHUP)."""
    return _text(line).strip() == HANGUP_LINE


def _parse_200(rest: str) -> AgiReply:
    m = _RESULT_RE.fullmatch(rest)
    if m is None:
        raise AgiProtocolError(f"200 reply without result=: {rest[:80]!r}", id="agi.bad_reply")
    result, tail = m.group(1), m.group(2)
    data = None
    if tail.startswith("("):
        # The data is not escaped ("GET VARIABLE" of "a) b=c" gives "(a) b=c)"), so take the
        # rightmost ")" after which only key=value pairs follow.
        tail_extras = ""
        end = len(tail)
        while (end := tail.rfind(")", 0, end)) > 0:
            if _EXTRAS_RE.fullmatch(tail, end + 1):
                data, tail_extras = tail[1:end], tail[end + 1:]
                break
        else:
            data = tail[1:]
        tail = tail_extras
    extra = {k: v[1:-1] if v.startswith('"') else v for k, v in _EXTRA_RE.findall(tail)}
    return AgiReply(200, result, data, extra)


class ReplyParser:
    """Feed reply lines (``HANGUP`` lines already taken out); :meth:`feed` returns the reply
    once complete, or None while a ``520-`` block is still open."""

    def __init__(self, max_lines: int = MAX_USAGE_LINES):
        self.max_lines = max_lines
        self._usage: list[str] | None = None
        self._code = 0

    def feed(self, line: bytes | str) -> AgiReply | None:
        text = _text(line)
        if self._usage is not None:
            if text.startswith(f"{self._code} ") or text == str(self._code):
                return self._end()
            if text.endswith(_END_OF_USAGE):      # usage text without a final newline
                self._usage.append(text[: -len(_END_OF_USAGE)])
                return self._end()
            if len(self._usage) >= self.max_lines:
                raise AgiProtocolError("520 usage block too long", id="agi.reply_too_long")
            self._usage.append(text)
            return None
        if text == "":
            return None                           # tolerated between replies
        m = _CODE_RE.fullmatch(text)
        if m is None:
            raise AgiProtocolError(f"not an AGI reply: {text[:80]!r}", id="agi.bad_reply")
        code, sep, rest = int(m.group(1)), m.group(2), m.group(3) or ""
        if sep == "-":
            self._code, self._usage = code, []
            return None
        if code == 200:
            return _parse_200(rest)
        return AgiReply(code, None, rest)

    def _end(self) -> AgiReply:
        usage = "\n".join(self._usage or [])
        self._usage = None
        return AgiReply(self._code, None, usage)


def parse_reply(text: bytes | str) -> AgiReply:
    """Parse one whole reply (one line, or a 520- block)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    parser = ReplyParser()
    for line in text.split("\n"):
        reply = parser.feed(line)
        if reply is not None:
            return reply
    raise AgiProtocolError("incomplete reply", id="agi.bad_reply")


# --------------------------------------------------------------------------- commands

_COMMAND_NAME_RE = re.compile(r"[A-Za-z]+(?: [A-Za-z]+)*", re.ASCII)
_BARE_RE = re.compile(r"[A-Za-z0-9_.:/@+=*#,-]+", re.ASCII)
_FORBIDDEN = ("\n", "\r", "\x00")


def quote_arg(value: str | int) -> str:
    """Quote one argument for res_agi's parser: plain tokens stay bare, anything else goes in
    double quotes with ``\\`` and ``"`` escaped (an empty value becomes ``""``).  Newline,
    carriage return and NUL are refused: they would end the command line."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise AgiArgumentError(f"AGI argument must be str or int, not {type(value).__name__}")
    value = str(value)
    if any(c in value for c in _FORBIDDEN):
        raise AgiArgumentError("newline, carriage return or NUL in an AGI argument")
    if _BARE_RE.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_command(name: str, *args: str | int) -> bytes:
    """``format_command("STREAM FILE", "hello", "")`` -> ``b'STREAM FILE hello ""\\n'``."""
    if not isinstance(name, str) or not _COMMAND_NAME_RE.fullmatch(name):
        raise AgiArgumentError(f"bad AGI command name {name!r}")
    try:
        line = " ".join([name, *(quote_arg(a) for a in args)]).encode("utf-8") + b"\n"
    except UnicodeEncodeError as exc:          # lone surrogates
        raise AgiArgumentError("AGI argument is not encodable as UTF-8") from exc
    if len(line) > MAX_COMMAND_LINE:
        raise AgiArgumentError(f"AGI command line of {len(line)} bytes is too long",
                               id="agi.command_too_long")
    return line
