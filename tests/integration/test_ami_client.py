"""AmiClient against a fake AMI server on 127.0.0.1 (tests/integration/fake_ami.py).

No wall-clock assertions: waits have upper bounds only; checks are on order and counts.
"""
import asyncio

import pytest
import structlog

import acd.ami.client as client_mod
from acd.ami.client import (
    AmiActionError, AmiClient, AmiDisconnected, AmiError, AmiTimeout, _Protocol,
)
from acd.ami.events import GenericEvent, Newchannel, OriginateResponse, UserEvent, VarSet
from fake_ami import FakeAmi, wait_until

GUARD = 5.0   # upper bound so that a missing feature fails instead of hanging


@pytest.fixture
async def server():
    srv = await FakeAmi().start()
    yield srv
    await srv.stop()


@pytest.fixture
def logs():
    with structlog.testing.capture_logs() as entries:
        yield entries


def ids(entries, event_id):
    return [e for e in entries if e["event"] == event_id]


@pytest.fixture
async def make_client(server):
    made = []

    def make(**kw):
        opts = dict(action_timeout=1.0, ping_interval=30.0, ping_timeout=1.0,
                    reconnect_min=0.01, reconnect_max=0.05)
        opts.update(kw)
        secret = opts.pop("secret", "s3cret")
        c = AmiClient("127.0.0.1", opts.pop("port", server.port), "acd", secret, **opts)
        c.states = []
        c.events = []
        c.on_connection(c.states.append)
        c.on_event(c.events.append)
        made.append(c)
        return c

    yield make
    for c in made:
        await c.close()


async def test_login_action_and_typed_events(server, make_client, logs):
    order = []
    c = make_client()
    c.on_connection(lambda up: order.append(("connection", up)))
    c.on_event(lambda e: order.append(("event", e.name)))
    await asyncio.wait_for(c.start(), GUARD)
    assert c.connected and c.states == [True]
    assert order[:2] == [("connection", True), ("event", "FullyBooted")]
    [(_, login)] = server.actions("Login")
    assert (login["Username"], login["Secret"], login["Events"]) == ("acd", "s3cret", "on")

    resp = await c.action("Redirect", Channel="PJSIP/1001-01", Context="acd", Exten="s",
                          Priority=1, Variable=["A=1", "B=2"], Async=True, Skip=None)
    assert resp.success and resp.response == "Success" and resp.message == "OK"
    [(_, sent)] = server.actions("Redirect")
    assert sent["ActionID"] == resp.action_id
    assert (sent["Channel"], sent["Priority"], sent["Async"]) == ("PJSIP/1001-01", "1", "true")
    assert "Skip" not in sent

    server.event(Event="Newchannel", Channel="PJSIP/1001-02", Uniqueid="1.2", ChannelState="4")
    await wait_until(lambda: any(isinstance(e, Newchannel) for e in c.events))
    nc = next(e for e in c.events if isinstance(e, Newchannel))
    assert (nc.channel, nc.uniqueid, nc.channel_state) == ("PJSIP/1001-02", "1.2", 4)


async def test_header_injection_refused(server, make_client):
    c = make_client()
    await asyncio.wait_for(c.start(), GUARD)
    with pytest.raises(ValueError):
        await c.action("Originate", CallerID="x\r\nAction: Hangup")
    assert server.actions("Originate") == []


async def test_action_error_raises(server, make_client):
    server.on("Hangup", lambda conn, m: conn.send(
        {"Response": "Error", "ActionID": m["ActionID"], "Message": "No such channel"}))
    c = make_client()
    await asyncio.wait_for(c.start(), GUARD)
    with pytest.raises(AmiActionError) as err:
        await asyncio.wait_for(c.action("Hangup", Channel="PJSIP/nope"), GUARD)
    assert err.value.message == "No such channel" and err.value.response.response == "Error"
    assert c.connected


async def test_action_list_collects_until_complete(server, make_client):
    def show(conn, m):
        aid = m["ActionID"]
        conn.send({"Response": "Success", "ActionID": aid, "EventList": "start",
                   "Message": "Channels will follow"})
        conn.send({"Event": "CoreShowChannel", "ActionID": aid, "Channel": "PJSIP/a-1"})
        conn.send({"Event": "Newstate", "Channel": "PJSIP/z-9", "ChannelState": "6"})  # unrelated
        conn.send({"Event": "CoreShowChannel", "ActionID": aid, "Channel": "PJSIP/b-2"})
        conn.send({"Event": "CoreShowChannelsComplete", "ActionID": aid, "EventList": "Complete",
                   "ListItems": "2"})
    server.on("CoreShowChannels", show)
    c = make_client()
    await asyncio.wait_for(c.start(), GUARD)
    items = await asyncio.wait_for(c.action_list("CoreShowChannels"), GUARD)
    assert [i["Channel"] for i in items] == ["PJSIP/a-1", "PJSIP/b-2"]
    # the unrelated event went to the callbacks, the list items did not
    assert [e.name for e in c.events] == ["FullyBooted", "Newstate"]


