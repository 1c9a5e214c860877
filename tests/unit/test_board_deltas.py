"""The supervisors' board as changes: the delta builder (acd.core.views), the throttled
sender (acd.runtime.effects.Pages) over the real core and the real hub, and the hub's
numbering. The loop's timer is a small fake here (no clock in a unit test): what matters is
how many sends, with what, and when they are due."""
from __future__ import annotations

import pytest

from acd.core import Acd, GroupConfig
from acd.core.views import board_delta, board_state
from acd.runtime.effects import Pages
from acd.web.hub import SNAPSHOT, Hub


class FakeLoop:
    """``time`` and ``call_later`` of an event loop, run by hand."""

    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[tuple[float, object]] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, fn) -> None:  # noqa: ANN001
        self.timers.append((self.now + delay, fn))

    def run_due(self) -> int:
        """Run the timers that are due (in order); returns how many ran."""
        due = sorted((t for t in self.timers if t[0] <= self.now), key=lambda t: t[0])
        self.timers = [t for t in self.timers if t[0] > self.now]
        for _, fn in due:
            fn()
        return len(due)


class Board:
    """The real core with two groups, the real hub, and Pages sending the board."""

    def __init__(self) -> None:
        self.acd = Acd([GroupConfig("sales", members={"1001": 5, "1002": 3}),
                        GroupConfig("support", members={"1003": 1})])
        self.now = 1000.0
        self.hub = Hub()
        self.built = 0
        self.loop = FakeLoop()
        self.pages = Pages(self.hub, _NoLog(), ringing=lambda c, a: False,
                           save_pending=lambda d: None, snapshot=self.snapshot)
        self.pages.loop = self.loop

    def snapshot(self) -> dict:
        self.built += 1
        return {"queues": self.acd.snapshot_queues(self.now),
                "agents": self.acd.snapshot_agents(self.now)}

    def act(self, decisions) -> None:  # noqa: ANN001
        """What the runtime does after a change the supervisors see."""
        list(decisions)
        self.pages.snapshot_soon()

    def sent(self, sub) -> list[dict]:  # noqa: ANN001
        out = []
        while not sub.queue.empty():
            out.append(sub.queue.get_nowait())
        return out


class _NoLog:
    def exception(self, *a, **kw) -> None:   # noqa: ANN002, ANN003
        raise AssertionError(f"logged an exception: {a} {kw}")


@pytest.fixture
def board():
    b = Board()
    for a in ("1001", "1002", "1003"):
        b.acd.agent_login(a, a, b.now)
    return b


# --------------------------------------------------------------------------- the builder

def test_a_change_to_one_agent_is_that_agent_alone(board):
    before = board_state(board.snapshot())
    board.acd.set_agent_state("1003", "break", board.now, "coffee")
    delta = board_delta(before, board_state(board.snapshot()))
    assert set(delta["agents"]) == {"1003"} and delta["agents"]["1003"]["state"] == "break"
    assert set(delta["queues"]) == {"support"}          # its group's counts by state
    assert "calls" not in delta


def test_time_passing_alone_is_no_change(board):
    before = board_state(board.snapshot())
    board.now += 30.0                                     # in_state_for grows: nothing to send
    assert board_delta(before, board_state(board.snapshot())) == {}


def test_callers_come_and_go_as_entries_and_a_gone_one_is_none(board):
    board.acd.set_agent_state("1001", "break", board.now, "")
    board.acd.set_agent_state("1002", "break", board.now, "")
    before = board_state(board.snapshot())
    board.acd.call_arrived("c1", "<b>1390</b>", "sales", board.now)
    mid = board_state(board.snapshot())
    delta = board_delta(before, mid)
    assert set(delta) == {"queues", "calls"} and set(delta["queues"]) == {"sales"}
    assert delta["calls"]["c1"]["group"] == "sales"
    assert delta["calls"]["c1"]["caller_number"] == "<b>1390</b>"   # data; the page sets text
    assert "calls" not in delta["queues"]["sales"]                    # calls go on their own
    board.now += 5.0
    assert board_delta(mid, board_state(board.snapshot())) == {}      # waited grows: no change
    board.acd.caller_hung_up("c1", board.now)
    assert board_delta(mid, board_state(board.snapshot()))["calls"] == {"c1": None}


def test_no_board_before_is_everything(board):
    state = board_state(board.snapshot())
    delta = board_delta(None, state)
    assert set(delta["agents"]) == {"1001", "1002", "1003"}
    assert set(delta["queues"]) == {"sales", "support"}


