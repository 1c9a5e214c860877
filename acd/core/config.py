"""Skill group configuration: plain frozen dataclasses, checked once by :func:`validate_groups`."""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from acd.core.errors import ConfigInvalid
from acd.core.routing import Strategy


class DestinationKind(StrEnum):
    GROUP = "group"          # another skill group's queue (the core moves the call itself)
    IVR = "ivr"              # an IVR flow (target: flow name)
    VOICEMAIL = "voicemail"  # leave a message (target: mailbox)
    CALLBACK = "callback"    # call the caller back on their number, keeping their place
    HANGUP = "hangup"        # say goodbye and hang up (target: optional sound)


@dataclass(frozen=True, slots=True)
class Destination:
    kind: DestinationKind
    target: str = ""

    @classmethod
    def group(cls, name: str) -> Destination:
        return cls(DestinationKind.GROUP, name)

    @classmethod
    def ivr(cls, flow: str) -> Destination:
        return cls(DestinationKind.IVR, flow)

    @classmethod
    def voicemail(cls, mailbox: str) -> Destination:
        return cls(DestinationKind.VOICEMAIL, mailbox)

    @classmethod
    def callback(cls) -> Destination:
        return cls(DestinationKind.CALLBACK)

    @classmethod
    def hangup(cls, sound: str = "") -> Destination:
        return cls(DestinationKind.HANGUP, sound)

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.target}" if self.target else self.kind.value


#: The message of the default overload destination (Asterisk's core sounds).
OVERLOAD_SOUND = "all-circuits-busy-now"


@dataclass(frozen=True, slots=True)
class WidenStep:
    """After ``after`` seconds in the queue, also accept agents of ``groups`` (at each one's
    ``min_level``) and/or home-group members down to skill level ``min_level``."""
    after: float
    groups: tuple[str, ...] = ()
    min_level: int | None = None


@dataclass(frozen=True, slots=True)
class CallbackSettings:
    attempts: int = 3             # customer dial attempts
    gap: float = 300.0            # seconds between attempts
    expiry: float = 4 * 3600.0    # seconds after the request; then the callback is dropped
    dial_timeout: float = 30.0    # seconds the customer's phone rings


@dataclass(frozen=True)
class GroupConfig:
    name: str
    #: agent id -> skill level (higher = more skilled); order is the group's member order
    members: Mapping[str, int] = field(default_factory=dict)
    strategy: Strategy = Strategy.LONGEST_IDLE
    ring_timeout: float = 15.0
    wrapup_seconds: float = 0.0
    service_level_seconds: float = 20.0
    #: an agent who does not answer goes to break with reason "no answer"
    no_answer_break: bool = True
    #: without that break, the agent is not offered the same call again for this long
    retry_seconds: float = 5.0
    #: only members at or above this skill level are offered calls (until widened)
    min_level: int = 0
    widen: tuple[WidenStep, ...] = ()
    max_wait: float | None = None
    max_wait_destination: Destination = Destination.hangup()
    max_queue_length: int | None = None     # live callers (waiting or ringing)
    queue_full_destination: Destination = Destination.hangup()
    #: where a new caller goes while the server is overloaded (a message, then goodbye)
    overload_destination: Destination = Destination.hangup(OVERLOAD_SOUND)
    open: bool = True                       # initial service-hours flag (see set_group_open)
    closed_destination: Destination = Destination.hangup()
    no_agents_destination: Destination | None = None  # None: queue even if nobody is logged in
    familiar_seconds: float = 0.0           # 0: familiar-customer routing off
    familiar_window: float = 7 * 86400.0    # how recent the last conversation must be
    announce_every: float | None = None     # None: no position / wait announcements
    announce_position: bool = True
    announce_estimated_wait: bool = True
    callback: CallbackSettings | None = None  # None: callbacks are not offered
    expected_handle_time: float = 180.0     # seed of the handle-time average for estimates

    def destinations(self) -> dict[str, Destination]:
        out = {"max_wait_destination": self.max_wait_destination,
               "queue_full_destination": self.queue_full_destination,
               "overload_destination": self.overload_destination,
               "closed_destination": self.closed_destination}
        if self.no_agents_destination is not None:
            out["no_agents_destination"] = self.no_agents_destination
        return out


