"""History reports over HTTP: ``GET /api/reports/history`` (JSON), ``.csv`` and ``.xlsx``.

Query: ``since``, ``until`` (dates in the report's time zone, ``until`` excluded, or ISO 8601
times), ``by`` (15m, 30m, 60m, day, week, month), ``dimension`` (group, agent, number),
``key`` (comma-separated: only these), ``tz``, ``short_abandon`` (seconds). The facts are
brought up to date first (the calls ended since the background indexer last ran), so a
report includes every call that has ended. Supervisors and admins (``/api/reports/*``).
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from acd.errors import UserError
from acd.reports import export, history, queue_log

#: queue_log export: at most this many days and calls in one answer.
QUEUE_LOG_DAYS = 31
QUEUE_LOG_CALLS = 200_000


def _settings(cfg: Any) -> dict[str, history.GroupSettings]:
    return {g.name: history.GroupSettings(
        sl_seconds=g.service_level_seconds, sl_target=g.service_level_target,
        expected_handle_time=g.expected_handle_time, members=tuple(g.members or ()))
        for g in cfg.groups}


def sl_seconds(cfg: Any) -> dict[str, float]:
    """Each group's service-level threshold, as the indexer judges answers by."""
    return {g.name: g.service_level_seconds for g in cfg.groups}


class ReportRoutes:
    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    async def _report(self, request: web.Request) -> dict[str, Any]:
        cfg = self.ctx.cfg
        req = history.request(
            request.query, default_tz=cfg.web.timezone,
            known={"group": [g.name for g in cfg.groups], "agent": [a.id for a in cfg.agents]},
            group_tz={g.name: g.timezone for g in cfg.groups})
        done = await self.ctx.store.index_reports(sl_seconds(cfg))
        async with self.ctx.store.session() as s:
            rep = await history.report(s, req, groups=_settings(cfg), now=self.ctx.clock())
        # after an upgrade of a large database the background indexer may still be making
        # the facts of older calls: the report says so instead of looking complete
        rep["complete"] = not done["more"]
        return rep

    async def history(self, request: web.Request) -> web.Response:
        return web.json_response(await self._report(request))

    async def history_csv(self, request: web.Request) -> web.Response:
        rep = await self._report(request)
        return web.Response(body=export.to_csv(rep["columns"], rep["rows"]),
                            content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": _name(rep, "csv")})

    async def history_xlsx(self, request: web.Request) -> web.Response:
        rep = await self._report(request)
        body = export.to_xlsx(rep["columns"], rep["rows"], sheet=f"By {rep['dimension']}")
        return web.Response(body=body, content_type="application/vnd.openxmlformats-"
                            "officedocument.spreadsheetml.sheet",
                            headers={"Content-Disposition": _name(rep, "xlsx")})

    async def queue_log(self, request: web.Request) -> web.Response:
        """The calls that arrived in the range and the agents' state changes in it, as
        Asterisk's queue_log lines (one file, in time order)."""
        cfg = self.ctx.cfg
        req = history.request({**request.query, "by": "day"}, default_tz=cfg.web.timezone,
                              known={}, group_tz={})
        if (req.until - req.since).days > QUEUE_LOG_DAYS:
            raise UserError("report.bad_range", f"queue_log: at most {QUEUE_LOG_DAYS} days")
        calls = await self.ctx.store.calls_between(req.since, req.until, QUEUE_LOG_CALLS + 1)
        if len(calls) > QUEUE_LOG_CALLS:
            raise UserError("report.too_large", f"more than {QUEUE_LOG_CALLS} calls: ask for "
                                                "fewer days")
        groups: dict[str, list[str]] = {}
        for g in cfg.groups:
            for member in g.members or {}:
                groups.setdefault(member, []).append(g.name)
        states = await self.ctx.store.agent_state_rows(req.since, req.until,
                                                       QUEUE_LOG_CALLS * 10)
        lines = [ln for c in calls for ln in queue_log.call_lines(c)]
        lines += queue_log.agent_lines(states, groups=groups)
        lines.sort(key=lambda ln: int(ln.split("|", 1)[0]))     # stable: each call's order
        day = req.since.date().isoformat()
        return web.Response(text="".join(ln + "\n" for ln in lines), content_type="text/plain",
                            charset="utf-8", headers={
                                "Content-Disposition": f'attachment; filename="queue_log-{day}"'})

    def routes(self) -> list[tuple[str, str, Any]]:
        return [("get", "/api/reports/queue_log", self.queue_log),
                ("get", "/api/reports/history", self.history),
                ("get", "/api/reports/history.csv", self.history_csv),
                ("get", "/api/reports/history.xlsx", self.history_xlsx)]


def _name(rep: dict[str, Any], ext: str) -> str:
    day = rep["since"][:10]
    return f'attachment; filename="report-{rep["dimension"]}-{rep["by"]}-{day}.{ext}"'


def add_routes(app: web.Application, ctx: Any) -> None:
    for method, path, handler in ReportRoutes(ctx).routes():
        getattr(app.router, f"add_{method}")(path, handler)
