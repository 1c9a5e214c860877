"""Property tests of the AMI wire layer (the bytes Asterisk sends, however they are cut into
reads): framing never raises, never depends on where the reads are cut, and what we write
cannot carry a second header or message."""
from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acd.ami.client import EOL, _parse_lines, _Protocol, format_action, parse_message

BANNER = b"Asterisk Call Manager/9.0.0\r\n"


class _Transport:
    def __init__(self) -> None:
        self.aborted = False

    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


def _feed(chunks: list[bytes]) -> tuple[list[dict], bool]:
    """The events one connection delivers for these reads, and whether it dropped the link."""
    loop = asyncio.new_event_loop()
    try:
        got: list[dict] = []
        proto = _Protocol(loop, got.append)
        proto.connection_made(_Transport())
        proto.held = None                      # logged in: events go straight out
        for c in chunks:
            proto.data_received(c)
        return got, proto.lost.done()
    finally:
        loop.close()


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    out, last = [], 0
    for p in points:
        out.append(data[last:p])
        last = p
    out.append(data[last:])
    return out


header_names = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E,
                                     blacklist_characters=":"), min_size=1, max_size=20)
header_values = st.text(st.characters(blacklist_categories=("Cs",),
                                      blacklist_characters="\r\n"), max_size=60)
messages = st.lists(st.tuples(header_names, header_values), min_size=0, max_size=6)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=8))
def test_any_bytes_cut_anywhere_never_raise_and_give_the_same_messages(data, cuts):
    whole, dropped = _feed([BANNER + data])
    pieces, dropped2 = _feed([BANNER] + _cut(data, cuts))
    assert pieces == whole and dropped == dropped2 is False


@settings(max_examples=150, deadline=None)
@given(st.lists(messages, max_size=5), st.lists(st.integers(0, 2000), max_size=10))
def test_well_formed_events_survive_any_cutting(msgs, cuts):
    wire = "".join("Event: Test\r\n" + "".join(f"{k}: {v}{EOL}" for k, v in m) + EOL
                   for m in msgs).encode()
    got, dropped = _feed([BANNER] + _cut(wire, cuts))
    assert not dropped
    assert len(got) == len(msgs)
    for m, g in zip(msgs, got):
        for k, v in m:
            if k.strip() and k.lower() != "event":
                value = g[k]
                assert v in (value if isinstance(value, list) else [value])


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_parse_message_never_raises(text):
    msg = parse_message(text)
    assert msg is None or isinstance(msg, dict)


# Lines as Asterisk writes them, and lines it never writes: blanks around names, no space or
# two after the colon, colons in values, empty names, repeated headers, odd whitespace.
_pieces = st.sampled_from(["Event", "Response", "ActionID", "event", "Channel", " Key ", "\tK\t",
                           "A B", ":", ": ", "  ", "", "x:y", "\x1c", "\u2003", "\xa0", "Value",
                           "\r", "\n"])
_lines = st.lists(_pieces, min_size=0, max_size=5).map("".join)


@settings(max_examples=400, deadline=None)
@given(st.lists(_lines, max_size=8), st.text(max_size=30))
def test_the_fast_reading_of_a_message_is_the_line_by_line_one(lines, tail):
    for block in (EOL.join(lines), EOL.join(lines) + tail):
        assert parse_message(block) == _parse_lines(block), repr(block)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_the_fast_reading_agrees_on_any_text(text):
    assert parse_message(text) == _parse_lines(text)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(header_names, st.text(max_size=40), max_size=6))
def test_an_action_is_one_message_or_refused(fields):
    try:
        wire = format_action("Originate", "a1", fields)
    except ValueError:
        assert any(("\r" in v or "\n" in v) for v in fields.values()) or any(
            k.lower() in ("action", "actionid") or k.strip() != k for k in fields)
        return
    assert wire.endswith(EOL + EOL) and wire.count(EOL + EOL) == 1   # one message, no more
    lines = wire[: -len(EOL + EOL)].split(EOL)
    pairs = [line.split(": ", 1) for line in lines]
    assert all(len(p) == 2 for p in pairs)                            # one header a line
    assert pairs[:2] == [["Action", "Originate"], ["ActionID", "a1"]]
    assert pairs[2:] == [[k, v] for k, v in fields.items()]


@pytest.mark.parametrize("bad", ["a\r\nAction: Hangup", "x\nActionID: 9", "y\r"])
def test_a_value_with_a_line_break_is_refused(bad):
    with pytest.raises(ValueError):
        format_action("Setvar", "a2", {"Value": bad})
