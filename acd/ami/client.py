"""AMI client: one supervised connection to Asterisk's manager interface.

    client = AmiClient("127.0.0.1", 5038, "acd", "secret")
    client.on_connection(reconcile)       # called True after each login, False after each loss
    client.on_event(handle)               # gets typed events (acd.ami.events)
    await client.start(connect_timeout=10)
    resp = await client.action("Redirect", Channel=chan, Context="acd", Exten="s", Priority=1)
    channels = await client.action_list("CoreShowChannels")
    await client.close()

Rules this module guarantees:

* An action is sent once, on the live connection, or not at all. ``action()`` while
  disconnected raises ``AmiDisconnected`` at once; every action pending when the link
  drops fails at once with ``AmiDisconnected``. Nothing is queued and nothing is ever
  replayed after a reconnect: the application reconciles from Asterisk in its
  ``on_connection(True)`` callback.
* Every action has a timeout (``AmiTimeout``); a late response is ignored.
* A Ping watchdog (``ping_interval`` / ``ping_timeout``) detects a half-open socket,
  drops the transport and reconnects. Reconnects use exponential backoff with jitter;
  a refused login is logged as ``ami.login_failed`` and retried with the same backoff.
* An exception in a callback (sync, or a coroutine run as a task) is logged as
  ``ami.callback_failed`` and changes nothing else.

Relation to panoramisk (why this module does not use ``panoramisk.Manager``):
we read panoramisk 1.4 and replaced every part of it that sits on the call-control
path, which in the end is all of ``Manager`` and ``AMIProtocol``; subclassing would have
overridden every method but ``register_event`` and a one-line ``send_action``, so this
module speaks the (small) wire format itself. What we replace and why:

* ``AMIProtocol.close`` puts unanswered actions into ``Manager.awaiting_actions`` and
  ``Manager.send_awaiting_actions`` (hooked on ``FullyBooted``) sends them again after
  reconnect: a Redirect/Originate could run twice. Here pending actions fail with
  ``AmiDisconnected`` and are forgotten.
* ``Manager.send_action`` returns a bare future: no timeout. ``Action.multi`` also
  guesses from the response text ("successfully queued") that an async Originate
  continues, so its future resolves only on ``OriginateResponse`` (never, if none comes)
  and that event is swallowed instead of dispatched. Here a plain action resolves on its
  ``Response``; list actions (``action_list``) end on the ``...Complete`` event; events
  that only share an ActionID (OriginateResponse) are dispatched as events.
* ``Manager.ping`` sends Ping and never looks at the reply, so a half-open socket is not
  seen. Replaced by a watchdog that waits for the reply.
* ``Manager.connection_made/connection_lost`` reconnect after a fixed delay with
  ``call_later``; ``Manager.login`` only sets ``authenticated = False`` on a refused
  login and stays connected doing nothing. Replaced by one supervisor task with backoff.
* ``Manager.dispatch`` calls callbacks inside ``data_received``: an exception there is
  fatal to the asyncio transport, which closes the connection. Here callbacks are guarded.
* ``AMIProtocol.data_received`` decodes every TCP chunk on its own with
  ``errors="ignore"`` (a UTF-8 character split across two reads is lost), and
  ``Message.from_line`` drops a header whose value is empty when it is the last line
  (``Value: `` of a VarSet). Replaced by an incremental decoder and a small parser.
"""
from __future__ import annotations

import asyncio
import codecs
import itertools
import random
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from acd.ami.events import AmiEvent, parse_event

# Not ``structlog.get_logger().bind(...)``: bind() at import time freezes the structlog
# configuration of that moment, so a later acd.log.configure() would be ignored.
log = structlog.get_logger(component="ami")

EOL = "\r\n"
SEP = "\r\n\r\n"
BANNER = "Asterisk Call Manager/"
SUCCESS_RESPONSES = frozenset({"success", "follows", "goodbye"})
MAX_MESSAGE_CHARS = 16 * 1024 * 1024   # an unterminated message above this drops the link
#: Pings in a row, each unanswered with nothing else heard, before a link counts as half-open.
HALF_OPEN_PINGS = 2

