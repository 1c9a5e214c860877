"""The agent page as the agent's phone: SIP credentials issued to a web session.

``GET /api/agents/{agent}/phone`` says which phone the page offers first (``agents[].phone``)
and whether this server can make the page a phone (it manages Asterisk's configuration here).
``POST`` with ``{"phone": "browser"}`` issues the page a password of its own, random, never
shown to the agent: the agent's PJSIP endpoint (the same name, so the ACD rings it as it rings
a SIP phone) is rendered as a WebRTC endpoint with that password, and res_pjsip reloaded
through AMI (acd.asterisk.live). ``{"phone": "sip"}``, the web session's logout or its expiry
take it back: the endpoint is the SIP phone's again, with the configured password, and
Asterisk refuses the issued one from then on.

Why a rendered file and a reload rather than res_sorcery_astdb objects or realtime: the file
is what a start writes anyway and what the admin page's changes re-render (one source of
endpoints); a browser phone changes the endpoint itself (webrtc, transport, codecs), not only
its password, so astdb would have to hold whole endpoints beside the file's; a reload costs
milliseconds at the rate agents log in and keeps calls and other registrations (contacts live
in astdb).

One page is the agent's phone at a time: a second tab (or a second login) that asks gets a new
password, its registration replaces the first tab's contact (the AOR keeps one), and the
agent's pages hear it on their live socket: the first tab stops its phone and says so.
"""
from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from acd import log as acdlog
from acd.errors import UserError
from acd.web import jssip
from acd.web.auth import AUDIT, USER
from acd.web.request import json_object

PHONES = ("sip", "browser")


@dataclass
class Issued:
    password: str
    session: str            # the web session's key (the hash of its token)
    timer: asyncio.TimerHandle | None = None


class BrowserPhones:
    """Which agents' pages are their phones now, each with the password of its session."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.issued: dict[str, Issued] = {}
        self.log = acdlog.get_logger(component="browser_phone")
        self._script: str | None = None

    def _agent(self, agent_id: str) -> Any:
        for a in self.ctx.cfg.agents:
            if a.id == agent_id:
                return a
        raise UserError("agent.unknown", f"There is no agent {agent_id[:40]!r}.")

    @property
    def live(self) -> Any:
        conf = self.ctx.asterisk_conf
        return conf if conf is not None and conf.managed else None

    async def _apply(self, agent_id: str) -> str:
        conf = self.live
        if conf is None:
            raise UserError("phone.not_managed", "The browser phone needs the Asterisk this "
                                                 "server manages; use a SIP phone.")
        issued = self.issued.get(agent_id)
        return await conf.set_browser(self.ctx.cfg, agent_id,
                                      issued.password if issued else None)

    def _tell_pages(self, agent_id: str, phone: str, page: str) -> None:
        """The agent's pages hear which page is the phone now: another that was stops its
        phone and says so (never two pages believing they are the phone)."""
        runtime = getattr(self.ctx, "runtime", None)
        hub = getattr(runtime, "hub", None)
        if hub is not None:
            hub.publish(f"agent:{agent_id}", {"type": "phone", "phone": phone, "page": page})

    async def issue(self, agent_id: str, session: dict[str, Any], page: str = "") -> dict[str, Any]:
        agent = self._agent(agent_id)
        if self.live is None:
            await self._apply(agent_id)             # raises phone.not_managed
        old = self.issued.get(agent_id)
        if old is not None and old.timer is not None:
            old.timer.cancel()
        issued = Issued(secrets.token_urlsafe(24), session.get("key", ""))
        left = (session["expires_at"] - self.ctx.auth._now()).total_seconds()
        issued.timer = asyncio.get_running_loop().call_later(
            max(0.0, left), lambda: asyncio.ensure_future(self.release(agent_id, issued.session)))
        self.issued[agent_id] = issued
        done = await self._apply(agent_id)
        self.log.info("browser_phone.issued", agent=agent_id, asterisk=done,
                      replaced=old is not None)
        self._tell_pages(agent_id, "browser", page)
        a = self.ctx.cfg.asterisk
        return {"phone": "browser", "ws_url": sip_websocket(a),
                "uri": f"sip:{agent_id}@{a.sip_host}", "username": agent_id,
                "password": issued.password, "display_name": agent.name or agent_id,
                "asterisk": done}

    async def release(self, agent_id: str, session: str | None = None) -> bool:
        """The agent's endpoint back to their SIP phone (only if ``session`` still holds it,
        when given). True if something was taken back."""
        issued = self.issued.get(agent_id)
        if issued is None or (session is not None and issued.session != session):
            return False
        if issued.timer is not None:
            issued.timer.cancel()
        del self.issued[agent_id]
        try:
            done = await self._apply(agent_id)
        except Exception as e:  # noqa: BLE001 - Asterisk away: its next render has it right
            self.log.warning("browser_phone.release_failed", agent=agent_id, error=str(e)[:200])
            return True
        self.log.info("browser_phone.released", agent=agent_id, asterisk=done)
        return True

    async def session_ended(self, key: str) -> None:
        for agent_id, issued in list(self.issued.items()):
            if issued.session == key:
                await self.release(agent_id, key)

    # --- routes --------------------------------------------------------------------------

    async def get(self, request: web.Request) -> web.Response:
        agent_id = request.match_info["agent"]
        agent = self._agent(agent_id)
        issued = self.issued.get(agent_id)
        mine = issued is not None and issued.session == request[USER].get("key")
        return web.json_response({"default": agent.phone, "browser_available": self.live is not None,
                                  "phone": "browser" if mine else "sip"})

    async def post(self, request: web.Request) -> web.Response:
        agent_id = request.match_info["agent"]
        self._agent(agent_id)
        body = await json_object(request)
        phone = body.get("phone")
        if phone not in PHONES:
            raise UserError("phone.bad_choice", "phone: sip or browser")
        request[AUDIT] = {"phone": phone}
        page = str(body.get("page") or "")[:64]          # which page of the agent's asks
        if phone == "browser":
            return web.json_response(await self.issue(agent_id, request[USER], page))
        if await self.release(agent_id, request[USER].get("key")):
            self._tell_pages(agent_id, "sip", page)
        return web.json_response({"phone": "sip"})

    async def script(self, _request: web.Request) -> web.Response:
        if self._script is None:
            self._script = await asyncio.to_thread(jssip.build)
        return web.Response(text=self._script, content_type="application/javascript",
                            headers={"Cache-Control": "no-cache",
                                     "X-Content-Type-Options": "nosniff"})


def sip_websocket(a: Any) -> str:
    """Asterisk's SIP over WebSocket URL for the pages: wss when asterisk.wss_port is set."""
    if a.wss_port:
        return f"wss://{a.sip_host}:{a.wss_port}/ws"
    return f"ws://{a.sip_host}:{a.http_port}/ws"


def add_routes(app: web.Application, ctx: Any) -> BrowserPhones:
    phones = BrowserPhones(ctx)
    ctx.auth.session_ended.append(phones.session_ended)
    app.router.add_get("/api/agents/{agent}/phone", phones.get)
    app.router.add_post("/api/agents/{agent}/phone", phones.post)
    app.router.add_get("/vendor/jssip.js", phones.script)
    return phones
