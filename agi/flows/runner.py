"""The flow runner: the FastAGI ``ivr`` script that walks a caller through a YAML flow.

The number the caller dialled (the DID) picks the flow (``flows.numbers`` in the config); a
channel variable ``ACD_FLOW`` (or ``?flow=`` in the AGI URL) names one directly. A number
without a flow runs the built-in hotline script (``fallback``).

Each call keeps the flows as they were when it arrived: a reload meanwhile changes the next
call, never one in progress. Every key the caller presses is written to the call's key trail
with the node it answered; the identity check's result goes on the call; the call gets
exactly one end reason (a queued call gets it from the ACD):

===============  =======================================================================
end reason       when
===============  =======================================================================
ivr_hangup       a ``hangup`` node (or the end of a flow) hung up
caller_hangup    the caller hung up in the IVR
ivr_error        a command failed, a node broke, or the flow ran too many steps
transferred      a ``transfer`` node handed the caller to an external number
voicemail        a ``voicemail`` node: the caller leaves a message (the file comes with
                 the ``voicemail`` event of the call)
(none)           a ``queue`` node: the ACD ends the record
===============  =======================================================================
"""
from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from acd.asterisk import dialplan as dp
from acd.core.numbers import NUMBER
from acd.directory import PHONE_LIKE, DirectoryError
from acd.hours import ServiceHours
from agi.flows.model import DTMF, Flow, Node, Prompt, render_template
from agi.protocol import AgiCommandError, AgiError, AgiHangup
from agi.server import AgiSession

MAX_STEPS = 500
MAX_VAR = 256
#: The key trail keeps at most this many entries per node of a call (each entry is at most
#: the node's max_digits, 64 at most, plus the terminator); the next entry of that node is
#: the mark below, and its keys after it go to the log only. A caller flooding a menu that
#: loops back to itself cannot grow the call's record without end.
MAX_TRAIL_PER_NODE = 64
TRUNCATED = "truncated"
SORRY = "an-error-has-occurred"
#: Node kinds whose handler is not simply ``_<kind>``.
_HANDLER = {"play": "_play_node", "set": "_set_node"}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class _End(Exception):
    """The flow is over for the IVR: ``reason`` for the record, or None (the ACD has it)."""

    def __init__(self, reason: str | None) -> None:
        super().__init__(reason or "handed on")
        self.reason = reason


@dataclass
class _Call:
    session: AgiSession
    uid: str
    flows: dict[str, Flow]
    flow: Flow
    vars: dict[str, str] = field(default_factory=dict)
    log: Any = None
    steps: int = 0
    trail: dict[str, int] = field(default_factory=dict)     # key trail entries per node
    keys: list[str] = field(default_factory=list)           # the key trail as stored