EventCallback = Callable[[AmiEvent], Awaitable[None] | None]
ConnectionCallback = Callable[[bool], Awaitable[None] | None]


#: What may follow (name, header, value) in an event filter: nothing (the header equals the
#: value), "starts_with" (it starts with the value) or "exclude" (left out when it equals).
FILTER_OPTIONS = (None, "starts_with", "exclude")


class AmiError(Exception):
    """Base of every error raised by this module."""


class AmiTimeout(AmiError):
    """No Response to an action within its timeout."""


class AmiDisconnected(AmiError):
    """Not connected when called, or the link dropped while the action was pending.
    The action may or may not have run in Asterisk; it is never sent again."""


class AmiActionError(AmiError):
    """Asterisk answered the action with Response: Error (or another non-success)."""

    def __init__(self, action: str, message: str, response: AmiResponse):
        super().__init__(f"{action} failed: {message}")
        self.action = action
        self.message = message
        self.response = response


@dataclass(frozen=True)
class AmiResponse:
    action: str
    action_id: str
    response: str              # Success, Error, Goodbye, Follows...
    message: str | None
    fields: Mapping[str, Any] = field(repr=False)   # raw headers (a repeated header is a list)

    @property
    def success(self) -> bool:
        return self.response.lower() in SUCCESS_RESPONSES

    def get(self, header: str, default: Any = None) -> Any:
        """Header value, header name matched case-insensitively."""
        return _get(self.fields, header, default)


def _get(fields: Mapping[str, Any], header: str, default: Any = None) -> Any:
    if header in fields:
        return fields[header]
    low = header.lower()
    for key, value in fields.items():
        if key.lower() == low:
            return value
    return default


def _first(value: Any) -> str:
    if isinstance(value, list):
        value = value[0] if value else ""
    return value if isinstance(value, str) else ""


#: One header line of a message whose lines all end in CR LF: the name (surrounding blanks
#: left out), the colon, one optional space, the value.
_HEADER_LINE = re.compile(r"^[^\S\r\n]*([^:\s](?:[^:\r\n]*[^:\s])?)[^\S\r\n]*: ?([^\r\n]*)", re.M)


def parse_message(block: str) -> dict[str, Any] | None:
    """Headers of one message (without the blank line). A repeated header gives a list.
    None when it is neither a Response nor an Event.

    Every message of an AMI session goes through here: a block whose lines all end in CR LF
    (all of Asterisk's) is read with one regular expression; any other, line by line."""
    bare = block.replace(EOL, "")
    if "\r" in bare or "\n" in bare:
        return _parse_lines(block)
    pairs = _HEADER_LINE.findall(block)
    headers: dict[str, Any] = dict(pairs)
    if len(headers) != len(pairs):                 # a repeated header: a list, in order
        headers = {}
        for key, value in pairs:
            _add(headers, key, value)
    return _message(headers)


def _parse_lines(block: str) -> dict[str, Any] | None:
    headers: dict[str, Any] = {}
    for line in block.split(EOL):
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep or not key:
            continue
        value = value.rstrip("\r\n")
        if value[:1] == " ":
            value = value[1:]
        _add(headers, key, value)
    return _message(headers)


def _add(headers: dict[str, Any], key: str, value: str) -> None:
    old = headers.get(key)
    if old is None:
        headers[key] = value
    elif isinstance(old, list):
        old.append(value)
    else:
        headers[key] = [old, value]


def _message(headers: dict[str, Any]) -> dict[str, Any] | None:
    if "Event" in headers or "Response" in headers:
        return headers
    lower = {k.lower() for k in headers}
    return headers if ("response" in lower or "event" in lower) else None