# --------------------------------------------------------------------------- the sender

def test_the_whole_board_on_subscribe_then_one_agents_change_only(board):
    sub = board.hub.subscribe("supervisor")
    first = board.pages.board_snapshot()
    assert first["seq"] == 0 and set(first["agents"]) == {"1001", "1002", "1003"}
    assert "calls" in first["queues"]["sales"]
    board.act(board.acd.set_agent_state("1002", "meeting", board.now, ""))
    assert board.loop.run_due() == 1
    (msg,) = board.sent(sub)
    assert msg["type"] == "delta" and msg["seq"] == 1
    assert set(msg["agents"]) == {"1002"} and set(msg["queues"]) == {"sales"}


def test_changes_are_gathered_by_one_timer_and_sent_at_most_every_interval(board):
    sub = board.hub.subscribe("supervisor")
    board.pages.board_snapshot()
    for a, state in (("1001", "break"), ("1002", "busy"), ("1001", "meeting")):
        board.act(board.acd.set_agent_state(a, state, board.now, ""))
    assert len(board.loop.timers) == 1                   # one timer for the three changes
    assert board.loop.run_due() == 1
    (msg,) = board.sent(sub)
    assert set(msg["agents"]) == {"1001", "1002"} and msg["agents"]["1001"]["state"] == "meeting"
    # Right after a send, the next change waits for the interval.
    board.act(board.acd.set_agent_state("1003", "busy", board.now, ""))
    assert board.loop.timers[0][0] == board.loop.now + board.pages.interval
    assert board.loop.run_due() == 0 and board.sent(sub) == []
    board.loop.now += board.pages.interval
    assert board.loop.run_due() == 1
    (msg,) = board.sent(sub)
    assert set(msg["agents"]) == {"1003"} and msg["seq"] == 2
    # A quiet spell: the next change goes on the next loop turn.
    board.loop.now += 10.0
    board.act(board.acd.set_agent_state("1003", "idle", board.now, ""))
    assert board.loop.timers[0][0] == board.loop.now


def test_nothing_is_built_for_nobody_and_a_later_subscriber_starts_from_its_snapshot(board):
    board.act(board.acd.set_agent_state("1001", "break", board.now, ""))
    board.loop.run_due()
    assert board.built == 0                              # no supervisor: no board built
    sub = board.hub.subscribe("supervisor")
    snap = board.pages.board_snapshot()
    assert snap["agents"]["1001"]["state"] == "break" and board.built == 1
    board.loop.now += 1.0
    board.act(board.acd.set_agent_state("1002", "break", board.now, ""))
    board.loop.run_due()
    (msg,) = board.sent(sub)
    assert set(msg["agents"]) == {"1002"} and msg["seq"] == snap["seq"] + 1
    sub.close()
    board.loop.now += 1.0
    board.act(board.acd.set_agent_state("1002", "idle", board.now, ""))
    board.loop.run_due()
    assert board.built == 2                              # nobody left: not built again


def test_a_change_that_undoes_itself_before_the_send_sends_nothing(board):
    sub = board.hub.subscribe("supervisor")
    board.pages.board_snapshot()
    board.act(board.acd.set_agent_state("1001", "break", board.now, ""))
    board.act(board.acd.set_agent_state("1001", "idle", board.now, "login"))   # as it was
    assert board.loop.run_due() == 1
    assert board.sent(sub) == []                         # the board is as it was sent


# --------------------------------------------------------------------------- the hub

async def test_each_topic_numbers_its_messages_and_a_snapshot_is_asked_once():
    hub = Hub()
    sup, agent = hub.subscribe("supervisor"), hub.subscribe("agent:1001")
    hub.publish("agent:1001", {"type": "state"})
    hub.publish("supervisor", {"type": "delta"})
    hub.publish("supervisor", {"type": "delta"})
    assert hub.last_seq("supervisor") == 2 and hub.last_seq("agent:1001") == 1
    assert hub.last_seq("nobody") == 0
    hub.publish("nobody", {"type": "x"})                 # no subscriber: no number used
    assert hub.last_seq("nobody") == 0
    sup.want_snapshot()
    sup.want_snapshot()                                  # one is due already
    assert [(await sup.get())["seq"], (await sup.get())["seq"]] == [1, 2]
    assert await sup.get() is SNAPSHOT
    assert sup.queue.empty()
    sup.want_snapshot()                                  # asked again after it was taken
    assert await sup.get() is SNAPSHOT
    assert (await agent.get())["seq"] == 1
