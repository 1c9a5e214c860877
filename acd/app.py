"""The one place that wires everything: config in, adapters built, started and stopped in order.

Start-up: database migrated, store opened, the ACD core and its runtime built (skill groups
from the config), FastAGI listening (so a caller already in the dialplan is served at once;
the queue script waits until the runtime has taken up its state), AMI connecting in the
background (a missing Asterisk is logged and retried, never fatal; the runtime rebuilds from
Asterisk and the store on the first login and reconciles on every later one), HTTP listening.
Shutdown runs the same list backwards.
"""
from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiohttp import web

from acd import log as acdlog
from acd.ami.client import AmiClient
from acd.runtime.ami_in import AMI_EVENTS
from acd.asterisk import dialplan as dp
from acd.config import Config, core_groups, phone_grace
from acd.core import Acd
from acd.admin_config import config_with, entries_of, reconcile as reconcile_entries
from acd.asterisk.live import LiveConf
from acd.memberships import reconcile, with_members
from acd.sdnotify import Notifier
from acd.runtime import AcdRuntime
from acd.store.db import Store, migrate_async
from acd.store.writer import QueuedStore, spill_path_for
from acd.web.api import make_app
from acd.web.hub import Hub
from agi.flows.service import FlowService
from agi.hotline import HotlineIvr
from agi.queue import CallbackScript, QueueScript
from agi.survey import SurveyScript
from agi.server import FastAgiServer

#: At stop, how long AMI actions already under way may take before the link is closed.
STOP_GRACE_SECONDS = 2.0
#: How often the history reports' facts are brought up to date in the background.
REPORT_INDEX_SECONDS = 30.0


def customer_dial(cfg: Config) -> str:
    """The dial string template for callback customers: ``outbound.dial``, else the loopback
    trunk's test customers (the config check refuses callbacks with neither)."""
    return cfg.outbound.dial or dp.TEST_CUSTOMER_DIAL


def outbound_caller_id(cfg: Config) -> str:
    """The caller id of outbound calls and callbacks, as AMI's CallerID takes it."""
    cid = cfg.outbound.caller_id
    return cid if not cid or cid.endswith(">") else f"<{cid}>"


def ami_client(cfg: Config) -> AmiClient:
    return AmiClient(cfg.ami.host, cfg.ami.port, cfg.ami.username, cfg.ami.secret,
                     action_timeout=cfg.ami.action_timeout, ping_interval=cfg.ami.ping_interval,
                     ping_timeout=cfg.ami.ping_timeout, event_filter=AMI_EVENTS)


def recordings_spool(cfg: Config, log: Any) -> tuple[str, Path] | None:
    """Where MixMonitor writes (as Asterisk sees it, as we see it): the spool of our
    Asterisk instance; None (recordings fail, calls go on) when no Asterisk is set up here."""
    from acd.asterisk.runner import Asterisk
    try:
        layout = Asterisk.for_config(cfg, build=False).layout
    except Exception as e:  # noqa: BLE001 - no Asterisk here (acd run --no-asterisk)
        log.warning("app.no_recordings_spool", error=str(e))
        return None
    return f"{layout.inside_dir('spool')}/recordings", layout.host_dir("spool") / "recordings"