def format_action(name: str, action_id: str, fields: Mapping[str, Any]) -> str:
    """Wire text of an action. Raises ValueError on CR/LF (header injection) or a bad key."""
    lines = [("Action", name), ("ActionID", action_id)]
    for key, value in fields.items():
        if value is None:
            continue
        if key.lower() in ("action", "actionid") or not key or ":" in key or key.strip() != key:
            raise ValueError(f"bad AMI header name {key!r}")
        for item in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(item, bool):
                item = "true" if item else "false"
            lines.append((key, str(item)))
    for key, value in lines:
        if "\r" in key or "\n" in key or "\r" in value or "\n" in value:
            raise ValueError(f"CR/LF in AMI header {key!r}")
    return "".join(f"{k}: {v}{EOL}" for k, v in lines) + EOL


@dataclass
class _Pending:
    action: str
    as_list: bool
    future: asyncio.Future
    response: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)


class _Protocol(asyncio.Protocol):
    """One TCP connection: framing, parsing, matching responses to pending actions."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_event: Callable[[dict], None]):
        self.on_event = on_event
        self.transport: asyncio.Transport | None = None
        self.pending: dict[str, _Pending] = {}
        self.lost: asyncio.Future = loop.create_future()   # result: the reason (str)
        self.version: str | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._buf = ""
        self._banner = True
        self.last_rx = time.monotonic()     # when Asterisk last sent anything
        # Events that arrive before the login completes are held, so that the
        # application sees on_connection(True) before any event of the new session.
        self.held: list[dict[str, Any]] | None = []

    # -- asyncio callbacks -------------------------------------------------------------
    def connection_made(self, transport):  # noqa: D401
        self.transport = transport

    def connection_lost(self, exc):
        self.drop(f"connection lost: {exc}" if exc else "connection closed by Asterisk")

    def data_received(self, data: bytes) -> None:
        self.last_rx = time.monotonic()
        start = max(0, len(self._buf) - len(SEP) + 1)
        self._buf += self._decoder.decode(data)
        if self._banner:
            first, eol, rest = self._buf.partition(EOL)
            if not eol:
                return
            self._banner = False
            if first.startswith(BANNER):
                self.version = first[len(BANNER):].strip()
                self._buf = rest
            start = 0
        if self._buf.find(SEP, start) < 0:
            if len(self._buf) > MAX_MESSAGE_CHARS:
                log.error("ami.message_too_large", chars=len(self._buf))
                self.drop("message too large")
            return
        *blocks, self._buf = self._buf.split(SEP)
        for block in blocks:
            if self.lost.done():
                return
            try:
                self._handle(block)
            except Exception:
                log.exception("ami.protocol_error", sample=block[:200])

    # -- messages ----------------------------------------------------------------------
    def _handle(self, block: str) -> None:
        msg = parse_message(block)
        if msg is None:
            if block.strip():
                log.warning("ami.malformed", sample=block[:200])
            return
        if "Event" in msg or "Response" in msg:
            # Spelt as Asterisk spells its headers: looked up as written (every event).
            action_id, event = _first(msg.get("ActionID")), msg.get("Event")
        else:
            action_id, event = _first(_get(msg, "ActionID")), _get(msg, "Event")
        pending = self.pending.get(action_id) if action_id else None
        if event is None:   # a Response (OriginateResponse events have one too)
            if pending is None or pending.response is not None:
                log.debug("ami.unmatched_response", action_id=action_id or None)
                return
            pending.response = msg
            ok = _first(_get(msg, "Response")).lower() in SUCCESS_RESPONSES
            if not pending.as_list or not ok:
                self._resolve(action_id, pending)
            return
        if pending is not None and pending.as_list:
            name = _first(event)
            if name.endswith("Complete") or _first(_get(msg, "EventList")).lower() == "complete":
                self._resolve(action_id, pending)
            else:
                pending.events.append(msg)
            return
        if self.held is not None:
            self.held.append(msg)
        else:
            self.on_event(msg)

    def _resolve(self, action_id: str, pending: _Pending) -> None:
        self.pending.pop(action_id, None)
        if not pending.future.done():
            pending.future.set_result((pending.response, pending.events))

    # -- sending and closing -----------------------------------------------------------
    def send(self, text: str) -> None:
        if self.lost.done() or self.transport is None or self.transport.is_closing():
            raise AmiDisconnected("AMI connection is closed")
        self.transport.write(text.encode("utf-8"))

    def drop(self, reason: str) -> None:
        """Close the link now (abort, no flush) and fail everything pending. Idempotent."""
        if self.lost.done():
            return
        self.lost.set_result(reason)
        pending, self.pending = self.pending, {}
        for action_id, p in pending.items():
            if not p.future.done():
                log.warning("ami.action_aborted", action=p.action, action_id=action_id,
                            reason=reason)
                p.future.set_exception(AmiDisconnected(
                    f"{p.action} (ActionID {action_id}): AMI link dropped ({reason}); "
                    "the action was not confirmed and will not be re-sent"))
        if self.transport is not None:
            self.transport.abort()


class AmiClient:
    """A supervised AMI connection. Plain values in; never reads configuration."""

    def __init__(self, host: str, port: int, username: str, secret: str, *,
                 action_timeout: float = 5.0, ping_interval: float = 5.0,
                 ping_timeout: float = 3.0, reconnect_min: float = 0.5,
                 reconnect_max: float = 10.0, loop: asyncio.AbstractEventLoop | None = None,
                 event_filter: Sequence[str | tuple[str, ...]] | None = None):
        self.host, self.port = host, port
        # The events this client reads (None: all): asked for with Filter after each login.
        self.event_filter = tuple(event_filter) if event_filter is not None else None
        for item in self.event_filter or ():
            if isinstance(item, tuple) and (len(item) not in (1, 3, 4)
                                            or (len(item) == 4 and item[3] not in FILTER_OPTIONS)):
                raise ValueError(f"AMI event filter {item!r}: (name, header, value) and "
                                 f"perhaps one of {[o for o in FILTER_OPTIONS if o]}")
        self.username, self._secret = username, secret
        self.action_timeout = action_timeout
        self.ping_interval, self.ping_timeout = ping_interval, ping_timeout
        self.reconnect_min, self.reconnect_max = reconnect_min, reconnect_max
        self._loop = loop
        self._event_callbacks: list[EventCallback] = []
        self._connection_callbacks: list[ConnectionCallback] = []
        self._proto: _Protocol | None = None      # set only while logged in
        self._task: asyncio.Task | None = None
        self._close_task: asyncio.Task | None = None
        self._closing = False
        self._ready = asyncio.Event()
        self._last_error: str | None = None
        self._callback_tasks: set[asyncio.Task] = set()
        self._ids = itertools.count(1)
        #: called before every action (acd.leader: a leader past its lease ends here)
        self.guard: Callable[[], None] | None = None
        self._id_prefix = f"acd-{uuid.uuid4().hex[:8]}"

    # -- public API --------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """True while logged in on a live link."""
        return self._proto is not None and not self._proto.lost.done()

    def on_event(self, callback: EventCallback) -> EventCallback:
        """Register ``callback(event)``; sync or async. Usable as a decorator."""
        self._event_callbacks.append(callback)
        return callback

    def on_connection(self, callback: ConnectionCallback) -> ConnectionCallback:
        """Register ``callback(up: bool)``: True after each login, False after each loss."""
        self._connection_callbacks.append(callback)
        return callback

    async def start(self, connect_timeout: float | None = None) -> None:
        """Start the background connection and wait for the first successful login.

        ``connect_timeout=None`` waits as long as it takes. Otherwise raises ``AmiError``
        after that many seconds; the client then keeps trying in the background (the
        caller may go on and wait for ``on_connection(True)``, or call ``close()``).
        """
        if self._closing:
            raise AmiError("AmiClient is closed")
        if self._task is None:
            self._loop = self._loop or asyncio.get_running_loop()
            self._task = self._loop.create_task(self._run(), name="ami-supervisor")
        try:
            await asyncio.wait_for(self._ready.wait(), connect_timeout)
        except asyncio.TimeoutError:
            raise AmiError(f"no AMI login at {self.host}:{self.port} within {connect_timeout}s"
                           f" (last error: {self._last_error})") from None
        if self._closing:
            raise AmiError("AmiClient was closed while starting")

    @property
    def closing(self) -> bool:
        """close() was called: the link is going away on purpose."""
        return self._closing

    async def close(self) -> None:
        """Log off, stop reconnecting, cancel callback tasks. Idempotent."""
        if self._close_task is None:
            self._closing = True
            self._close_task = asyncio.ensure_future(self._close())
        await asyncio.shield(self._close_task)

    async def action(self, name: str, *, timeout: float | None = None, **fields: Any) -> AmiResponse:
        """Send one action and return its Response.

        ``fields`` become headers (a list/tuple value repeats the header, e.g.
        ``Variable=["A=1", "B=2"]``; bools become true/false; None is skipped). For an
        async Originate this returns on the "queued" Response; the outcome arrives as an
        ``OriginateResponse`` event with the same ``action_id``.
        Raises AmiTimeout, AmiDisconnected, AmiActionError; ValueError on CR/LF in a value.
        """
        response, _ = await self._call(name, fields, timeout, as_list=False)
        return response

    async def action_list(self, name: str, *, timeout: float | None = None,
                          **fields: Any) -> list[dict[str, Any]]:
        """Send an action answered by an event list (CoreShowChannels, PJSIPShowContacts,
        Status...) and return the events' headers, up to (without) the ...Complete event.
        The timeout covers the whole list. Same errors as ``action``."""
        _, events = await self._call(name, fields, timeout, as_list=True)
        return events

    # -- actions -----------------------------------------------------------------------
    async def _call(self, name, fields, timeout, *, as_list):
        if self.guard is not None:
            self.guard()
        proto = self._proto
        if proto is None or proto.lost.done():
            log.warning("ami.not_connected", action=name)
            raise AmiDisconnected(f"{name}: not connected to AMI (not sent)")
        response, events = await self._request(proto, name, fields, timeout, as_list=as_list)
        return response, events

    async def _request(self, proto: _Protocol, name: str, fields: Mapping[str, Any],
                       timeout: float | None, *, as_list: bool = False, quiet: bool = False):
        timeout = self.action_timeout if timeout is None else timeout
        action_id = f"{self._id_prefix}-{next(self._ids)}"
        text = format_action(name, action_id, fields)
        lg = log.bind(action=name, action_id=action_id)
        pending = _Pending(name, as_list, asyncio.get_running_loop().create_future())
        proto.pending[action_id] = pending
        try:
            proto.send(text)
            if not quiet:
                lg.debug("ami.action_sent")
            msg, events = await asyncio.wait_for(pending.future, timeout)
        except asyncio.TimeoutError:
            if not quiet:
                lg.warning("ami.action_timeout", timeout=timeout)
            raise AmiTimeout(f"{name} (ActionID {action_id}): no response within {timeout}s") from None
        finally:
            proto.pending.pop(action_id, None)
        response = AmiResponse(action=name, action_id=action_id,
                               response=_first(_get(msg, "Response")),
                               message=_first(_get(msg, "Message")) or None, fields=msg)
        if not response.success:
            if not quiet:
                # The caller decides whether an error matters ("No Contacts found" at a
                # start does not): the runtime logs those that do, with the call.
                lg.debug("ami.action_error", response=response.response, message=response.message)
            raise AmiActionError(name, response.message or response.response, response)
        return response, events

    # -- connection supervisor -----------------------------------------------------------
    async def _run(self) -> None:
        failures = 0
        attempt = 0
        while not self._closing:
            attempt += 1
            try:
                await self._session(attempt)
                failures = 0
            except AmiError as exc:
                failures += 1
                self._last_error = str(exc)
            except Exception as exc:   # a bug here must not stop reconnecting
                log.exception("ami.supervisor_error")
                failures += 1
                self._last_error = repr(exc)
            if self._closing:
                break
            delay = min(self.reconnect_max, self.reconnect_min * 2 ** min(failures, 30))
            delay *= random.uniform(0.75, 1.0)
            log.info("ami.reconnect_wait", delay=round(delay, 4), failures=failures)
            await asyncio.sleep(delay)

    async def _session(self, attempt: int) -> None:
        """One connection: connect, log in, watch until lost. Raises AmiError when it
        could not log in; returns after a logged-in session ends."""
        lg = log.bind(host=self.host, port=self.port, attempt=attempt)
        lg.info("ami.connecting")
        loop = asyncio.get_running_loop()
        try:
            _, proto = await asyncio.wait_for(
                loop.create_connection(lambda: _Protocol(loop, self._dispatch), self.host, self.port),
                self.action_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            lg.warning("ami.connect_failed", error=str(exc) or type(exc).__name__)
            raise AmiError(f"cannot connect to {self.host}:{self.port}: {exc!r}") from None
        try:
            try:
                await self._request(proto, "Login", {"Username": self.username,
                                                     "Secret": self._secret, "Events": "on"},
                                    self.action_timeout, quiet=True)
            except AmiActionError as exc:
                lg.error("ami.login_failed", username=self.username, message=exc.message)
                raise
            except AmiError as exc:
                lg.warning("ami.login_no_answer", error=str(exc))
                raise
            if self._closing:
                # close() began while Login was in flight; on Python 3.11 wait_for can swallow
                # the cancellation that close() sent, so look instead of relying on it.
                return
            await self._filter(proto, lg)
            self._proto = proto
            lg.info("ami.connected", version=proto.version)
            self._ready.set()
            self._notify_connection(True)
            held, proto.held = proto.held or [], None
            for msg in held:
                self._dispatch(msg)
            try:
                await self._watchdog(proto)
            finally:
                self._proto = None
                proto.drop("client closed" if self._closing else "session ended")
                reason = proto.lost.result()
                if self._closing:
                    lg.info("ami.disconnected", reason=reason)
                else:
                    lg.warning("ami.disconnected", reason=reason)
                self._notify_connection(False)
        finally:
            proto.drop("client closed" if self._closing else "login failed")

    async def _filter(self, proto: _Protocol, lg: Any) -> None:
        """Ask Asterisk for only the events of ``self.event_filter`` on this session (AMI ``Filter`` with a
        structured ``MatchCriteria``, Asterisk 22.1+: matched by the event's name, without a
        regular expression over the whole event). Events Asterisk queues for this session
        are then filtered in Asterisk, before they are written to the socket: a client that
        reads a dozen kinds of events no longer parses every one.

        An event given as (name, header, value) is taken only when that header equals the
        value (``("UserEvent", "UserEvent", "AcdVoicemail")``); one given as (name, header,
        value, "starts_with") when the header starts with the value (``("HangupRequest",
        "Uniqueid", "acd-", "starts_with")``); one given as (name, header, value, "exclude")
        is left out when the header equals the value, even if an include takes it
        (``("BridgeLeave", "BridgeCreator", "BridgeWait", "exclude")``). Should Asterisk
        refuse an include (older than 22.1, or no ``system`` write permission), one
        include-all filter follows, so nothing the application reads is ever filtered out:
        slower, never wrong (``ami.filter_refused``); a refused exclude only costs reading."""
        if self.event_filter is None:
            return
        for item in self.event_filter:
            name, header, value, option = (tuple(item) + (None,) * 3)[:4] \
                if isinstance(item, tuple) else (item, None, None, None)
            exclude = option == "exclude"
            method = "starts_with" if option == "starts_with" else "exact"
            criteria = (("action(exclude)," if exclude else "") + f"name({name})"
                        + (f",header({header}),method({method})" if header else ""))
            try:
                await self._request(proto, "Filter", {"Operation": "Add",
                                                      "MatchCriteria": criteria,
                                                      "Filter": value},
                                    self.action_timeout, quiet=True)
            except AmiActionError as exc:
                lg.warning("ami.filter_refused", event_name=name, message=exc.message,
                           exclude=exclude)
                if exclude:
                    continue
                await self._request(proto, "Filter", {"Operation": "Add", "Filter": ".*"},
                                    self.action_timeout, quiet=True)
                return

    async def _watchdog(self, proto: _Protocol) -> None:
        """Ping every ping_interval; :data:`HALF_OPEN_PINGS` missing Pongs in a row, with
        nothing else heard from Asterisk meanwhile, mean a half-open link: drop it. A Ping answered late while events keep
        coming is a busy Asterisk, not a dead link: dropping it then would add a reconnect
        and a full re-read of Asterisk's state to its load (seen at twice the sustained rate:
        a drop every 9 s, each making the next more likely)."""
        silent = 0          # Pings in a row that found the link silent
        while not self._closing:
            await asyncio.wait([proto.lost], timeout=self.ping_interval)
            if proto.lost.done():
                return
            try:
                await self._request(proto, "Ping", {}, self.ping_timeout, quiet=True)
            except AmiTimeout:
                quiet_for = time.monotonic() - proto.last_rx
                if quiet_for < self.ping_timeout:
                    silent = 0
                    log.warning("ami.slow_ping", ping_timeout=self.ping_timeout,
                                last_heard=round(quiet_for, 3))
                    continue
                silent += 1
                if silent < HALF_OPEN_PINGS:
                    # A saturated Asterisk can say nothing at all for seconds; a reconnect
                    # then re-reads its whole state on top of that load. Ask once more.
                    log.warning("ami.silent", ping_timeout=self.ping_timeout,
                                last_heard=round(quiet_for, 3))
                    continue
                log.error("ami.half_open", ping_timeout=self.ping_timeout, pings=silent)
                proto.drop(f"half-open: no Ping reply within {self.ping_timeout}s, "
                           f"{silent} times in a row")
                return
            except AmiDisconnected:
                return
            except AmiActionError:
                pass   # it answered: the link is alive
            silent = 0

    async def _close(self) -> None:
        proto = self._proto
        if proto is not None and not proto.lost.done():
            try:
                await self._request(proto, "Logoff", {}, min(1.0, self.action_timeout), quiet=True)
            except AmiError:
                pass
        if self._task is not None:
            # Cancel until it ends: one cancellation can be swallowed by wait_for (3.11).
            while not self._task.done():
                self._task.cancel()
                await asyncio.wait([self._task], timeout=0.1)
            if not self._task.cancelled():
                self._task.exception()  # retrieved: a closing client has nothing to report
        if proto is not None:
            proto.drop("client closed")
        tasks = list(self._callback_tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._ready.set()   # wake a start() still waiting
        log.info("ami.closed")

    # -- callbacks ---------------------------------------------------------------------
    def _dispatch(self, fields: dict[str, Any]) -> None:
        event = parse_event(fields)
        for callback in tuple(self._event_callbacks):
            self._invoke(callback, event, event_name=event.name,
                         channel=getattr(event, "channel", None))

    def _notify_connection(self, up: bool) -> None:
        for callback in list(self._connection_callbacks):
            self._invoke(callback, up, connection=up)

    def _invoke(self, callback: Callable, arg: Any, **context: Any) -> None:
        try:
            result = callback(arg)
            if result is not None and (asyncio.iscoroutine(result)
                                       or isinstance(result, asyncio.Future)):
                name = _name(callback)
                task = asyncio.ensure_future(result)
                self._callback_tasks.add(task)
                task.add_done_callback(lambda t: self._callback_done(t, name, context))
        except Exception:
            log.exception("ami.callback_failed", callback=_name(callback), **context)

    def _callback_done(self, task: asyncio.Task, name: str, context: dict) -> None:
        self._callback_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("ami.callback_failed", callback=name, exc_info=task.exception(), **context)


def _name(callback: Callable) -> str:
    """A callback's name for a log line (asked only when one is written)."""
    return getattr(callback, "__qualname__", None) or repr(callback)