async def test_async_originate_returns_on_response_and_outcome_is_an_event(server, make_client):
    seen = {}

    def originate(conn, m):
        seen["conn"], seen["aid"] = conn, m["ActionID"]
        conn.send({"Response": "Success", "ActionID": m["ActionID"],
                   "Message": "Originate successfully queued"})
    server.on("Originate", originate)
    c = make_client()
    await asyncio.wait_for(c.start(), GUARD)
    resp = await asyncio.wait_for(
        c.action("Originate", Channel="PJSIP/2001", Context="acd", Exten="s", Priority=1,
                 Async="true"), GUARD)
    assert resp.message == "Originate successfully queued"
    seen["conn"].send({"Event": "OriginateResponse", "ActionID": seen["aid"], "Response": "Failure",
                       "Channel": "PJSIP/2001", "Reason": "5", "Uniqueid": "<null>"})
    await wait_until(lambda: any(isinstance(e, OriginateResponse) for e in c.events))
    orr = next(e for e in c.events if isinstance(e, OriginateResponse))
    assert (orr.action_id, orr.response, orr.reason) == (resp.action_id, "Failure", 5)


async def test_action_timeout(server, make_client, logs):
    held = []
    server.on("Redirect", lambda conn, m: held.append((conn, m["ActionID"])))   # never answers
    c = make_client()
    await asyncio.wait_for(c.start(), GUARD)
    with pytest.raises(AmiTimeout):
        await asyncio.wait_for(c.action("Redirect", Channel="PJSIP/x", timeout=0.1), GUARD)
    [entry] = ids(logs, "ami.action_timeout")
    assert entry["action"] == "Redirect" and entry["action_id"] == held[0][1]
    # a late answer is ignored, and the link is still usable
    conn, aid = held[0]
    conn.send({"Response": "Success", "ActionID": aid, "Message": "late"})
    resp = await asyncio.wait_for(c.action("CoreStatus"), GUARD)
    assert resp.success and c.connected
    assert len(server.connections) == 1 and c.states == [True]


async def test_disconnect_mid_action_fails_and_is_never_replayed(server, make_client, logs):
    server.on("Redirect", lambda conn, m: None)                # pending: no answer...
    server.on("Hangup", lambda conn, m: conn.drop())           # ...then the link drops
    c = make_client()
    await asyncio.wait_for(c.start(), GUARD)
    redirect = asyncio.ensure_future(c.action("Redirect", Channel="PJSIP/a", timeout=GUARD))
    await wait_until(lambda: len(server.actions("Redirect")) == 1)
    with pytest.raises(AmiDisconnected):
        await asyncio.wait_for(c.action("Hangup", Channel="PJSIP/b", timeout=GUARD), GUARD)
    with pytest.raises(AmiDisconnected):
        await asyncio.wait_for(redirect, GUARD)
    assert {e["action"] for e in ids(logs, "ami.action_aborted")} == {"Redirect", "Hangup"}

    await wait_until(lambda: c.connected and len(server.logins) == 2)
    await asyncio.wait_for(c.action("CoreStatus"), GUARD)      # the new link carries traffic
    await asyncio.wait_for(c.action("CoreStatus"), GUARD)
    assert c.states == [True, False, True]
    assert [n for n, _ in server.actions("Redirect")] == [1]   # sent once, on link 1, never again
    assert [n for n, _ in server.actions("Hangup")] == [1]
    assert [n for n, _ in server.actions("CoreStatus")] == [2, 2]


async def test_action_while_disconnected_is_refused_not_queued(server, make_client):
    c = make_client()
    await asyncio.wait_for(c.start(), GUARD)
    server.secret = "changed"               # reconnects fail for now
    server.connections[0].drop()
    await wait_until(lambda: not c.connected)
    with pytest.raises(AmiDisconnected):
        await asyncio.wait_for(c.action("Hangup", Channel="PJSIP/a"), GUARD)
    server.secret = "s3cret"
    await wait_until(lambda: c.connected)
    await asyncio.wait_for(c.action("CoreStatus"), GUARD)
    assert server.actions("Hangup") == []
    assert c.states == [True, False, True]