@dataclass
class Server:
    cfg: Config
    store: Store | None = None
    agi: FastAgiServer | None = None
    ami: AmiClient | None = None
    http: web.AppRunner | None = None
    hub: Hub | None = None
    runtime: AcdRuntime | None = None
    flows: FlowService | None = None     # IVR flows: the `ivr` route, hot reload
    web_ctx: Any = None                  # the web pages' context: logins, sessions, pages
    rng: random.Random | None = None     # drives the "random" strategy; seeded in tests
    lease: Any = None                    # acd.leader.Lease when ha is on: held, kept, checked
    #: False with ``acd run --no-asterisk``: Asterisk's configuration is someone else's (another
    #: machine, a container, the benchmarks' instance): never rendered from here
    manage_asterisk: bool = True
    http_port: int = 0
    _ami_task: asyncio.Future | None = None
    _hashing: asyncio.Future | None = None    # the web passwords argon2 hashes behind
    _indexing: asyncio.Future | None = None   # the history reports' facts, kept up to date
    asterisk_conf: LiveConf | None = None     # Asterisk's rendered configuration, kept in step
    _stopped: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        cfg = self.cfg
        log = acdlog.get_logger(component="app")
        log.info("app.starting", agents=len(cfg.agents), groups=len(cfg.groups))
        await migrate_async(cfg.database_url)
        log.info("app.migrated")
        self.store = Store(cfg.database_url)
        self.store.guard = self._guard
        cfg = self.cfg = await members_in_force(self.store, await entries_in_force(
            self.store, cfg, log), log)
        # Web logins: the users table at once; the passwords argon2 has to hash (new users,
        # changed passwords: 0.1 s or more each) are hashed behind, while a pending user logs
        # in with the configured password. Nothing at start grows with the number of users.
        from acd.web.pages import web_context
        self.web_ctx = await web_context(cfg, self.store, defer=True)
        self.web_ctx.on_cfg = self._config_changed
        log.info("app.users_ready", **self.web_ctx.auth.synced)
        if self.web_ctx.auth.synced.get("pending"):
            self._hashing = asyncio.ensure_future(self._hash_passwords())
        self.hub = Hub()

        self.ami = ami_client(cfg)
        self.ami.guard = self._guard
        self.ami.on_connection(self._ami_connection)
        self.runtime = self._runtime(cfg, log)
        self.runtime.attach()
        self._keep_asterisk_in_step()
        # Writes a previous stop could not make (the database locked or full) go first.
        self.runtime.writer.spill = spill_path_for(cfg.database_url, cfg.path(cfg.data_dir))
        self.runtime.writer.replay(self.store)
        await self.runtime.start()

        first_group = cfg.groups[0].name if cfg.groups else None
        # The IVR's writes go through the runtime's store writer (one queue, one order per
        # call): a locked or full database holds back the record, never the caller.
        ivr_store = QueuedStore(self.store, self.runtime.writer)
        hotline = HotlineIvr(ivr_store, queue_group=first_group,
                             on_queue=self.runtime.expect_caller)
        # The dialled number picks a YAML flow (flows.numbers); others get the built-in script.
        self.flows = FlowService.from_config(cfg, ivr_store, fallback=hotline,
                                             on_queue=self.runtime.expect_caller)
        await self.flows.start()
        routes = {"ivr": self.flows.runner, "queue": QueueScript(self.runtime),
                  "callback": CallbackScript(self.runtime),
                  "survey": SurveyScript(ivr_store)}
        self.agi = FastAgiServer(cfg.agi.host, cfg.agi.port, routes,
                                 allow=cfg.agi.allow, max_sessions=cfg.agi.max_sessions,
                                 max_pending_per_address=cfg.agi.max_pending_per_address,
                                 header_timeout=cfg.agi.header_timeout,
                                 command_timeout=cfg.agi.command_timeout)
        self.agi.guard = self._guard
        await self.agi.start()
        self._indexing = asyncio.ensure_future(self._index_reports())
        # Connect in the background: Asterisk may come up after us; the client keeps trying.
        self._ami_task = asyncio.ensure_future(self._start_ami())

        self.web_ctx.runtime = self.runtime
        self.web_ctx.asterisk_conf = self.asterisk_conf
        app = make_app(store=self.store, ami=self.ami, agi=self.agi, cfg=cfg,
                       runtime=self.runtime, hub=self.hub, flows=self.flows, web_ctx=self.web_ctx)
        self.http = web.AppRunner(app, access_log=None)
        await self.http.setup()
        site = web.TCPSite(self.http, cfg.http.host, cfg.http.port)
        await site.start()
        self.http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("app.started", http=f"http://{cfg.http.host}:{self.http_port}/",
                 agi=f"{cfg.agi.host}:{self.agi.port}", ami=f"{cfg.ami.host}:{cfg.ami.port}")

    def _runtime(self, cfg: Config, log: Any) -> AcdRuntime:
        """The ACD core and its runtime, over the store, AMI and the hub."""
        assert self.store is not None and self.hub is not None
        return AcdRuntime(
            Acd(core_groups(cfg), rng=self.rng or random.Random(),
                phone_grace=phone_grace(cfg.asterisk),
                keep_ended=cfg.core.ended_calls_kept), self.ami, self.store, self.hub,
            endpoints={a.id: a.id for a in cfg.agents},   # the endpoint name is the agent id
            names={a.id: a.name or a.id for a in cfg.agents}, groups=cfg.groups,
            customer_dial=customer_dial(cfg), hotline_number=cfg.hotline.number,
            outbound_caller_id=outbound_caller_id(cfg),
            outbound_enabled=bool(cfg.outbound.dial or cfg.asterisk.loopback_trunk),
            outbound_ring_timeout=cfg.outbound.ring_timeout,
            outbound_dial_timeout=cfg.outbound.dial_timeout,
            max_lag=cfg.overload.max_lag_ms / 1000,
            max_asterisk=cfg.overload.max_asterisk_ms / 1000,
            recordings_spool=recordings_spool(cfg, log), recordings_folder=cfg.recordings_folder,
            recordings_keep_days=cfg.recordings.keep_days,
            supervisor_phones={u.username: u.phone for u in cfg.web.users if u.phone},
            rng=self.rng)

    async def _hash_passwords(self) -> None:
        log = acdlog.get_logger(component="app")
        started = time.monotonic()
        try:
            made = await self.web_ctx.auth.hash_pending()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("app.passwords_failed")     # pending users log in as configured
            return
        log.info("app.passwords_hashed", hashed=made,
                 took=round(time.monotonic() - started, 3))

    def lease_lost(self) -> None:
        """The lease is gone (acd.leader): the records still waiting go to this node's spill
        file (written at its next start as leader), then the process ends, acting no more."""
        from acd.leader import LOST_EXIT
        try:
            if self.runtime is not None:
                self.runtime.writer.spill_now()
        finally:
            os._exit(LOST_EXIT)

    @property
    def _guard(self) -> Any:
        """Before each AMI action, FastAGI session and store write: a leader past its lease
        ends there (acd.leader); None without ha."""
        return self.lease.check if self.lease is not None else None

    def _config_changed(self, cfg: Config) -> None:
        """The configuration in force changed while running (memberships on the page)."""
        self.cfg = cfg

    def _keep_asterisk_in_step(self) -> None:
        """Asterisk's endpoints and dialplan as this server's configuration in force renders
        them: not so when agents or groups were made on the admin page (``acd run`` renders
        config.yaml), or a stopped server's browser phone is still rendered there."""
        log = acdlog.get_logger(component="asterisk")
        self.asterisk_conf = (LiveConf.for_config(self.cfg, self.ami, log)
                              if self.manage_asterisk else LiveConf(None, self.ami, log))
        if not self.asterisk_conf.in_step(self.cfg):
            # rendered and reloaded as soon as the AMI link is up (catch_up, below)
            self.asterisk_conf.stale = True
            log.info("asterisk.not_in_step")

    async def _release_browser_phones(self) -> None:
        """At a stop, agents whose page is their phone and who are on no call get their SIP
        phone's endpoint back (a phone a stopped server issued would otherwise stay
        rendered); one on a call keeps it (the call goes on; the next start puts it right,
        and the page, its live link back, takes the phone again)."""
        phones = getattr(self.web_ctx, "browser_phones", None)
        if phones is None or self.runtime is None or self.ami is None or not self.ami.connected:
            return
        for agent_id in list(phones.issued):
            if (self.runtime.agent(agent_id) or {}).get("call_id"):
                continue
            try:
                await phones.release(agent_id)
            except Exception as e:  # noqa: BLE001 - the next start renders it right
                acdlog.get_logger(component="app").warning("app.release_failed",
                                                            agent=agent_id, error=str(e)[:200])

    async def _index_reports(self) -> None:
        """The history reports' facts, brought up to date every REPORT_INDEX_SECONDS, behind
        the calls (a report brings them up to date too before it is read)."""
        from acd.web.reports_api import sl_seconds
        log = acdlog.get_logger(component="reports")
        assert self.store is not None
        while True:
            await asyncio.sleep(REPORT_INDEX_SECONDS)     # not during the start
            try:
                while (done := await self.store.index_reports(sl_seconds(self.cfg)))["more"]:
                    await asyncio.sleep(0)
                if done["calls"] or done["states"]:
                    log.debug("reports.indexed", **done)
            except asyncio.CancelledError:
                raise
            except Exception as e:        # a locked database: next time
                log.warning("reports.index_failed", error=str(e)[:200])

    async def _start_ami(self) -> None:
        assert self.ami is not None
        try:
            await self.ami.start()
        except Exception as e:  # the client logs and retries; this only ends on close()
            acdlog.get_logger(component="app").info("app.ami_not_started", error=str(e))

    async def _ami_connection(self, up: bool) -> None:
        log = acdlog.get_logger(component="app")
        log.info("app.ami_link", up=up)
        if up and self.asterisk_conf is not None:
            try:              # a browser phone issued while the link was down: reload now
                done = await self.asterisk_conf.catch_up(self.cfg)
                if done is not None:
                    log.info("asterisk.caught_up", result=done)
            except Exception as e:  # noqa: BLE001 - the next change or start reloads
                log.warning("asterisk.catch_up_failed", error=str(e)[:200])
        index = leader_index(self.cfg)
        if up and self.lease is not None and index:
            # The leader says so to the dialplan: new calls come here first, not to a
            # server that is away or frozen (whose FastAGI port may still take connections).
            try:
                await self.ami.action("Setvar", Variable=dp.AGI_FIRST, Value=str(index))
                log.info("ha.dialplan_points_here", index=index)
            except Exception as e:  # noqa: BLE001 - calls still find us, one retry later
                log.warning("ha.dialplan_not_pointed", error=str(e)[:200])

    async def stop(self) -> None:
        await self._release_browser_phones()
        if self.http:
            await self.http.cleanup()
        if self._indexing is not None:
            self._indexing.cancel()
            await asyncio.gather(self._indexing, return_exceptions=True)
        if self._hashing is not None:       # the rest are hashed at the next start
            self._hashing.cancel()
            await asyncio.gather(self._hashing, return_exceptions=True)
        if self.runtime and self.ami:
            # AMI actions already under way (a leg's hangup after a call) finish before the
            # link is closed; bounded, as events keep coming until then.
            try:
                await asyncio.wait_for(self.runtime.quiesce(), STOP_GRACE_SECONDS)
            except asyncio.TimeoutError:
                pass
        if self.ami:
            await self.ami.close()
        if self.agi:
            await self.agi.stop()
        if self.flows:
            await self.flows.stop()
        if self.runtime:
            await self.runtime.stop()
        if self.store:
            await self.store.close()
        self._stopped.set()