class FlowRunner:
    """``registry``: gives the flows (``snapshot()``), the flow of a number (``flow_for``) and
    digit prompts for synthesized languages (``digits_for``). ``directory``: customer lookups.
    ``http``: an aiohttp ClientSession for ``http`` nodes (None: they take ``failed``)."""

    def __init__(self, registry: Any, store: Any, *, directory: Any = None,
                 fallback: Callable[[AgiSession], Awaitable[None]] | None = None,
                 on_queue: Callable[[str, tuple[str, ...]], None] | None = None,
                 groups: Mapping[str, Any] | None = None, http: Any = None,
                 transfer_dial: str = "", lookup_timeout: float = 3.0,
                 clock: Callable[[], datetime] = utcnow, max_steps: int = MAX_STEPS) -> None:
        self.registry = registry
        self.store = store
        self.directory = directory
        self.fallback = fallback
        self.on_queue = on_queue
        self.groups = dict(groups or {})
        self.http = http
        self.transfer_dial = transfer_dial
        self.lookup_timeout = lookup_timeout
        self.clock = clock
        self.max_steps = max_steps

    # ================================================================ the session

    async def __call__(self, session: AgiSession) -> None:
        req = session.request
        did = req.extension
        name = req.query.get("flow") or await session.get_variable(dp.FLOW) or \
            self.registry.flow_for(did)
        flows = self.registry.snapshot()
        if not name or name not in flows:
            if name:
                session.log.warning("flows.not_loaded", flow=name, did=did)
            if self.fallback is None:
                raise AgiError(f"no flow for {did}", id="flows.no_flow")
            await self.fallback(session)
            return
        flow = flows[name]
        uid = req.uniqueid
        log = session.log.bind(call=uid, flow=name)
        call = _Call(session, uid, flows, flow, log=log, vars={
            "caller_number": req.caller_id_num, "caller_name": req.caller_id_name[:MAX_VAR],
            "did": did, "uniqueid": uid, "flow": name, "verification": "",
            "verification_method": "", "language": flow.language})
        await self.store.call_arrived(uniqueid=uid, channel=req.channel,
                                      caller_number=req.caller_id_num,
                                      caller_name=req.caller_id_name, did=did, at=self.clock())
        reason: str | None = "ivr_hangup"
        try:
            await session.answer()
            await self._enter(call, flow)
            node = flow.nodes[flow.start]
            while True:
                call.steps += 1
                if call.steps > self.max_steps:
                    log.error("flows.too_many_steps", steps=self.max_steps)
                    raise _End(await self._sorry(call, "ivr_error"))
                log.debug("flows.node", node=node.name, kind=node.kind)
                try:
                    target = await getattr(self, _HANDLER.get(node.kind, f"_{node.kind}"))(call, node)
                except (AgiError, _End, asyncio.CancelledError):
                    raise
                except Exception:
                    log.exception("flows.node_failed", node=node.name, kind=node.kind)
                    raise _End(await self._sorry(call, "ivr_error")) from None
                if target is None:
                    raise _End(await self._hangup_now(call, "ivr_hangup"))
                node = target
        except _End as end:
            reason = end.reason
        except asyncio.CancelledError:
            reason = None   # our server is stopping: the caller stays, the IVR runs again
            raise
        except AgiError as e:
            if isinstance(e, AgiHangup) or await session.channel_gone():
                reason = "caller_hangup"
            else:
                log.warning("flows.command_failed", error=str(e))
                reason = "ivr_error"
                try:
                    await session.hangup()
                except AgiError:
                    pass
        finally:
            if reason is not None:
                await self.store.call_ended(uid, reason=reason, at=self.clock())

    async def _enter(self, call: _Call, flow: Flow) -> None:
        if call.flow is not flow:
            call.log = call.log.bind(flow=flow.name)
        call.flow = flow
        call.vars["flow"] = flow.name
        await self.store.call_event(call.uid, "ivr", at=self.clock(),
                                    detail={"flow": flow.name, "version": flow.version})
        if flow.language != "en" or call.vars.get("language") != flow.language:
            await self._set_language(call, flow.language)

    async def _set_language(self, call: _Call, language: str) -> None:
        if re.fullmatch(r"[A-Za-z0-9_-]{1,20}", language):
            await call.session.set_variable("CHANNEL(language)", language)
            call.vars["language"] = language

    # ================================================================ helpers

    def _next(self, call: _Call, name: str | None) -> Node | None:
        return call.flow.nodes[name] if name else None

    async def _keys(self, call: _Call, node: Node, keys: str) -> None:
        n = call.trail[node.name] = call.trail.get(node.name, 0) + 1
        if n <= MAX_TRAIL_PER_NODE:
            call.keys.append(keys)
            await self.store.key_pressed(call.uid, node=node.name, keys=keys, at=self.clock())
        elif n == MAX_TRAIL_PER_NODE + 1:
            call.keys.append(TRUNCATED)
            await self.store.key_pressed(call.uid, node=node.name, keys=TRUNCATED, at=self.clock())
            call.log.warning("flows.key_trail_truncated", node=node.name, kept=MAX_TRAIL_PER_NODE)
        call.log.info("flows.keys", node=node.name, keys=len(keys), stored=n <= MAX_TRAIL_PER_NODE)

    async def _play(self, call: _Call, prompts: list[Prompt] | None, escape: str = "") -> str | None:
        """Play prompts in order; the key that stopped one (if ``escape`` allows), or None.
        A prompt Asterisk cannot play is logged and skipped: the caller goes on."""
        for p in prompts or ():
            if not p.play:
                continue
            try:
                digit = await call.session.stream_file(p.play, escape)
            except AgiCommandError:
                if await call.session.channel_gone():
                    raise AgiHangup("caller hung up during a prompt") from None
                call.log.warning("flows.prompt_failed", prompt=p.play)
                continue
            if digit:
                return digit
        return None

    async def _read(self, call: _Call, prompts: list[Prompt] | None, *, max_digits: int,
                    terminator: str, timeout: float, first: str | None = None) -> str:
        """Play, then take keys until the terminator, ``max_digits`` or a silence of
        ``timeout``. Returns the keys as pressed (the terminator included)."""
        got = first if first is not None else (await self._play(call, prompts, DTMF) or "")
        while not (terminator and got.endswith(terminator)) and len(got) < max_digits:
            digit = await call.session.wait_for_digit(int(timeout * 1000))
            if not digit:
                break
            got += digit
        return got

    async def _sorry(self, call: _Call, reason: str) -> str:
        try:
            await call.session.stream_file(SORRY)
        except AgiCommandError:
            pass
        return await self._hangup_now(call, reason)

    async def _hangup_now(self, call: _Call, reason: str) -> str:
        await call.session.hangup()
        return reason

    def _render(self, call: _Call, text: str, url: bool = False) -> str:
        if url:
            from agi.flows.model import TEMPLATE_VAR
            return TEMPLATE_VAR.sub(lambda m: quote(call.vars.get(m.group(1), ""), safe=""), text)
        return render_template(text, call.vars)[:MAX_VAR]

    def _set(self, call: _Call, name: str, value: Any) -> None:
        call.vars[name] = str(value if value is not None else "")[:MAX_VAR]

    # ================================================================ the node kinds

    async def _play_node(self, call: _Call, node: Node) -> Node | None:
        keys: dict[str, str] = node.get("keys") or {}
        digit = await self._play(call, node.get("prompt"), "".join(keys))
        if digit:
            await self._keys(call, node, digit)
            if digit in keys:
                return self._next(call, keys[digit])
        return self._next(call, node.get("next"))

    async def _say(self, call: _Call, node: Node) -> Node | None:
        text = self._render(call, node.get("digits") or node.get("number") or "")
        digits = self.registry.digits_for(call.flow) if hasattr(self.registry, "digits_for") else None
        if node.get("digits") is not None:
            text = "".join(c for c in text if c in "0123456789*#")
            if text:
                if digits:
                    await self._play(call, [Prompt("file", c, 0, play=digits[c]) for c in text
                                            if c in digits])
                else:
                    await self._say_cmd(call, call.session.say_digits, text)
        else:
            m = re.fullmatch(r"-?[0-9]{1,12}", text.strip())
            if m:
                if digits:
                    await self._play(call, [Prompt("file", c, 0, play=digits[c])
                                            for c in text.strip().lstrip("-")])
                else:
                    await self._say_cmd(call, call.session.say_number, int(text))
            else:
                call.log.info("flows.say_not_a_number", node=node.name)
        return self._next(call, node.get("next"))

    async def _say_cmd(self, call: _Call, fn: Callable[..., Awaitable[Any]], value: Any) -> None:
        try:
            await fn(value)
        except AgiCommandError:
            if await call.session.channel_gone():
                raise AgiHangup("caller hung up") from None
            call.log.warning("flows.say_failed")

    async def _menu(self, call: _Call, node: Node) -> Node | None:
        keys: dict[str, str] = node.get("keys")
        prompt, retries, timeout = node.get("prompt"), node.get("retries"), node.get("timeout")
        lead: list[Prompt] = []
        for _attempt in range(retries + 1):
            digit = await self._play(call, lead + list(prompt), DTMF)
            if not digit:
                digit = await call.session.wait_for_digit(int(timeout * 1000))
            if not digit:
                call.log.info("flows.no_input", node=node.name)
                lead = list(node.get("no_input_prompt") or [])
                continue
            await self._keys(call, node, digit)
            if digit in keys:
                return self._next(call, keys[digit])
            call.log.info("flows.invalid_key", node=node.name)
            lead = list(node.get("invalid_prompt") or [])
        return self._next(call, node.get("fallback"))

    async def _collect(self, call: _Call, node: Node) -> Node | None:
        term, pattern = node.get("terminator"), node.get("pattern")
        lo, hi = node.get("min_digits"), node.get("max_digits")
        prompts = list(node.get("prompt"))
        for attempt in range(node.get("retries") + 1):
            got = await self._read(call, prompts, max_digits=hi + len(term),
                                   terminator=term, timeout=node.get("timeout"))
            if got:
                await self._keys(call, node, got)
            value = got[:-len(term)] if term and got.endswith(term) else got
            if lo <= len(value) <= hi and (not pattern or re.fullmatch(pattern, value)):
                self._set(call, node.get("var"), value)
                return self._next(call, node.get("next"))
            call.log.info("flows.collect_invalid", node=node.name, digits=len(value))
            prompts = list(node.get("invalid_prompt") or []) + list(node.get("prompt"))
        return self._next(call, node.get("fallback"))

    async def _lookup(self, kind: str, value: str) -> Any:
        if self.directory is None:
            raise DirectoryError("directory.none", "no customer directory is configured")
        try:
            async with asyncio.timeout(self.lookup_timeout):
                return await self.directory.lookup(kind, value)
        except TimeoutError:
            raise DirectoryError("directory.timeout", "the directory did not answer in time") from None
        except DirectoryError:
            raise
        except Exception as e:              # a database error: the caller still goes on
            raise DirectoryError("directory.failed", f"lookup failed: {type(e).__name__}") from None

    async def _verify_identity(self, call: _Call, node: Node) -> Node | None:
        ask, skip = node.get("ask"), node.get("skip_key")
        result, method, customer = "failed", f"keyed_{ask}", None
        try:
            if node.get("match_caller") and PHONE_LIKE.fullmatch(call.vars["caller_number"]):
                customer = await self._lookup("phone", call.vars["caller_number"])
                if customer is not None:
                    result, method = "verified", "caller_number"
            if customer is None:
                prompts = list(node.get("prompt"))
                for _attempt in range(node.get("tries")):
                    got = await self._read(call, prompts, max_digits=node.get("max_digits") + 1,
                                           terminator="#", timeout=node.get("timeout"))
                    if got:
                        await self._keys(call, node, got)
                    value = got[:-1] if got.endswith("#") else got
                    if skip and value == skip:
                        result, method = "skipped", None
                        break
                    if len(value) > node.get("max_digits"):
                        # Keys past max_digits without the #: a wrong entry, never looked up.
                        call.log.info("flows.verify_too_long", node=node.name, digits=len(value))
                    elif value:
                        customer = await self._lookup(ask, value)
                        if customer is not None:
                            result = "verified"
                            break
                    prompts = list(node.get("invalid_prompt") or []) + list(node.get("prompt"))
        except DirectoryError as e:
            call.log.warning("flows.directory_failed", node=node.name, error=e.id, message=e.message)
            result, method = "failed", "lookup_error"
        detail = {"node": node.name}
        if customer is not None:
            detail["customer_number"] = customer.customer_number
            self._set(call, "customer_number", customer.customer_number)
            self._set(call, "customer_name", customer.name)
        self._set(call, "verification", result)
        self._set(call, "verification_method", method or "")
        await self.store.set_verification(call.uid, result=result, method=method,
                                          at=self.clock(), detail=detail)
        call.log.info("flows.verification", node=node.name, result=result, method=method)
        target = {"verified": node.get("verified"), "failed": node.get("failed"),
                  "skipped": node.get("skipped") or node.get("failed")}[result]
        return self._next(call, target)

    async def _set_node(self, call: _Call, node: Node) -> Node | None:
        for name, value in node.get("vars").items():
            v = self._render(call, value)
            if name == "language":
                await self._set_language(call, v)
            else:
                self._set(call, name, v)
        return self._next(call, node.get("next"))

    def _holds(self, call: _Call, cond: dict[str, Any]) -> bool:
        if "var" in cond:
            value = call.vars.get(cond["var"], "")
            if "equals" in cond and value != self._render(call, cond["equals"]):
                return False
            if "in" in cond and value not in cond["in"]:
                return False
            if "matches" in cond and not re.search(cond["matches"], value):
                return False
            if not any(k in cond for k in ("equals", "in", "matches")) and not value:
                return False
        if "caller" in cond and not re.search(cond["caller"], call.vars["caller_number"]):
            return False
        if "verified" in cond and (call.vars["verification"] == "verified") != cond["verified"]:
            return False
        if "time" in cond and not ServiceHours(cond["time"], (), cond.get("timezone", "UTC")).is_open(self.clock()):
            return False
        return True

    async def _branch(self, call: _Call, node: Node) -> Node | None:
        for i, case in enumerate(node.get("cases")):
            if self._holds(call, case.conditions):
                call.log.debug("flows.branch", node=node.name, case=i + 1)
                return self._next(call, case.next)
        return self._next(call, node.get("else"))

    async def _hours(self, call: _Call, node: Node) -> Node | None:
        if node.get("group"):
            name = self._render(call, node.get("group"))
            g = self.groups.get(name)
            if g is None:
                call.log.warning("flows.unknown_group", node=node.name, group=name)
                return self._next(call, node.get("closed"))
            hours = ServiceHours.of(g)
        else:
            hours = ServiceHours(node.get("hours"), node.get("holidays"), node.get("timezone"))
        is_open = hours.is_open(self.clock())
        call.log.info("flows.hours", node=node.name, open=is_open)
        return self._next(call, node.get("open" if is_open else "closed"))

    async def _queue(self, call: _Call, node: Node) -> Node | None:
        s = call.session
        group = self._render(call, node.get("group")) if node.get("group") else call.vars.get("group", "")
        prio = self._render(call, node.get("priority")) if node.get("priority") else call.vars.get("priority", "0")
        prio = prio if re.fullmatch(r"[0-9]{1,3}", prio or "") else "0"
        if not group:
            call.log.warning("flows.queue_no_group", node=node.name)
            raise _End(await self._sorry(call, "ivr_error"))
        await s.set_variable(dp.GROUP, group)
        await s.set_variable(dp.PRIORITY, prio)
        if self.on_queue is not None:
            self.on_queue(call.uid, tuple(call.keys))
        await s.exec_app("Goto", dp.QUEUE_TARGET)
        await self.store.call_event(call.uid, "to_queue", at=self.clock(),
                                    detail={"group": group, "node": node.name})
        call.log.info("flows.to_queue", group=group, priority=prio)
        raise _End(None)

    async def _voicemail(self, call: _Call, node: Node) -> Node | None:
        await call.session.set_variable(dp.VM_BOX, node.get("box"))
        await call.session.exec_app("Goto", dp.VOICEMAIL_TARGET)
        await self.store.call_event(call.uid, "to_voicemail", at=self.clock(),
                                    detail={"box": node.get("box"), "node": node.name})
        raise _End("voicemail")

    async def _survey(self, call: _Call, node: Node) -> Node | None:
        try:
            from agi.survey import collect_rating
        except ImportError:
            call.log.warning("flows.survey_unavailable", node=node.name)
            return self._next(call, node.get("next"))
        kwargs: dict[str, Any] = {"node": node.name, "clock": self.clock}
        prompt = [p.play for p in node.get("prompt") or [] if p.play]
        if prompt:
            kwargs["prompt"] = prompt
        rating = await collect_rating(call.session, self.store, call.uid, **kwargs)
        call.log.info("flows.survey", node=node.name, rating=rating)
        self._set(call, "survey_rating", rating if rating is not None else "")
        return self._next(call, node.get("next"))

    async def _http(self, call: _Call, node: Node) -> Node | None:
        url = self._render(call, node.get("url"), url=True)
        body = {k: self._render(call, v) for k, v in (node.get("body") or {}).items()}
        method, timeout = node.get("method"), node.get("timeout")
        status, ok, data = None, False, None
        if self.http is None:
            call.log.warning("flows.http_unavailable", node=node.name)
        else:
            try:
                async with asyncio.timeout(timeout):
                    kw = {"json": body} if method == "POST" else {"params": body}
                    async with self.http.request(method, url, allow_redirects=False, **kw) as r:
                        status = r.status
                        raw = await r.read()
                ok = 200 <= status < 300
                if ok and raw:
                    try:
                        data = json.loads(raw[:65536])
                    except ValueError:
                        data = None
            except TimeoutError:
                call.log.warning("flows.http_timeout", node=node.name, timeout=timeout)
            except Exception as e:          # refused, reset, bad URL: the failure branch
                call.log.warning("flows.http_failed", node=node.name, error=type(e).__name__)
        if ok:
            for var, path in (node.get("save") or {}).items():
                value: Any = data
                for part in path.split("."):
                    value = value.get(part) if isinstance(value, dict) else None
                if isinstance(value, (str, int, float, bool)):
                    self._set(call, var, value)
        await self.store.call_event(call.uid, "http", at=self.clock(),
                                    detail={"node": node.name, "status": status, "ok": ok})
        return self._next(call, node.get("ok" if ok else "failed"))

    async def _goto(self, call: _Call, node: Node) -> Node | None:
        flow = call.flows[node.get("flow")]
        await self._enter(call, flow)
        return flow.nodes[node.get("node") or flow.start]

    async def _transfer(self, call: _Call, node: Node) -> Node | None:
        number = self._render(call, node.get("number"))
        if not NUMBER.match(number) or not self.transfer_dial:
            call.log.warning("flows.transfer_refused", node=node.name,
                             reason="no outbound.dial" if NUMBER.match(number) else "not a number")
            raise _End(await self._sorry(call, "ivr_error"))
        await self._play(call, node.get("prompt"))
        await call.session.set_variable(dp.TRANSFER_DIAL, self.transfer_dial.format(number=number))
        await call.session.exec_app("Goto", dp.TRANSFER_TARGET)
        await self.store.call_event(call.uid, "transfer", at=self.clock(),
                                    detail={"number": number, "node": node.name})
        call.log.info("flows.transfer", node=node.name)
        raise _End("transferred")

    async def _hangup(self, call: _Call, node: Node) -> Node | None:
        await self._play(call, node.get("prompt"))
        raise _End(await self._hangup_now(call, "ivr_hangup"))

