"""Who is where: our legs, the callers in the queue, and the bridges as Asterisk reports them.

Pure bookkeeping, no I/O: the runtime's other parts read and change these ledgers; nothing
here talks to Asterisk, the core or the store.
"""
from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

AGENT_LEG, CUSTOMER_LEG = "agent", "customer"
#: The Uniqueid of every leg we originate starts so: a restart finds our legs still ringing.
LEG_PREFIX = "acd-"
#: ... and of a supervisor's monitoring channel (no leg of any call: acd.runtime.monitor).
MONITOR_PREFIX = "mon-"


@dataclass(eq=False)
class Leg:
    """A channel we originated: an agent's leg (ring) or a callback or outbound customer's."""
    uid: str                 # the ChannelId we chose = the channel's Uniqueid
    kind: str                # AGENT_LEG or CUSTOMER_LEG
    call_id: str
    agent_id: str
    channel: str | None = None
    ringing: bool = False
    answered: bool = False
    gone: bool = False
    cancelled: bool = False  # we hung it up (or will, as soon as it exists)
    reported: bool = False   # the core knows how this ring / dial ended
    cause: int | None = None
    reason: int | None = None  # a failed Originate's Reason, while its Hangup is awaited


@dataclass(eq=False)
class Caller:
    """A caller's channel in the queue or in a conversation (call id = its Uniqueid). Its
    skill group is the core's fact (:meth:`acd.core.Acd.call_group`), not kept here."""
    call_id: str
    channel: str
    caller_number: str = ""
    caller_name: str = ""
    gone: bool = False
    sent: bool = False       # redirected to a destination (or to the survey)
    bridged: bool = False    # in a bridge with an agent (a first leave is a hangup)
    confirming: bool = False  # pressed the callback key: their number is being confirmed
    announcing: float | None = None   # sent to an announcement then, not back at the wait yet


class Channels:
    """The legs we originated and the callers we know, by Uniqueid."""

    def __init__(self) -> None:
        self.legs: dict[str, Leg] = {}
        self.leg_of: dict[tuple[str, str], str] = {}   # (call, agent) -> current agent leg
        self.customer_leg: dict[str, str] = {}         # call -> current customer leg
        self.callers: dict[str, Caller] = {}
        self.expected: dict[str, float] = {}           # handed to the queue, not there yet
        self.trails: dict[str, list[str]] = {}         # and the key trail the IVR handed over
        self._seq = 0
        self._boot = secrets.token_hex(4)               # ids differ from an earlier process's

    def next_id(self, prefix: str) -> str:
        """A new id of this process (``<prefix>-<boot>-<n>``)."""
        self._seq += 1
        return f"{prefix}-{self._boot}-{self._seq}"

    # ---- legs
    def new_leg(self, kind: str, call_id: str, agent_id: str) -> Leg:
        """A leg about to be originated; it becomes the call's current one of its kind."""
        uid = f"{self.next_id(LEG_PREFIX[:-1])}-{kind[0]}{agent_id}"[:60]
        leg = self.legs[uid] = Leg(uid, kind, call_id, agent_id)
        if kind == AGENT_LEG:
            self.leg_of[(call_id, agent_id)] = uid
        else:
            self.customer_leg[call_id] = uid
        return leg

    def keep_leg(self, uid: str, channel: str, kind: str, call_id: str, agent_id: str) -> Leg:
        """A leg found up in Asterisk after a restart: answered and reported already."""
        leg = self.legs[uid] = Leg(uid, kind, call_id, agent_id, channel=channel, ringing=True,
                                   answered=True, reported=True)
        if kind == AGENT_LEG:
            self.leg_of[(call_id, agent_id)] = uid
        else:
            self.customer_leg[call_id] = uid
        return leg

    def agent_leg(self, call_id: str, agent_id: str) -> Leg | None:
        return self.legs.get(self.leg_of.get((call_id, agent_id), ""))

    def customer(self, call_id: str) -> Leg | None:
        return self.legs.get(self.customer_leg.get(call_id, ""))

    def is_current(self, leg: Leg) -> bool:
        if leg.kind == AGENT_LEG:
            return self.leg_of.get((leg.call_id, leg.agent_id)) == leg.uid
        return self.customer_leg.get(leg.call_id) == leg.uid

    def forget_leg(self, leg: Leg) -> None:
        self.legs.pop(leg.uid, None)
        if leg.kind == AGENT_LEG and self.leg_of.get((leg.call_id, leg.agent_id)) == leg.uid:
            del self.leg_of[(leg.call_id, leg.agent_id)]
        if leg.kind == CUSTOMER_LEG and self.customer_leg.get(leg.call_id) == leg.uid:
            del self.customer_leg[leg.call_id]

    def legs_of(self, call_id: str) -> list[Leg]:
        return [leg for leg in self.legs.values() if leg.call_id == call_id]

    # ---- callers
    def expect(self, call_id: str, at: float, key_trail: Iterable[str] | None) -> None:
        """The IVR hands the call to the queue (with its key trail, if it knows it)."""
        self.expected[call_id] = at
        if key_trail is not None:
            self.trails[call_id] = list(key_trail)

    def forget_expected(self, call_id: str) -> bool:
        """The call is no longer on its way to the queue: True if it was."""
        self.trails.pop(call_id, None)
        return self.expected.pop(call_id, None) is not None

    def caller(self, call_id: str) -> Caller | None:
        return self.callers.get(call_id)

    def live_caller(self, call_id: str) -> Caller | None:
        """The caller, if their channel is still there."""
        ctx = self.callers.get(call_id)
        return ctx if ctx is not None and not ctx.gone else None

    def add_caller(self, caller: Caller) -> Caller:
        self.callers[caller.call_id] = caller
        return caller


