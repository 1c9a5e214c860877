"""`acd load` (acd/tools/load.py) with fakes for Asterisk and our server: every caller is
bounded by their own max wait while later calls are still being placed, and ``--login`` logs
in only the agents who are offline (a rerun against a running center goes on).

The real-Asterisk side of both is tests/asterisk/test_load_generator.py.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from acd.ami.client import AmiActionError
from acd.errors import UserError
from acd.tools import load, load_calls


@dataclass
class Ev:
    name: str
    fields: dict[str, Any] = field(default_factory=dict)


class FakeAsterisk:
    """AMI as the load generator uses it: an Originate brings the caller's incoming leg
    (Newchannel), a Hangup of the caller's own channel ends it. With ``answer`` the caller is
    bridged with an agent at once and hangs up ``answer`` seconds later. Every action is kept
    in order."""

    def __init__(self, tracker: load_calls.CallTracker, answer: float | None = None,
                 originate_takes: float = 0.0) -> None:
        self.tracker = tracker
        self.answer = answer
        self.originate_takes = originate_takes
        self.actions: list[tuple[str, str]] = []     # (action, the caller's channel)
        self.channels: set[str] = set()

    async def action(self, name: str, **f: Any) -> Any:
        chan = str(f.get("ChannelId") or f.get("Channel") or "")
        self.actions.append((name, chan))
        rec = self.tracker.by_trunk[chan]
        uid = f"in-{rec.n}"
        if name == "Hangup" and chan not in self.channels:
            raise AmiActionError(name, "No such channel", None)   # type: ignore[arg-type]
        if name == "Originate":
            await asyncio.sleep(self.originate_takes)      # Async: the channel comes later
            self.channels.add(chan)
            self.tracker.on_event(Ev("Newchannel", {"Channel": f"PJSIP/acd-caller-{rec.n}",
                                                    "Uniqueid": uid,
                                                    "CallerIDNum": rec.caller_number}))
            if self.answer is not None:
                self.tracker.on_event(Ev("Newchannel", {"Channel": f"PJSIP/2001-{rec.n}",
                                                        "Uniqueid": f"leg-{rec.n}"}))
                for u in (f"leg-{rec.n}", uid):
                    self.tracker.on_event(Ev("BridgeEnter", {"BridgeUniqueid": f"b{rec.n}",
                                                             "Uniqueid": u}))
                asyncio.get_running_loop().call_later(self.answer, self._end, uid)
        elif name == "Hangup":
            self._end(uid)
        return None

    def _end(self, uid: str) -> None:
        self.tracker.on_event(Ev("Hangup", {"Uniqueid": uid, "Cause": "16"}))


def _run(ami_answer: float | None, originate_takes: float = 0.0,
         **profile: Any) -> tuple[load.LoadRun, FakeAsterisk]:
    tracker = load_calls.CallTracker(["2001"])
    ami = FakeAsterisk(tracker, ami_answer, originate_takes)
    prof = load.LoadProfile(number="7801", arrivals="fixed", duration=None, settle=0.0,
                            **profile)
    return load.LoadRun(ami, tracker, prof, talk_max=0.5), ami


async def test_a_caller_is_cut_at_their_max_wait_while_later_calls_are_still_placed():
    # Two calls 1.5 s apart; nobody answers; a caller waits 0 s at most. The first caller
    # must be hung up before the second one dials (the old code cut callers only once every
    # call had been placed).
    lr, ami = _run(None, rate=1 / 1.5, count=2, max_wait=0.3)
    records = await lr.run()
    first_cut = ami.actions.index(("Hangup", records[0].trunk_uid))
    second_dialled = ami.actions.index(("Originate", records[1].trunk_uid))
    assert first_cut < second_dialled, ami.actions
    assert lr._cut == {0, 1}                              # noqa: SLF001 (each cut once)
    assert [a for a, _c in ami.actions].count("Hangup") == 2
    assert all(r.ended_at is not None and r.bridged_at is None for r in records)
    assert [r.outcome for r in records] == ["not_queued", "not_queued"]
    assert lr._timers == []                               # noqa: SLF001 (none left behind)


async def test_a_cut_refused_before_the_callers_channel_exists_is_tried_again():
    # Asterisk has not made the caller's channel yet when their max wait is up (0 s here):
    # "No such channel". The cut is tried again until it lands.
    lr, ami = _run(None, originate_takes=0.7, rate=1.0, count=1, max_wait=0.0)
    records = await lr.run()
    hangups = [i for i, (a, _c) in enumerate(ami.actions) if a == "Hangup"]
    assert len(hangups) >= 2, ami.actions
    assert records[0].ended_at is not None and lr._cut == {0}    # noqa: SLF001
    assert lr._timers == []                                     # noqa: SLF001


async def test_a_caller_with_an_agent_before_their_max_wait_is_not_cut():
    lr, ami = _run(0.4, rate=1.0, count=1, max_wait=0.2)
    records = await lr.run()
    assert records[0].bridged_at is not None and records[0].ended_at is not None
    assert lr._cut == set()                               # noqa: SLF001
    assert [a for a, _c in ami.actions] == ["Originate"]


# ============================================================================ --login

class FakeServer:
    """Our server's agent routes as `acd load --login` uses them."""

    def __init__(self, states: dict[str, str], post: dict[str, tuple[int, Any]] | None = None):
        self.states = dict(states)
        self.post = post or {}
        self.calls: list[tuple[str, str]] = []

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        self.calls.append((method, path))
        agent = path.split("/")[3]
        if agent not in self.states:
            return 404, {"error": "agent.unknown", "message": agent}
        if method == "GET":
            return 200, {"agent_id": agent, "state": self.states[agent]}
        if agent in self.post:
            return self.post[agent]
        if self.states[agent] != "offline":
            return 409, {"error": "agent.already_logged_in", "message": agent}
        self.states[agent] = "idle"
        return 200, {"agent_id": agent, "state": "idle"}


async def test_login_logs_in_only_the_agents_who_are_offline_and_says_so_once():
    server = FakeServer({"1001": "idle", "1002": "offline", "1003": "break", "1004": "offline",
                         "1005": "talking"},
                        # 1004 was logged in by someone else between our read and our login
                        post={"1004": (409, {"error": "agent.already_logged_in", "message": ""})})
    said: list[str] = []
    done = await load.log_in(server, ["1001", "1002", "1003", "1004", "1005"], said.append)
    assert done == ["1002"]
    assert ("POST", "/api/agents/1002/login") in server.calls
    assert not any(m == "POST" and a in p for m, p in server.calls
                   for a in ("1001", "1003", "1005"))
    assert len(said) == 1 and "4 of 5" in said[0], said
    assert all(a in said[0] for a in ("1001", "1003", "1004", "1005"))
    # A rerun: everyone is logged in now; nothing is posted, nothing fails.
    server.calls.clear()
    said.clear()
    assert await load.log_in(server, ["1001", "1002"], said.append) == []
    assert [m for m, _p in server.calls] == ["GET", "GET"] and len(said) == 1


@pytest.mark.parametrize("states, post", [
    ({"1002": "offline"}, {"1002": (503, {"error": "acd.starting", "message": ""})}),
    ({}, {}),                                             # the server does not know the agent
])
async def test_login_refusals_other_than_already_logged_in_stop_the_run(states, post):
    with pytest.raises(UserError) as e:
        await load.log_in(FakeServer(states, post), ["1002"], lambda _m: None)
    assert e.value.id == "load.login"
