"""Asterisk's configuration kept in step with the configuration in force while the server runs.

An agent, a supervisor's phone or a group number made on the admin page needs its PJSIP
endpoint or its dialplan line in Asterisk at once, without a restart. We re-render
``asterisk-conf/`` from the configuration in force (acd.asterisk.render: the same files
``acd run`` writes, so the file and the page never fight) and have Asterisk reload what
changed, through AMI: ``module reload res_pjsip.so`` for endpoints (calls up and the other
phones' registrations go on: res_pjsip keeps its contacts in astdb across a reload), and
``dialplan reload`` for group numbers.

Why rendered files and not Asterisk's realtime (sorcery over our database): the rendered
files are what a start writes anyway, so one code path makes every endpoint; realtime would
add a second source of endpoints, a database driver inside Asterisk (ODBC) and a schema
Asterisk owns. A reload costs milliseconds at the rate admins change agents.

Only an Asterisk this server manages (its instance folder here) can be re-rendered; with
an Asterisk set up elsewhere (``acd run --no-asterisk`` against another machine) the change
is in force in the ACD and the answer says the endpoint must be added there by hand.
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from acd.asterisk.render import Layout, render
from acd.config import Config

PJSIP_RELOAD = "module reload res_pjsip.so"
DIALPLAN_RELOAD = "dialplan reload"


class LiveConf:
    """``apply(cfg)``: render, then reload what the change needs."""

    def __init__(self, layout: Layout | None, ami: Any, log: Any) -> None:
        self.layout, self.ami, self.log = layout, ami, log
        self._lock = asyncio.Lock()        # one render and reload at a time
        #: agent id -> the SIP password issued to the web session whose page is that agent's
        #: phone now (render's ``browser``): every render keeps them, whoever asks for it
        self.browser: dict[str, str] = {}
        #: files written while the AMI link was down: reloaded when it is up (catch_up)
        self.stale = False

    @classmethod
    def for_config(cls, cfg: Config, ami: Any, log: Any) -> "LiveConf":
        from acd.asterisk.runner import Asterisk
        try:
            layout: Layout | None = Asterisk.for_config(cfg, build=False).layout
        except Exception as e:  # noqa: BLE001 - no Asterisk set up here
            log.info("asterisk.not_managed", error=str(e)[:200])
            layout = None
        if layout is not None and not (layout.host_dir("etc") / "pjsip.conf").exists():
            layout = None                   # never rendered here: an Asterisk elsewhere
        return cls(layout, ami, log)

    async def set_browser(self, cfg: Config, agent_id: str, password: str | None) -> str:
        """The agent's page becomes their phone with ``password`` (None: it no longer is):
        rendered and pjsip reloaded, as :meth:`apply`."""
        if password is None:
            self.browser.pop(agent_id, None)
        else:
            self.browser[agent_id] = password
        return await self.apply(cfg)

    def in_step(self, cfg: Config) -> bool:
        """Whether Asterisk's rendered endpoints and dialplan are what ``cfg`` (with the
        browser phones now) renders: rendered into a scratch folder and compared."""
        if self.layout is None:
            return True
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            scratch = Layout(inside=self.layout.inside, host=Path(tmp))
            render(cfg, scratch, browser=dict(self.browser))
            for name in ("pjsip.conf", "extensions.conf"):
                have = self.layout.host_dir("etc") / name
                if not have.exists() or have.read_text() != (scratch.host_dir("etc") / name).read_text():
                    return False
        return True

    @property
    def managed(self) -> bool:
        return self.layout is not None

    async def apply(self, cfg: Config, *, pjsip: bool = True, dialplan: bool = False) -> str:
        """Write the rendered files and reload. Returns what was done: "reloaded",
        "not_managed" (nothing here to render) or "asterisk_down" (the files are written;
        Asterisk reads them when it connects again or starts)."""
        if self.layout is None:
            return "not_managed"
        async with self._lock:
            layout = self.layout
            written: list[Path] = await asyncio.to_thread(
                lambda: render(cfg, layout, browser=dict(self.browser)))
            self.log.info("asterisk.rendered", files=len(written))
            if not getattr(self.ami, "connected", False):
                self.stale = True
                return "asterisk_down"
            for command in ([PJSIP_RELOAD] if pjsip else []) + ([DIALPLAN_RELOAD] if dialplan
                                                                 else []):
                await self.ami.action("Command", Command=command)
                self.log.info("asterisk.reloaded", command=command)
            self.stale = False
            return "reloaded"

    async def catch_up(self, cfg: Config) -> str | None:
        """The AMI link is up again: what was rendered while it was down (a browser phone
        issued right after a restart, before the link came up) is reloaded now. None: nothing
        was waiting."""
        if not self.stale:
            return None
        return await self.apply(cfg, dialplan=True)


__all__ = ["LiveConf"]