async def test_half_open_link_detected_by_ping_watchdog(server, make_client, logs):
    c = make_client(ping_interval=0.1, ping_timeout=0.2)
    await asyncio.wait_for(c.start(), GUARD)
    await wait_until(lambda: len(server.actions("Ping")) >= 1)   # the watchdog pings
    first = server.connections[0]
    first.muted = True                       # socket open, nothing answered any more
    pings_before = len(server.actions("Ping"))
    await wait_until(lambda: c.connected and len(server.logins) == 2)
    assert len(ids(logs, "ami.half_open")) == 1
    assert ids(logs, "ami.silent")                         # asked once more before dropping
    assert len(server.actions("Ping")) >= pings_before + 2  # the unanswered pings
    await wait_until(lambda: first.closed)                 # the client dropped the old socket
    assert c.states == [True, False, True]
    assert (await asyncio.wait_for(c.action("CoreStatus"), GUARD)).success


async def test_a_busy_asterisk_that_answers_ping_late_but_sends_events_keeps_its_link(
        server, make_client, logs):
    """Under load Asterisk may answer a Ping late while its events keep coming: the link is
    alive, and dropping it would add a reconnect and a full re-read to Asterisk's load. Only
    a link that carries nothing at all is half-open."""
    c = make_client(ping_interval=0.1, ping_timeout=0.3)
    await asyncio.wait_for(c.start(), GUARD)
    first = server.connections[0]
    first.unanswered.add("ping")
    pings = len(server.actions("Ping"))
    for _ in range(20):                      # 2 s of events, pings unanswered
        server.event(Event="Newstate", Channel="PJSIP/1001-1", Uniqueid="u1")
        await asyncio.sleep(0.1)
    assert len(server.actions("Ping")) > pings + 2         # the watchdog kept asking
    assert ids(logs, "ami.slow_ping") and not ids(logs, "ami.half_open")
    assert c.states == [True] and not first.closed
    # Nothing heard any more: now it is half-open, dropped and replaced.
    await wait_until(lambda: c.connected and len(server.logins) == 2)
    assert len(ids(logs, "ami.half_open")) == 1 and c.states == [True, False, True]


async def test_bad_login_logged_and_retried_with_backoff(server, make_client, logs):
    server.secret = "other"
    c = make_client(reconnect_min=0.01, reconnect_max=0.08)
    start = asyncio.ensure_future(c.start())
    await wait_until(lambda: len(ids(logs, "ami.login_failed")) >= 5)
    assert not start.done() and not c.connected
    failed = ids(logs, "ami.login_failed")
    assert failed[0]["log_level"] == "error" and failed[0]["message"] == "Authentication failed"
    assert failed[0]["username"] == "acd"
    # each attempt is a new connection, one login each, all refused
    assert [ok for _, ok in server.logins] == [False] * len(server.logins)
    assert [n for n, _ in server.logins] == list(range(1, len(server.logins) + 1))
    # backoff: delays double (jitter is at most 25% down) until capped at reconnect_max
    delays = [e["delay"] for e in ids(logs, "ami.reconnect_wait")][:4]
    assert len(delays) == 4
    assert delays[0] < delays[1] < delays[2]
    assert all(d <= 0.08 for d in delays) and max(delays) >= 0.06
    attempts = [e["attempt"] for e in ids(logs, "ami.connecting")]
    assert attempts == list(range(1, len(attempts) + 1))

    server.secret = "s3cret"
    await asyncio.wait_for(start, GUARD)
    assert c.connected and server.logins[-1][1] is True and c.states == [True]


async def test_start_timeout_raises_and_close_stops_retrying(server, make_client):
    server.secret = "other"
    c = make_client()
    with pytest.raises(AmiError, match="Authentication failed"):
        await c.start(connect_timeout=0.3)
    await c.close()
    count = len(server.logins)
    await c.close()                                   # idempotent
    await asyncio.sleep(0.1)
    assert len(server.logins) == count                # no more attempts after close
    with pytest.raises(AmiError):
        await c.start()


async def test_connection_refused_is_retried(make_client, logs):
    probe = await FakeAmi().start()
    port = probe.port
    await probe.stop()                                # nothing listens there now
    c = make_client(port=port)
    with pytest.raises(AmiError, match="cannot connect"):
        await c.start(connect_timeout=0.3)
    assert len(ids(logs, "ami.connect_failed")) >= 2