async def entries_in_force(store: Store, cfg: Config, log: Any) -> Config:
    """``cfg`` with the agents, groups and web users in force: config.yaml's seed, the admin
    page's changes, the file's later edits (acd.admin_config), written back to the store."""
    found = reconcile_entries(entries_of(cfg), await store.entry_rows())
    if found.upserts or found.deletes:
        await store.write_entries(found.upserts, found.deletes,
                                  at=datetime.now(timezone.utc), by="config.yaml")
    for note in found.notes:
        log.info("config.entries_from_file", change=note)
    return config_with(cfg, found.entries)


async def members_in_force(store: Store, cfg: Config, log: Any) -> Config:
    """``cfg`` with the skill-group memberships in force: config.yaml's seed, the page's
    changes, the file's later edits (acd.memberships), written back to the store."""
    file_groups = {g.name: dict(g.members or {}) for g in cfg.groups}
    found = reconcile(file_groups, [a.id for a in cfg.agents], await store.member_rows())
    if found.upserts or found.deletes:
        await store.write_members(found.upserts, found.deletes,
                                  at=datetime.now(timezone.utc), by="config.yaml")
    for note in found.notes:
        log.info("config.members_from_file", change=note)
    return with_members(cfg, found.members)


def leader_index(cfg: Config) -> int:
    """This server's place (1, 2, ...) in ``agi.servers``; 0: not listed."""
    from acd.asterisk.render import agi_servers
    host = cfg.agi.host if cfg.agi.host not in ("0.0.0.0", "::") else "127.0.0.1"
    me = f"{host}:{cfg.agi.port}"
    servers = agi_servers(cfg)
    return servers.index(me) + 1 if me in servers else 0