def validate_groups(groups: Iterable[GroupConfig]) -> dict[str, GroupConfig]:
    """Check the groups together; return them by name. Raises ``core.config_invalid``."""
    by_name: dict[str, GroupConfig] = {}
    for g in groups:
        if not g.name:
            raise ConfigInvalid("A skill group needs a name.")
        if g.name in by_name:
            raise ConfigInvalid(f"Skill group {g.name!r} is defined twice.")
        by_name[g.name] = g
    for g in by_name.values():
        _check_group(g, by_name)
    _check_no_loops(by_name)
    return by_name


def _bad(g: GroupConfig, msg: str) -> ConfigInvalid:
    return ConfigInvalid(f"Skill group {g.name!r}: {msg}")


def _positive(g: GroupConfig, name: str, value: float, zero_ok: bool = False) -> None:
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        raise _bad(g, f"{name} must be {'0 or more' if zero_ok else 'above 0'}, not {value}.")


def _check_group(g: GroupConfig, by_name: dict[str, GroupConfig]) -> None:
    """One group's own settings, and the groups it names."""
    try:
        Strategy(g.strategy)
    except ValueError:
        raise _bad(g, f"unknown strategy {g.strategy!r}.") from None
    for agent, level in g.members.items():
        if not agent:
            raise _bad(g, "a member has an empty agent id.")
        if not isinstance(level, int) or isinstance(level, bool) or level < 0:
            raise _bad(g, f"member {agent!r}: skill level must be a whole number >= 0.")
    _positive(g, "ring_timeout", g.ring_timeout)
    _positive(g, "retry_seconds", g.retry_seconds)
    _positive(g, "wrapup_seconds", g.wrapup_seconds, zero_ok=True)
    _positive(g, "service_level_seconds", g.service_level_seconds, zero_ok=True)
    _positive(g, "familiar_seconds", g.familiar_seconds, zero_ok=True)
    _positive(g, "familiar_window", g.familiar_window, zero_ok=True)
    _positive(g, "expected_handle_time", g.expected_handle_time)
    if g.max_wait is not None:
        _positive(g, "max_wait", g.max_wait)
    if g.max_queue_length is not None and g.max_queue_length < 0:
        raise _bad(g, "max_queue_length must be 0 or more.")
    if g.announce_every is not None:
        _positive(g, "announce_every", g.announce_every)
    if g.callback is not None:
        if g.callback.attempts < 1:
            raise _bad(g, "callback.attempts must be 1 or more.")
        _positive(g, "callback.gap", g.callback.gap, zero_ok=True)
        _positive(g, "callback.expiry", g.callback.expiry)
        _positive(g, "callback.dial_timeout", g.callback.dial_timeout)
    last = 0.0
    for i, step in enumerate(g.widen):
        _positive(g, f"widen[{i}].after", step.after, zero_ok=True)
        if step.after < last:
            raise _bad(g, "widen steps must be in order of their 'after' seconds.")
        last = step.after
        for other in step.groups:
            if other not in by_name:
                raise _bad(g, f"widen[{i}] names unknown skill group {other!r}.")
            if other == g.name:
                raise _bad(g, f"widen[{i}] names the group itself.")
    for key, dest in g.destinations().items():
        kind = DestinationKind(dest.kind)
        if kind is DestinationKind.GROUP:
            if dest.target not in by_name:
                raise _bad(g, f"{key} names unknown skill group {dest.target!r}.")
            if dest.target == g.name:
                raise _bad(g, f"{key} names the group itself.")
        if kind in (DestinationKind.IVR, DestinationKind.VOICEMAIL) and not dest.target:
            raise _bad(g, f"{key}: a {kind.value} destination needs a target.")
        if kind is DestinationKind.CALLBACK and g.callback is None:
            raise _bad(g, f"{key} is a callback but the group has no callback settings.")


def _check_no_loops(by_name: dict[str, GroupConfig]) -> None:
    """A call may hop from group to group through destinations; the hops must end
    somewhere."""
    edges = {name: {d.target for d in g.destinations().values()
                    if d.kind is DestinationKind.GROUP} for name, g in by_name.items()}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = " -> ".join(path[path.index(name):] + [name])
            raise ConfigInvalid(f"Overflow destinations form a loop: {cycle}.")
        if name in done:
            return
        for nxt in sorted(edges[name]):
            visit(nxt, path + [name])
        done.add(name)

    for name in by_name:
        visit(name, [])
