"""The wall board's waiting callers: numbers masked by the server (web.wallboard_*), in the
whole board and in its changes, without touching the message the hub shares."""
from __future__ import annotations

import copy

from acd.web.stats import MASK, mask_board, mask_number


def test_the_last_digits_only_and_at_least_half_hidden():
    assert mask_number("13800138000", 4) == MASK * 7 + "8000"
    assert mask_number("1001", 4) == MASK * 2 + "01"          # short: half of it hidden
    assert mask_number("13800138000", 0) == MASK * 11
    assert mask_number("<b>x</b>", 2) == MASK * 6 + "b>"        # text, never markup
    assert mask_number("13800138000", -1) == "13800138000"     # masking off
    assert mask_number(None, 4) == "" and mask_number("", 4) == ""


def test_the_board_and_its_changes_are_masked_and_the_shared_message_is_not():
    snapshot = {"type": "snapshot", "seq": 3, "agents": {"1001": {"state": "idle"}},
                "queues": {"sales": {"waiting": 1, "calls": [
                    {"call_id": "c1", "caller_number": "13912345678", "priority": 0}]}}}
    delta = {"type": "delta", "seq": 4, "calls": {"c1": None, "c2": {"caller_number": "02161234567"}},
             "queues": {"sales": {"waiting": 1}}}
    before = copy.deepcopy((snapshot, delta))
    assert mask_board(snapshot, 4)["queues"]["sales"]["calls"][0]["caller_number"] == MASK * 7 + "5678"
    out = mask_board(delta, 4)
    assert out["calls"] == {"c1": None, "c2": {"caller_number": MASK * 7 + "4567"}}
    assert out["queues"] == {"sales": {"waiting": 1}} and out["seq"] == 4
    assert (snapshot, delta) == before
    assert mask_board(delta, -1) == delta
