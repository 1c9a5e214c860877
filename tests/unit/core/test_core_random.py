"""Long random sequences of events (seeded), with the invariants checked after every step.

A fake adapter sends logins, state changes, phone reachability, arrivals, rings, answers, no
answers, failed rings, hang-ups from either side, callbacks, customer dials, service hours,
timers and some nonsense, and keeps its own model of what the decisions told it. After every
call into the core it checks:

* the agent states replayed from RecordAgentState match the core's, and each record's
  ``previous`` is the replayed state (the records alone are a complete history);
* only idle, reachable, logged-in agents are rung, never an agent who already has a call
  (ringing, dialing or connected), and only for a call they may take (group, skill level);
* after every event no waiting caller has an eligible available agent, and a ring never
  passes over an earlier waiting caller of the same priority in the same group who could
  take that agent;
* every arrived call is waiting, ringing, connected, in callback, or ended -- and an ended
  call has exactly one end record with one end reason;
* the adapter's timers (from StartTimer/CancelTimer) are exactly the core's;
* a refused event (AcdError) changes nothing.
At the end everything is hung up and drained: every call ended exactly once.
"""
from __future__ import annotations

import random
from collections import Counter

import pytest

from acd.core import (Acd, AgentState, BridgeCall, CallbackSettings, CallEventKind, CancelRing,
                      CancelTimer, Destination, DialCustomer, EndReason, GroupConfig,
                      RecordAgentState, RecordCallEvent, RequeueCaller, RingAgent,
                      RingAgentForCallback, StartTimer, Strategy, WidenStep)
from acd.core.errors import AcdError

CB = CallbackSettings(attempts=2, gap=20, expiry=200, dial_timeout=10)
GROUPS = [
    GroupConfig("g1", members={"a0": 3, "a1": 1, "a2": 2, "a3": 1},
                strategy=Strategy.LONGEST_IDLE, ring_timeout=8, wrapup_seconds=5, min_level=2,
                widen=(WidenStep(15, min_level=0), WidenStep(30, groups=("g2",))),
                max_wait=120, max_wait_destination=Destination.group("g3"),
                familiar_seconds=10, announce_every=20, callback=CB),
    GroupConfig("g2", members={"a2": 1, "a3": 2, "a4": 1, "a5": 1},
                strategy=Strategy.ROUND_ROBIN, ring_timeout=6, no_answer_break=False,
                retry_seconds=4, max_queue_length=3,
                queue_full_destination=Destination.callback(), callback=CB),
    GroupConfig("g3", members={"a5": 2, "a6": 1, "a0": 1}, strategy=Strategy.FEWEST_CALLS,
                ring_timeout=7, wrapup_seconds=3, max_wait=90,
                max_wait_destination=Destination.voicemail("1")),
    GroupConfig("g4", members={"a6": 5, "a7": 3, "a1": 1}, strategy=Strategy.SKILL_LEVEL,
                closed_destination=Destination.ivr("closed"), familiar_seconds=20,
                callback=CB, announce_every=15),
    GroupConfig("g5", members={"a7": 1, "a4": 2}, strategy=Strategy.RANDOM,
                no_agents_destination=Destination.hangup(), max_wait=60,
                max_wait_destination=Destination.callback(), callback=CB),
]
AGENTS = [f"a{i}" for i in range(8)] + ["temp"]      # temp: in no group
GROUP_NAMES = [g.name for g in GROUPS]
NUMBERS = ["0301", "0302", "0303", "0304", "0305", ""]
LIVE = {"waiting", "ringing", "connected", "callback_waiting", "callback_ringing",
        "callback_dialing", "callback_retry"}
ALLOWED_ERRORS = {
    "agent_login": {"agent.already_logged_in", "agent.endpoint_in_use"},
    "set_agent_state": {"agent.not_logged_in"},
    "agent_logout": {"agent.not_logged_in"},
    "end_wrapup": {"agent.illegal_transition", "agent.not_logged_in"},
    "callback_requested": {"call.illegal_transition", "call.callback_disabled"},
}