async def serve(cfg: Config, ready: Any = None, manage_asterisk: bool = True) -> None:
    """Run until SIGINT or SIGTERM, then stop cleanly. With ``ha`` on, first wait as a
    standby until the lease is ours (acd.leader), then lead until stopped."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    lease = server = None
    systemd = Notifier()                           # systemd's readiness and watchdog, if any
    systemd.start_watchdog()
    try:
        if cfg.ha.enabled:
            systemd.send("READY=1", "STATUS=standby: waiting for the lease")
            lease = await take_the_lead(cfg, stop)
            if lease is None:
                return                             # stopped while a standby
        server = Server(cfg, lease=lease, manage_asterisk=manage_asterisk)
        if lease is not None:
            lease.on_lost = server.lease_lost
            lease.keep()                           # renewed from now on, start included
        await server.start()
        systemd.send("READY=1", "STATUS=leading" if lease is not None else "STATUS=running")
        if ready:
            ready(server)
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await systemd.close()                      # STOPPING=1
        if server is not None:
            await server.stop()
        if lease is not None:
            await lease.close()                    # the lease is free at once


async def take_the_lead(cfg: Config, stop: asyncio.Event) -> Any:
    """A standby's wait: the lease, or None if stopped first."""
    import socket

    from acd.leader import Lease
    await migrate_async(cfg.database_url)          # the lease's table
    node = cfg.ha.node or f"{socket.gethostname()}-{cfg.http.port}"
    lease = Lease(cfg.database_url, node, cfg.ha.lease_seconds,
                  acdlog.get_logger(component="ha"))
    waiting = asyncio.ensure_future(lease.wait_to_lead())
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({waiting, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if waiting.done():
        stopped.cancel()
        return lease
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    await lease.close()
    return None
