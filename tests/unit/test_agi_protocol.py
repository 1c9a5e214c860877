"""agi.protocol: header and reply parsing, argument quoting (pure, no I/O)."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agi.protocol import (
    MAX_COMMAND_LINE,
    AgiArgumentError,
    AgiProtocolError,
    AgiReply,
    HeaderParser,
    ReplyParser,
    format_command,
    is_hangup_line,
    parse_headers,
    parse_reply,
    quote_arg,
)

HEADERS = (
    b"agi_network: yes\n"
    b"agi_network_script: ivr/main?lang=fr&x=1\n"
    b"agi_request: agi://127.0.0.1:4573/ivr/main?lang=fr&x=1&lang=de\n"
    b"agi_channel: PJSIP/alice-00000001\n"
    b"agi_language: en\n"
    b"agi_type: PJSIP\n"
    b"agi_uniqueid: 1700000000.42\n"
    b"agi_version: 22.0.0\n"
    b"agi_callerid: 0612345678\n"
    b"agi_calleridname: Alice \"A\" Smith\n"
    b"agi_dnid: 3000\n"
    b"agi_context: from-trunk\n"
    b"agi_extension: 3000\n"
    b"agi_priority: 2\n"
    b"agi_enhanced: 0.0\n"
    b"agi_accountcode: \n"
    b"agi_arg_1: first arg\n"
    + b"".join(b"agi_arg_%d: a%d\n" % (i, i) for i in range(2, 12))
    + b"\n"
)


# ------------------------------------------------------------------ headers

def test_parse_headers_full_block():
    req = parse_headers(HEADERS)
    assert req.script == "ivr/main"
    assert req.query == {"lang": "fr", "x": "1"}
    assert req.request == "agi://127.0.0.1:4573/ivr/main?lang=fr&x=1&lang=de"
    assert req.channel == "PJSIP/alice-00000001"
    assert req.uniqueid == "1700000000.42"
    assert req.caller_id_num == "0612345678"
    assert req.caller_id_name == 'Alice "A" Smith'
    assert req.dnid == "3000"
    assert req.extension == "3000"
    assert req.context == "from-trunk"
    assert req.headers["agi_accountcode"] == ""
    # numeric order, agi_arg_10 after agi_arg_9
    assert req.args == ["first arg"] + [f"a{i}" for i in range(2, 12)]


def test_parse_headers_crlf_and_no_query():
    req = parse_headers(b"agi_network: yes\r\nagi_request: agi://h/hello\r\n\r\n")
    assert req.script == "hello"
    assert req.query == {}
    assert req.args == []
    assert req.channel == ""


def test_header_parser_is_incremental():
    parser = HeaderParser()
    assert parser.feed(b"agi_network: yes\n") is None
    assert parser.feed(b"agi_request: agi://h/x\n") is None
    req = parser.feed(b"\n")
    assert req is not None and req.script == "x"


@pytest.mark.parametrize("block, error_id", [
    (b"agi_network: yes\n\n", "agi.no_request"),
    (b"agi_request: agi://h/x\n\n", "agi.no_request"),                 # no agi_network
    (b"agi_network: no\nagi_request: agi://h/x\n\n", "agi.no_request"),
    (b"\n", "agi.no_request"),
    (b"GET / HTTP/1.1\n\n", "agi.bad_header"),
    (b"hello world\n\n", "agi.bad_header"),
    (b"agi_channel PJSIP/x\n\n", "agi.bad_header"),
    (b"foo_bar: x\n\n", "agi.bad_header"),
    (b"agi_x: 1\nagi_x: 2\n\n", "agi.bad_header"),
    (b"agi_x: a\x00b\n\n", "agi.bad_header"),
    (b"agi_network: yes\nagi_request: agi://[::1/x\n\n", "agi.no_request"),
    (b"agi_request: " + b"x" * 3000 + b"\n\n", "agi.header_too_long"),
    (b"".join(b"agi_h%d: v\n" % i for i in range(65)) + b"\n", "agi.too_many_headers"),
    (b"agi_network: yes\nagi_request: agi://h/x\n", "agi.header_eof"),
])
def test_bad_header_blocks(block, error_id):
    with pytest.raises(AgiProtocolError) as info:
        parse_headers(block)
    assert info.value.id == error_id


def test_header_limits_are_configurable():
    with pytest.raises(AgiProtocolError) as info:
        parse_headers(b"agi_network: yes\nagi_request: agi://h/x\n\n", max_headers=1)
    assert info.value.id == "agi.too_many_headers"
    with pytest.raises(AgiProtocolError) as info:
        parse_headers(b"agi_network: yes\n\n", max_line=10)
    assert info.value.id == "agi.header_too_long"


# ------------------------------------------------------------------ replies

@pytest.mark.parametrize("line, expected", [
    ("200 result=1 (timeout) endpos=1234", AgiReply(200, "1", "timeout", {"endpos": "1234"})),
    ("200 result=0", AgiReply(200, "0", None, {})),
    ("200 result=-1", AgiReply(200, "-1", None, {})),
    ("200 result=0 endpos=5\n", AgiReply(200, "0", None, {"endpos": "5"})),
    ("200 result=49 endpos=12000\r\n", AgiReply(200, "49", None, {"endpos": "12000"})),
    ("200 result= (timeout)", AgiReply(200, "", "timeout", {})),
    ("200 result=1234", AgiReply(200, "1234", None, {})),
    ("200 result=1 (hello world)", AgiReply(200, "1", "hello world", {})),
    ("200 result=1 ()", AgiReply(200, "1", "", {})),
    # unescaped data containing parentheses and what looks like key=value pairs
    ("200 result=1 (a (b) c)", AgiReply(200, "1", "a (b) c", {})),
    ("200 result=1 (x) endpos=5)", AgiReply(200, "1", "x) endpos=5", {})),
    ("200 result=1 (unterminated", AgiReply(200, "1", "unterminated", {})),
    ('200 result=1 (speech) endpos=9 results=1 score0=900 text0="hello world" grammar0=g',
     AgiReply(200, "1", "speech", {"endpos": "9", "results": "1", "score0": "900",
                                   "text0": "hello world", "grammar0": "g"})),
    ("510 Invalid or unknown command", AgiReply(510, None, "Invalid or unknown command")),
    ("511 Command Not Permitted on a dead channel or intercept routine",
     AgiReply(511, None, "Command Not Permitted on a dead channel or intercept routine")),
    ("520 Invalid command syntax.  Proper usage not available.",
     AgiReply(520, None, "Invalid command syntax.  Proper usage not available.")),
    ("503 result=-2 Memory allocation failure", AgiReply(503, None, "result=-2 Memory allocation failure")),
])
def test_parse_reply_lines(line, expected):
    assert parse_reply(line) == expected


def test_parse_reply_multiline_520():
    parser = ReplyParser()
    assert parser.feed(b"520-Invalid command syntax.  Proper usage follows:\n") is None
    assert parser.feed(b" Usage: STREAM FILE <filename> <escape digits>\n") is None
    assert parser.feed(b"   Send the given file.\n") is None
    reply = parser.feed(b"520 End of proper usage.\n")
    assert reply == AgiReply(520, None, " Usage: STREAM FILE <filename> <escape digits>\n   Send the given file.")
    # the parser is reusable for the next reply
    assert parser.feed(b"200 result=0\n") == AgiReply(200, "0")


def test_parse_reply_520_terminator_glued_to_usage():
    text = "520-Invalid command syntax.  Proper usage follows:\nAnswers channel.520 End of proper usage.\n"
    assert parse_reply(text) == AgiReply(520, None, "Answers channel.")


def test_parse_reply_520_block_is_bounded():
    parser = ReplyParser(max_lines=3)
    parser.feed("520-Invalid command syntax.  Proper usage follows:")
    for _ in range(3):
        parser.feed("usage")
    with pytest.raises(AgiProtocolError) as info:
        parser.feed("usage")
    assert info.value.id == "agi.reply_too_long"


@pytest.mark.parametrize("line", ["hello", "200", "200 foo", "20 result=1", "2000 result=1",
                                  "abc result=1", "HANG UP"])
def test_bad_replies(line):
    with pytest.raises(AgiProtocolError) as info:
        parse_reply(line)
    assert info.value.id == "agi.bad_reply"


def test_hangup_line():
    assert is_hangup_line(b"HANGUP\n")
    assert is_hangup_line("HANGUP\r\n")
    assert not is_hangup_line(b"200 result=1 (HANGUP)\n")
    assert not is_hangup_line(b"HANGUPX\n")


def test_reply_parse_of_long_hostile_line():
    line = "200 result=1 (" + ") a=b" * 10000
    reply = parse_reply(line)
    assert reply.data == ") a=b" * 9999 and reply.extra == {"a": "b"}


# ------------------------------------------------------------------ quoting

def asterisk_parse_args(line: str) -> list[str]:
    """A line-by-line port of res_agi.c parse_args(), to check quoting against."""
    argv: list[str] = []
    quoted = escaped = False
    whitespace = True
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and whitespace:
                argv.append("")
                whitespace = False
            escaped = False
            continue
        if ch in " \t" and not quoted and not escaped:
            whitespace = True
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        if whitespace:
            argv.append("")
            whitespace = False
        argv[-1] += ch
        escaped = False
    return argv


@pytest.mark.parametrize("value, quoted", [
    ("hello", "hello"),
    ("custom/welcome-1", "custom/welcome-1"),
    ("5000", "5000"),
    (5000, "5000"),
    ("", '""'),
    ("two words", '"two words"'),
    ('say "hi"', '"say \\"hi\\""'),
    ("back\\slash", '"back\\\\slash"'),
    ("tab\there", '"tab\there"'),
    ("é", '"é"'),
])
def test_quote_arg(value, quoted):
    assert quote_arg(value) == quoted


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\x00b", "\n", "x\r\nEXEC System rm"])
def test_quote_arg_refuses_line_breaks_and_nul(value):
    with pytest.raises(AgiArgumentError):
        quote_arg(value)
    with pytest.raises(AgiArgumentError):
        format_command("SET VARIABLE", "X", value)


@pytest.mark.parametrize("value", [None, 1.5, True, b"bytes"])
def test_quote_arg_refuses_other_types(value):
    with pytest.raises(AgiArgumentError):
        quote_arg(value)


def test_format_command():
    assert format_command("ANSWER") == b"ANSWER\n"
    assert format_command("STREAM FILE", "hello", "") == b'STREAM FILE hello ""\n'
    assert format_command("SET VARIABLE", "NAME", 'a "b" c') == b'SET VARIABLE NAME "a \\"b\\" c"\n'
    assert asterisk_parse_args(format_command("SET VARIABLE", "N", 'a "b" c\\').decode()[:-1]) == \
        ["SET", "VARIABLE", "N", 'a "b" c\\']


@pytest.mark.parametrize("name", ["", "ANSWER\nHANGUP", "SET  VARIABLE", " ANSWER", "EXEC;", 5])
def test_format_command_refuses_bad_names(name):
    with pytest.raises(AgiArgumentError):
        format_command(name)


def test_format_command_refuses_lines_asterisk_would_split():
    assert len(format_command("VERBOSE", "x" * (MAX_COMMAND_LINE - len("VERBOSE \n")))) == MAX_COMMAND_LINE
    with pytest.raises(AgiArgumentError) as info:
        format_command("VERBOSE", "x" * MAX_COMMAND_LINE)
    assert info.value.id == "agi.command_too_long"


# ------------------------------------------------------------------ properties

@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_header_parser_only_raises_protocol_errors(data):
    try:
        parse_headers(data)
    except AgiProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=80), st.text(max_size=80)), max_size=10))
def test_header_parser_feed_only_raises_protocol_errors(lines):
    parser = HeaderParser()
    try:
        for line in lines:
            parser.feed(line)
    except AgiProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=80), st.text(max_size=80),
                          st.from_regex(r"[0-9]{3}[ -]result=\S* ?\(?[^\n]*", fullmatch=True)),
                max_size=6))
def test_reply_parser_only_raises_protocol_errors(lines):
    parser = ReplyParser()
    for line in lines:
        try:
            reply = parser.feed(line)
        except AgiProtocolError:
            continue
        assert reply is None or isinstance(reply, AgiReply)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.integers()))
def test_quote_arg_never_yields_a_line_break(value):
    try:
        quoted = quote_arg(value)
    except AgiArgumentError:
        assert isinstance(value, str) and any(c in value for c in "\n\r\x00")
        return
    assert "\n" not in quoted and "\r" not in quoted and "\x00" not in quoted


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=40), st.integers()), max_size=5))
def test_format_command_round_trips_through_asterisk_parser(args):
    try:
        line = format_command("SET VARIABLE", *args)
    except AgiArgumentError:
        return
    assert line.endswith(b"\n") and line.count(b"\n") == 1 and b"\r" not in line
    assert asterisk_parse_args(line[:-1].decode()) == ["SET", "VARIABLE", *map(str, args)]