async def test_raising_callbacks_do_not_kill_the_connection(server, make_client, logs):
    c = make_client()

    def bad_sync(event):
        raise RuntimeError("sync boom")

    async def bad_async(event):
        raise RuntimeError("async boom")

    c.on_event(bad_sync)
    c.on_event(bad_async)
    c.on_connection(bad_sync)
    await asyncio.wait_for(c.start(), GUARD)
    server.event(Event="Newchannel", Channel="PJSIP/1-1", Uniqueid="1.1")
    server.event(Event="Hangup", Channel="PJSIP/1-1", Uniqueid="1.1", Cause="16")
    await wait_until(lambda: [e.name for e in c.events][-2:] == ["Newchannel", "Hangup"])
    # 3 events x (sync + async callback) + the connection callback
    await wait_until(lambda: len(ids(logs, "ami.callback_failed")) >= 7)
    failed = ids(logs, "ami.callback_failed")
    assert sorted((f["callback"].split(".")[-1], f["event_name"]) for f in failed
                  if "event_name" in f) == sorted(
        (cb, name) for cb in ("bad_sync", "bad_async") for name in ("FullyBooted", "Newchannel", "Hangup"))
    [conn_fail] = [f for f in failed if "connection" in f]
    assert conn_fail["connection"] is True and conn_fail["callback"].endswith("bad_sync")
    assert all(f["channel"] == "PJSIP/1-1" for f in failed if f.get("event_name") == "Hangup")
    assert (await asyncio.wait_for(c.action("CoreStatus"), GUARD)).success
    assert len(server.connections) == 1 and c.states == [True]


async def test_malformed_unknown_and_huge_messages(server, make_client, logs):
    c = make_client()
    await asyncio.wait_for(c.start(), GUARD)
    server.raw(b"this is not a header\r\n\r\n")
    server.raw(b"\r\n\r\n\r\n")
    server.raw(b"Foo: bar\r\n\r\n")                                       # neither event nor response
    server.raw(b"Response: Success\r\nActionID: nobody-1\r\n\r\n")        # nobody asked
    server.raw(b"Event: Weird\xff\xfe\r\nName: \xc3\r\n\r\n")             # not UTF-8
    server.raw(b"Event: Newstate\r\nChannelState: abc\r\nPriority: \r\n\r\n")
    huge = "x" * 2_000_000
    server.event(Event="VarSet", Channel="PJSIP/big", Variable="BIG", Value=huge)
    server.event(Event="UserEvent", UserEvent="After", Marker="1")
    await wait_until(lambda: any(isinstance(e, UserEvent) for e in c.events))
    names = [e.name for e in c.events]
    assert names == ["FullyBooted", "Weird\ufffd\ufffd", "Newstate", "VarSet", "UserEvent"]
    assert isinstance(c.events[1], GenericEvent)
    assert c.events[2].channel_state is None and c.events[2].priority is None
    big = c.events[3]
    assert isinstance(big, VarSet) and big.value == huge
    assert len(ids(logs, "ami.malformed")) == 2
    assert (await asyncio.wait_for(c.action("CoreStatus"), GUARD)).success
    assert len(server.connections) == 1 and c.states == [True]


async def test_unterminated_oversized_message_drops_the_link(server, make_client, logs, monkeypatch):
    monkeypatch.setattr(client_mod, "MAX_MESSAGE_CHARS", 10_000)
    c = make_client()
    await asyncio.wait_for(c.start(), GUARD)
    server.raw(b"Event: Endless\r\nData: " + b"y" * 50_000)
    await wait_until(lambda: c.connected and len(server.logins) == 2)
    assert len(ids(logs, "ami.message_too_large")) == 1
    assert c.states == [True, False, True]


async def test_close_logs_off_and_fails_pending(server, make_client):
    server.on("Redirect", lambda conn, m: None)
    c = make_client()
    await asyncio.wait_for(c.start(), GUARD)
    pending = asyncio.ensure_future(c.action("Redirect", Channel="PJSIP/a", timeout=GUARD))
    await wait_until(lambda: len(server.actions("Redirect")) == 1)
    await asyncio.wait_for(c.close(), GUARD)
    with pytest.raises(AmiDisconnected):
        await pending
    assert len(server.actions("Logoff")) == 1
    assert not c.connected and c.states == [True, False]
    await c.close()
    with pytest.raises(AmiDisconnected):
        await c.action("CoreStatus")
    assert len(server.connections) == 1


class _Transport:
    def __init__(self):
        self.written = []
        self.aborted = False

    def write(self, data):
        self.written.append(data)

    def is_closing(self):
        return self.aborted

    def abort(self):
        self.aborted = True