class Bridges:
    """Bridges as Asterisk reports them, and the bridge leaves we caused (call control moves
    channels) or that follow from another leave (a two-party bridge dissolves): those are no
    hangups. A channel we bridged whose BridgeEnter has not come yet is *joining*."""

    def __init__(self) -> None:
        self.bridge_of: dict[str, str] = {}          # channel uniqueid -> bridge
        self.members: dict[str, set[str]] = {}       # bridge -> channel uniqueids
        self.expect_leave: Counter[tuple[str, str]] = Counter()  # (uniqueid, bridge or "*")
        self.joining: set[str] = set()
        self.dissolve: set[str] = set()               # left alone in a bridge by a hangup
        self.hung_up: set[str] = set()                # left a bridge unexpected: a hangup

    def entered(self, uid: str, bridge: str) -> None:
        if uid and bridge:
            self.bridge_of[uid] = bridge
            self.members.setdefault(bridge, set()).add(uid)
            self.dissolve.discard(uid)
            self.hung_up.discard(uid)
            self.joining.discard(uid)

    def left(self, uid: str, bridge: str) -> bool:
        """A channel left a bridge: True if we expected it (no hangup)."""
        members = self.members.get(bridge)
        if members is not None:
            members.discard(uid)
            for other in members:
                self.expect_leave[(other, bridge)] += 1
                self.dissolve.add(other)
            if not members:
                del self.members[bridge]
        if self.bridge_of.get(uid) == bridge:
            del self.bridge_of[uid]
            self.dissolve.discard(uid)
        for tok in ((uid, bridge), (uid, "*")):
            if self.expect_leave.get(tok):
                self.unexpect([tok])
                return True
        self.hung_up.add(uid)
        return False

    def leaving(self, uid: str) -> bool:
        """The channel is on its way out by itself: it left a bridge without our moving it (a
        hangup), or it is still in a bridge another member left so (Asterisk takes it out
        of the dissolving bridge, and the dialplan hangs it up)."""
        return uid in self.hung_up or (uid in self.dissolve and uid in self.bridge_of)

    def gone(self, uid: str) -> None:
        """The channel hung up."""
        self.bridge_of.pop(uid, None)
        self.joining.discard(uid)
        self.dissolve.discard(uid)
        self.hung_up.discard(uid)
        for tok in [x for x in self.expect_leave if x[0] == uid]:
            del self.expect_leave[tok]

    def expect_move(self, uid: str) -> tuple[str, str] | None:
        """We are about to move this channel out of its bridge (if it is in one): its leave
        is no hangup. A joining channel is expected to leave whatever bridge it is in."""
        bridge = self.bridge_of.get(uid) or ("*" if uid in self.joining else None)
        self.dissolve.discard(uid)
        self.hung_up.discard(uid)
        if bridge is None:
            return None
        self.expect_leave[(uid, bridge)] += 1
        return (uid, bridge)

    def joined(self, *uids: str) -> None:
        """We bridged these channels: until their BridgeEnter comes they are joining."""
        for uid in uids:
            if uid and uid not in self.bridge_of:
                self.joining.add(uid)

    def unexpect(self, tokens: Iterable[tuple[str, str] | None]) -> None:
        for tok in tokens:
            if tok is not None and self.expect_leave.get(tok):
                self.expect_leave[tok] -= 1
                if not self.expect_leave[tok]:
                    del self.expect_leave[tok]

    def clear(self) -> None:
        self.bridge_of.clear()
        self.members.clear()
        self.expect_leave.clear()
        self.joining.clear()

    def load(self, found: Iterator[tuple[str, str]] | Iterable[tuple[str, str]]) -> None:
        """Bridges as CoreShowChannels shows them: (uniqueid, bridge) pairs."""
        for uid, bridge in found:
            self.entered(uid, bridge)


__all__ = ["LEG_PREFIX", "AGENT_LEG", "CUSTOMER_LEG", "Leg", "Caller", "Channels", "Bridges"]
