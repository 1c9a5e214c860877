"""The flows as the server runs them: registry (load, check, hot reload), prompt library,
customer directory, HTTP client and the FastAGI runner, built from the configuration.

``acd/app.py`` builds one :class:`FlowService`, starts it before FastAGI listens and stops it
after; the runner is the ``ivr`` route; the admin API reads :attr:`registry`.
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from acd import log as acdlog
from acd.asterisk import dialplan as dp
from acd.directory import DatabaseDirectory, HttpDirectory
from agi.flows.prompts import PromptLibrary, SoundIndex
from agi.flows.registry import FlowRegistry
from agi.flows.runner import FlowRunner


def _asterisk_paths(cfg: Any) -> tuple[Path | None, str | None, SoundIndex | None]:
    """(prompt folder as we see it, as Asterisk sees it, Asterisk's sounds) from the config:
    ``flows.prompts_dir``/``prompts_dir_asterisk``, else the project's Asterisk instance."""
    sounds = None
    host, inside = None, None
    try:
        from acd.asterisk.runner import Asterisk
        ast = Asterisk.for_config(cfg, build=False)
        root = ast.install.root
        base = (root / "usr/share/asterisk/sounds") if root is not None \
            else Path("/usr/share/asterisk/sounds")
        sounds = SoundIndex.for_root(base, root)
        host, inside = ast.layout.host_dir("sounds"), ast.layout.inside_dir("sounds")
    except Exception as e:          # not provisioned (yet), or Asterisk runs elsewhere
        acdlog.get_logger(component="flows").info("flows.asterisk_unknown", detail=str(e))
    if cfg.flows.prompts_dir:
        host, inside = cfg.path(cfg.flows.prompts_dir), cfg.flows.prompts_dir_asterisk
    return host, inside, sounds


def transfer_dial(cfg: Any) -> str:
    """How a transfer node reaches an external number: ``outbound.dial``, else (tests, load
    runs) the loopback trunk's test customers; empty: transfers are refused."""
    if cfg.outbound.dial:
        return cfg.outbound.dial
    if cfg.asterisk.loopback_trunk:
        return dp.TEST_CUSTOMER_DIAL
    return ""


class FlowService:
    def __init__(self, registry: FlowRegistry, runner: FlowRunner, *, watch_seconds: float,
                 directory_source: str, directory_url: str = "", directory_timeout: float = 3.0) -> None:
        self.registry = registry
        self.runner = runner
        self.watch_seconds = watch_seconds
        self._directory = (directory_source, directory_url, directory_timeout)
        self._http: Any = None
        self._watch: asyncio.Task | None = None

    @classmethod
    def from_config(cls, cfg: Any, store: Any, *, fallback: Any = None, on_queue: Any = None,
                    sounds: SoundIndex | None = None, resolve_asterisk: bool = True) -> "FlowService":
        host, inside, found = _asterisk_paths(cfg) if resolve_asterisk else (None, None, None)
        library = PromptLibrary(cfg.path(cfg.data_dir) / "prompts", host, inside,
                                synth=cfg.flows.voice_command)
        registry = FlowRegistry(cfg.path(cfg.flows.dir), numbers=cfg.flows.numbers or {},
                                groups=[g.name for g in cfg.groups], library=library,
                                sounds=sounds or found, config_source=cfg.source)
        runner = FlowRunner(registry, store, fallback=fallback, on_queue=on_queue,
                            groups={g.name: g for g in cfg.groups}, transfer_dial=transfer_dial(cfg),
                            lookup_timeout=cfg.directory.timeout, max_steps=cfg.flows.max_steps)
        runner.directory = DatabaseDirectory(store)
        return cls(registry, runner, watch_seconds=cfg.flows.watch_seconds,
                   directory_source=cfg.directory.backend, directory_url=cfg.directory.url,
                   directory_timeout=cfg.directory.timeout)

    async def start(self) -> None:
        import aiohttp
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        self.runner.http = self._http
        source, url, timeout = self._directory
        if source == "http":
            self.runner.directory = HttpDirectory(url, timeout, self._http)
        await self.registry.reload("start")
        if self.watch_seconds > 0:
            self._watch = asyncio.ensure_future(self.registry.watch(self.watch_seconds))

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
            self._watch = None
        if self._http is not None:
            await self._http.close()
            self._http = None