async def test_protocol_framing_across_chunks():
    """Byte-level: banner, messages and a UTF-8 character split across reads."""
    got = []
    proto = _Protocol(asyncio.get_running_loop(), got.append)
    proto.connection_made(_Transport())
    proto.held = None
    wire = ("Asterisk Call Manager/9.0.0\r\n"
            "Event: Newchannel\r\nCallerIDName: Jos\u00e9 \u00c5se\r\n\r\n"
            "Event: VarSet\r\nVariable: EMPTY\r\nValue: \r\n\r\n").encode()
    for i in range(len(wire)):            # one byte per read: the worst case
        proto.data_received(wire[i:i + 1])
    assert proto.version == "9.0.0"
    assert got == [{"Event": "Newchannel", "CallerIDName": "Jos\u00e9 \u00c5se"},
                   {"Event": "VarSet", "Variable": "EMPTY", "Value": ""}]


async def test_event_filter_is_asked_for_after_each_login(server, make_client, logs):
    c = make_client(event_filter=("Newchannel", ("UserEvent", "UserEvent", "AcdVoicemail")))
    await asyncio.wait_for(c.start(), GUARD)
    sent = [m for _, m in server.actions("Filter")]
    assert [(m["Operation"], m["MatchCriteria"], m.get("Filter")) for m in sent] == [
        ("Add", "name(Newchannel)", None),
        ("Add", "name(UserEvent),header(UserEvent),method(exact)", "AcdVoicemail")]
    assert not ids(logs, "ami.filter_refused")


async def test_a_starts_with_filter_is_asked_for_by_its_method(server, make_client, logs):
    c = make_client(event_filter=(("HangupRequest", "Uniqueid", "acd-", "starts_with"),
                                  ("OriginateResponse", "Response", "Failure")))
    await asyncio.wait_for(c.start(), GUARD)
    sent = [m for _, m in server.actions("Filter")]
    assert [(m["MatchCriteria"], m.get("Filter")) for m in sent] == [
        ("name(HangupRequest),header(Uniqueid),method(starts_with)", "acd-"),
        ("name(OriginateResponse),header(Response),method(exact)", "Failure")]


@pytest.mark.parametrize("item", [("Hangup", "Uniqueid", "acd-", "regex"),
                                  ("Hangup", "Uniqueid"), ("Hangup", "Uniqueid", "a", "exclude", 1)])
def test_a_filter_of_unknown_shape_is_refused_when_the_client_is_made(item):
    with pytest.raises(ValueError, match="AMI event filter"):
        AmiClient("127.0.0.1", 1, "acd", "s", event_filter=(item,))


async def test_an_exclude_filter_is_asked_for_and_a_refused_one_costs_nothing(
        server, make_client, logs):
    def refuse_excludes(conn, m):
        ok = not m.get("MatchCriteria", "").startswith("action(exclude)")
        conn.send({"Response": "Success" if ok else "Error", "ActionID": m["ActionID"],
                   "Message": "OK" if ok else "Filter was formatted incorrectly."})
    server.on("Filter", refuse_excludes)
    c = make_client(event_filter=("BridgeLeave",
                                  ("BridgeLeave", "BridgeCreator", "BridgeWait", "exclude"),
                                  "Hangup"))
    await asyncio.wait_for(c.start(), GUARD)
    sent = [m for _, m in server.actions("Filter")]
    assert [(m.get("MatchCriteria"), m.get("Filter")) for m in sent] == [
        ("name(BridgeLeave)", None),
        ("action(exclude),name(BridgeLeave),header(BridgeCreator),method(exact)", "BridgeWait"),
        ("name(Hangup)", None)]                 # no include-all: nothing was filtered out
    [refused] = ids(logs, "ami.filter_refused")
    assert refused["exclude"] is True
    assert c.connected


async def test_a_refused_filter_falls_back_to_every_event(server, make_client, logs):
    """An Asterisk older than 22.1 refuses a structured filter: nothing the application
    reads may then be filtered out, so one include-all filter follows."""
    def refuse(conn, m):
        ok = "MatchCriteria" not in m or m["MatchCriteria"] == "name(Newchannel)"
        conn.send({"Response": "Success" if ok else "Error", "ActionID": m["ActionID"],
                   "Message": "OK" if ok else "Filter was formatted incorrectly."})
    server.on("Filter", refuse)
    c = make_client(event_filter=("Newchannel", "Hangup", "Rename"))
    await asyncio.wait_for(c.start(), GUARD)
    sent = [m for _, m in server.actions("Filter")]
    assert [m.get("MatchCriteria") for m in sent] == ["name(Newchannel)", "name(Hangup)", None]
    assert sent[-1]["Filter"] == ".*"
    [refused] = ids(logs, "ami.filter_refused")
    assert refused["event_name"] == "Hangup"
    assert c.connected
