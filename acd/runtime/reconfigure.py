"""The runtime follows the configuration in force when the admin page changes it: agents
created or removed (their endpoints, names, phones), skill groups created, changed or removed
(the core's groups, service hours, recording shares, callback keys), supervisors' phones.

A removal the ACD cannot make now (an agent logged in, a group with calls) raises its
AcdError before anything changed, so the caller can refuse the change and write nothing.
"""
from __future__ import annotations

from typing import Any

from acd.config_checks import core_groups
from acd.core.errors import AgentLoggedIn, GroupHasCalls
from acd.recordings import group_share


def check(rt: Any, cfg: Any) -> None:
    """Raise what :func:`reconfigure` would refuse, changing nothing."""
    now = rt.clock()
    wanted = {a.id for a in cfg.agents}
    for agent_id in rt.endpoints:
        if agent_id not in wanted:
            state = (rt.acd.agent_snapshot(agent_id, now) or {}).get("state", "offline")
            if state != "offline":
                raise AgentLoggedIn(agent_id, state)
    groups = {g.name for g in cfg.groups}
    for name in rt.group_cfg:
        if name not in groups and rt.acd.group_calls(name):
            raise GroupHasCalls(name, rt.acd.group_calls(name))


def reconfigure(rt: Any, cfg: Any) -> None:
    """``rt`` (an AcdRuntime) takes ``cfg``'s agents, groups and supervisors' phones."""
    check(rt, cfg)
    now = rt.clock()
    agents = {a.id: a.id for a in cfg.agents}       # the endpoint name is the agent id
    for agent_id in [a for a in rt.endpoints if a not in agents]:
        rt.apply(rt.acd.forget_agent(agent_id, now))
    rt.endpoints.clear()
    rt.endpoints.update(agents)
    rt.names.clear()
    rt.names.update({a.id: a.name or a.id for a in cfg.agents})
    rt.phones.set_endpoints(agents)
    rt.group_cfg = {g.name: g for g in cfg.groups}
    rt.recorder.shares = {name: group_share(g) for name, g in rt.group_cfg.items()}
    rt.queue.callback_keys = {name: g.callback.key if g.callback is not None else None
                              for name, g in rt.group_cfg.items()}
    rt.apply(rt.acd.configure_groups(core_groups(cfg), now))
    for name in [n for n in rt._open if n not in rt.group_cfg]:
        del rt._open[name]
    rt._check_hours()                   # a new group's service hours at once
    phones = {u.username: u.phone for u in cfg.web.users if u.phone}
    rt.supervisor_phones.clear()
    rt.supervisor_phones.update(phones)
    rt.monitors.phones = dict(phones)


__all__ = ["check", "reconfigure"]