class Adapter:
    """A fake adapter with its own model of what the core told it."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        self.core = Acd(GROUPS, rng=random.Random(seed))
        self.now = 0.0
        self.timers: dict[str, float] = {}
        self.reachable: dict[str, bool] = {}
        self.state = dict.fromkeys(AGENTS, "offline")
        self.endpoint: dict[str, str] = {}
        self.offers: dict[str, str] = {}        # call -> agent being rung
        self.dialing: dict[str, str] = {}       # callback call -> agent, customer being dialed
        self.connected: dict[str, str] = {}     # call -> agent, bridged
        self.ends: Counter[str] = Counter()
        self.arrived: list[str] = []
        self.counter = 0
        self.rings = 0
        self.errors = 0
        self.logging_in = ("", "")
        self.checked_ended: set[str] = set()

    # ------------------------------------------------------------------ talking to the core

    def send(self, method: str, *args, **kw):
        before = self.fingerprint() if method in ALLOWED_ERRORS else None
        try:
            out = getattr(self.core, method)(*args, **kw)
        except AcdError as e:
            assert e.id in ALLOWED_ERRORS.get(method, set()), (method, args, e)
            assert self.fingerprint() == before, f"refused {method} changed the state"
            self.errors += 1
            return None
        self.feed(out)
        self.check()
        return out

    def fingerprint(self):
        return (repr(self.core.snapshot_agents(self.now)), self.core.timers(),
                repr(self.core.snapshot_queues(self.now)))

    def advance(self, to: float) -> None:
        while True:
            due = [(at, key) for key, at in self.timers.items() if at <= to]
            if not due:
                break
            at, key = min(due)
            del self.timers[key]
            self.now = max(self.now, at)
            self.send("timer_fired", key, self.now)
        self.now = max(self.now, to)

    # ------------------------------------------------------------------ the adapter's model

    def feed(self, out) -> None:
        for d in out:
            if isinstance(d, StartTimer):
                assert d.at >= self.now - 1e-9
                self.timers[d.key] = d.at
            elif isinstance(d, CancelTimer):
                self.timers.pop(d.key, None)
            elif isinstance(d, RecordAgentState):
                assert d.previous.value == self.state[d.agent_id], d
                if d.state is AgentState.RINGING:
                    assert d.previous is AgentState.IDLE
                    assert self.reachable.get(self.endpoint[d.agent_id], True)
                self.state[d.agent_id] = d.state.value
                if d.previous is AgentState.OFFLINE:
                    assert self.logging_in[0] == d.agent_id
                    self.endpoint[d.agent_id] = self.logging_in[1]
                if d.state is AgentState.OFFLINE:
                    del self.endpoint[d.agent_id]
            elif isinstance(d, (RingAgent, RingAgentForCallback)):
                busy = set(self.offers.values()) | set(self.dialing.values()) | set(
                    self.connected.values())
                assert d.agent_id not in busy, f"{d.agent_id} offered two calls at once"
                assert d.call_id not in self.offers
                assert self.state[d.agent_id] == "ringing"
                assert d.endpoint == self.endpoint[d.agent_id]
                self.offers[d.call_id] = d.agent_id
                self.rings += 1
            elif isinstance(d, CancelRing):
                if self.offers.get(d.call_id) == d.agent_id:
                    del self.offers[d.call_id]
                if self.dialing.get(d.call_id) == d.agent_id:
                    del self.dialing[d.call_id]
            elif isinstance(d, DialCustomer):
                assert self.offers.pop(d.call_id) == d.agent_id
                self.dialing[d.call_id] = d.agent_id
            elif isinstance(d, RequeueCaller):       # back in the queue: no agent now
                self.connected.pop(d.call_id, None)
            elif isinstance(d, BridgeCall):
                agent = self.offers.pop(d.call_id, None) or self.dialing.pop(d.call_id)
                assert agent == d.agent_id
                self.connected[d.call_id] = d.agent_id
            elif isinstance(d, RecordCallEvent):
                kind = d.record.kind
                if kind in (CallEventKind.NO_ANSWER, CallEventKind.RING_CANCELLED):
                    # (after a CancelRing, or the adapter's own ring_failed)
                    assert self.offers.pop(d.call_id, d.record.agent_id) == d.record.agent_id
                elif kind is CallEventKind.ENDED:
                    assert d.record.end_reason in set(EndReason)
                    self.ends[d.call_id] += 1
                    self.offers.pop(d.call_id, None)
                    self.dialing.pop(d.call_id, None)
                    self.connected.pop(d.call_id, None)
        self.check_rings(out)

    def check_rings(self, out) -> None:
        """No ring passes over an earlier waiting caller (same group and priority) who
        could take that agent."""
        for d in out:
            if not isinstance(d, (RingAgent, RingAgentForCallback)):
                continue
            b = self.core.call_info(d.call_id)
            if b["agent_id"] == d.agent_id:        # still ringing: it had to be allowed
                assert self.core.is_eligible(d.call_id, d.agent_id), d
            for cid in self.live_ids():
                a = self.core.call_info(cid)
                if (a["state"] in ("waiting", "callback_waiting") and a["group"] == b["group"]
                        and a["priority"] == b["priority"]
                        and a["entered_at"] < b["entered_at"]):
                    assert not self.core.is_eligible(cid, d.agent_id), (
                        f"{d.call_id} passed over {cid} for {d.agent_id}")

    def live_ids(self):
        return [c for c in self.arrived if not self.ends[c]]

    def check(self) -> None:
        core = self.core
        snap = core.snapshot_agents(self.now)
        for a in AGENTS:
            if a not in snap:                     # never logged in, in no group
                assert self.state[a] == "offline"
                continue
            s = snap[a]
            assert s["state"] == self.state[a], (a, s["state"], self.state[a])
            reachable = a in self.endpoint and self.reachable.get(self.endpoint[a], True)
            assert s["available"] == (s["state"] == "idle" and reachable), (a, s)
        holders: dict[str, str] = {}
        offerable = []
        for cid in self.arrived:
            if cid in self.checked_ended:
                assert self.ends[cid] == 1, f"{cid} ended {self.ends[cid]} times"
                continue
            info = core.call_info(cid)
            if self.ends[cid]:
                assert self.ends[cid] == 1, f"{cid} ended {self.ends[cid]} times"
                assert info["state"] == "ended" and info["end_reason"] is not None
                ends = [r for r in info["timeline"] if r["kind"] == "ended"]
                assert len(ends) == 1 and ends[0]["end_reason"] == info["end_reason"]
                self.checked_ended.add(cid)
                continue
            st = info["state"]
            assert st in LIVE, f"{cid} is lost in state {st}"
            agent = info["agent_id"]
            if st in ("ringing", "callback_ringing"):
                assert self.offers.get(cid) == agent and snap[agent]["state"] == "ringing"
            elif st == "callback_dialing":
                assert self.dialing.get(cid) == agent and snap[agent]["state"] == "talking"
            elif st == "connected":
                assert self.connected.get(cid) == agent and snap[agent]["state"] == "talking"
            else:
                assert agent is None
                assert cid not in self.offers and cid not in self.connected
            if agent is not None:
                assert agent not in holders, f"{agent} holds {holders[agent]} and {cid}"
                assert snap[agent]["call_id"] == cid
                holders[agent] = cid
            if st in ("waiting", "callback_waiting"):
                offerable.append(cid)
        for a in snap:
            if snap[a]["state"] in ("ringing", "talking"):
                assert a in holders, f"{a} is {snap[a]['state']} without a call"
        available = [a for a in snap if snap[a]["available"]]
        for cid in offerable:
            for a in available:
                assert not core.is_eligible(cid, a), f"{cid} waits while {a} is available"
        assert self.timers == core.timers()

    # ------------------------------------------------------------------ random actions

    def step(self) -> None:
        r = self.r
        self.advance(self.now + r.choice((0, 0, 0.5, 1, 2, 4)))
        action = r.choices(
            ("login", "state", "contact", "arrive", "offer", "connected", "waiting", "dial",
             "wrapup", "open", "wait", "garbage", "remember", "lost", "phone"),
            weights=(6, 6, 2, 10, 14, 6, 4, 4, 3, 1, 5, 3, 1, 1, 2))[0]
        getattr(self, "do_" + action)()

    def do_lost(self) -> None:
        """Asterisk restarted: every channel is gone."""
        self.send("channels_lost", self.r.choice(("asterisk_restart", "asterisk_shutdown")),
                  self.now)

    def do_phone(self) -> None:
        """An agent's phone died while it rang or during a conversation."""
        busy = sorted(set(self.offers.values()) | set(self.connected.values()))
        if busy:
            self.send("phone_lost", self.r.choice(busy), "unreachable", self.now)

    def do_login(self) -> None:
        agent = self.r.choice(AGENTS)
        ep = f"PJSIP/{agent}" if self.r.random() < 0.9 else f"PJSIP/{self.r.choice(AGENTS)}"
        self.logging_in = (agent, ep)
        self.send("agent_login", agent, ep, self.now)

    def do_state(self) -> None:
        agent = self.r.choice(AGENTS)
        state = self.r.choice(("idle",) * 5 + ("busy", "break", "meeting", "offline"))
        if state == "offline" and self.r.random() < 0.5:
            self.send("agent_logout", agent, self.now)
        else:
            self.send("set_agent_state", agent, state, self.now, self.r.choice(("", "x")))

    def do_contact(self) -> None:
        ep = f"PJSIP/{self.r.choice(AGENTS)}"
        up = self.r.random() < 0.6
        self.reachable[ep] = up
        self.send("contact_status", ep, up, self.now)

    def do_arrive(self) -> None:
        self.counter += 1
        cid = f"c{self.counter}"
        self.arrived.append(cid)
        self.send("call_arrived", cid, self.r.choice(NUMBERS), self.r.choice(GROUP_NAMES),
                  self.now, priority=self.r.choice((0, 0, 0, 1)), key_trail="1")

    def do_offer(self) -> None:
        if not self.offers:
            return
        cid = self.r.choice(sorted(self.offers))
        agent = self.offers[cid]
        what = self.r.choices(("ringing", "answer", "fail", "reject"), (2, 7, 2, 1))[0]
        if what == "ringing":
            self.send("agent_ringing", cid, agent, self.now)
        elif what == "answer":
            self.send("agent_answered", cid, agent, self.now)
        elif what == "fail":
            self.send("ring_failed", cid, agent, self.r.choice(("busy", "unreachable",
                                                                "no_answer")), self.now)
        else:
            self.send("agent_hung_up", cid, agent, self.now)

    def do_connected(self) -> None:
        if not self.connected:
            return
        cid = self.r.choice(sorted(self.connected))
        if self.r.random() < 0.5:
            self.send("caller_hung_up", cid, self.now)
        else:
            self.send("agent_hung_up", cid, self.connected[cid], self.now)

    def do_waiting(self) -> None:
        live = self.live_ids()
        if not live:
            return
        cid = self.r.choice(live)
        if self.r.random() < 0.5:
            self.send("caller_hung_up", cid, self.now)
        else:
            self.send("callback_requested", cid, self.r.choice(("0309", "0308")), self.now)

    def do_dial(self) -> None:
        if not self.dialing:
            return
        cid = self.r.choice(sorted(self.dialing))
        what = self.r.choice(("answer", "fail", "agent"))
        if what == "answer":
            self.send("customer_answered", cid, self.now)
        elif what == "fail":
            self.send("customer_dial_failed", cid, "no_answer", self.now)
        else:
            self.send("agent_hung_up", cid, self.dialing[cid], self.now)

    def do_wrapup(self) -> None:
        self.send("end_wrapup", self.r.choice(AGENTS), self.now)

    def do_open(self) -> None:
        self.send("set_group_open", self.r.choice(GROUP_NAMES), self.r.random() < 0.7,
                  self.now)

    def do_wait(self) -> None:
        self.advance(self.now + self.r.uniform(5, 40))

    def do_remember(self) -> None:
        self.core.remember_contact(self.r.choice(NUMBERS), self.r.choice(AGENTS), self.now)

    def do_garbage(self) -> None:
        """Late or mistaken events, as Asterisk races produce them."""
        r = self.r
        calls = self.arrived or ["none"]
        cid, agent = r.choice(calls), r.choice(AGENTS)
        what = r.choice(("answer", "fail", "hangup", "agent_hangup", "timer", "customer",
                         "unknown"))
        if cid == "none":
            what = "timer"
        if what == "answer":
            self.send("agent_answered", cid, agent, self.now)
        elif what == "fail":
            self.send("ring_failed", cid, agent, "busy", self.now)
        elif what == "hangup" and self.ends[cid]:
            assert self.send("caller_hung_up", cid, self.now) == []
        elif what == "agent_hangup":
            if self.connected.get(cid) != agent and self.dialing.get(cid) != agent:
                if self.offers.get(cid) != agent:
                    assert self.send("agent_hung_up", cid, agent, self.now) == []
        elif what == "timer":
            assert self.send("timer_fired", f"ring:{cid}x", self.now) == []
        elif what == "customer" and cid not in self.dialing:
            self.send("customer_answered", cid, self.now)
            self.send("customer_dial_failed", cid, "busy", self.now)
        elif what == "unknown":
            with pytest.raises(AcdError) as exc:
                self.core.caller_hung_up("never-seen", self.now)
            assert exc.value.id == "call.unknown"

    # ------------------------------------------------------------------ drain

    def drain(self) -> None:
        for _ in range(30):
            for cid in self.live_ids():
                if cid in self.connected:
                    self.send("caller_hung_up", cid, self.now)
                elif cid in self.dialing:
                    self.send("customer_dial_failed", cid, "busy", self.now)
                elif cid in self.offers and self.core.call_info(cid)["callback"]:
                    self.send("ring_failed", cid, self.offers[cid], "busy", self.now)
                else:
                    self.send("caller_hung_up", cid, self.now)   # ignored for callbacks
            self.advance(self.now + 250)
            if not self.live_ids():
                break
        assert not self.live_ids(), [(c, self.core.call_info(c)["state"])
                                     for c in self.live_ids()]
        assert set(self.ends) == set(self.arrived)
        assert all(n == 1 for n in self.ends.values())
        assert not self.offers and not self.dialing and not self.connected
        snap = self.core.snapshot_agents(self.now)
        assert not [a for a in snap if snap[a]["state"] in ("ringing", "talking")]


@pytest.mark.parametrize("seed", range(30))
def test_random_event_sequences_keep_the_invariants(seed):
    adapter = Adapter(seed)
    for _ in range(400):
        adapter.step()
    adapter.drain()
    # the run did exercise the core
    assert len(adapter.arrived) > 30 and adapter.rings > 10
    reasons = Counter(adapter.core.call_info(c)["end_reason"] for c in adapter.arrived)
    assert len(reasons) >= 3


def test_random_runs_reach_every_end_reason_and_strategy_path():
    reasons: Counter[str] = Counter()
    for seed in range(30):
        adapter = Adapter(1000 + seed)
        for _ in range(300):
            adapter.step()
        adapter.drain()
        reasons.update(adapter.core.call_info(c)["end_reason"] for c in adapter.arrived)
    assert set(reasons) == {r.value for r in EndReason}, reasons
