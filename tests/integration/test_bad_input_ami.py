"""Bad AMI input end to end: the real Server (runtime, AMI client, store, FastAGI, web) on
loopback, connected to a fake AMI server (tests/integration/fake_ami.py) that plays Asterisk:
it answers the start-up reads (two agents' phones reachable), then sends malformed lines,
unknown events, every event type the runtime dispatches with missing and garbage fields,
responses nobody asked for, huge payloads and a binary blob.

Afterwards the server is up, nothing raised in the runtime, the agents' states, the queues
and the call records are what they were, and the web API still answers."""
from __future__ import annotations

import asyncio
import contextlib
import os
import random
from dataclasses import replace

import aiohttp
import pytest
import yaml
from structlog.testing import capture_logs

from acd import config as configmod
from acd.ami.client import MAX_MESSAGE_CHARS
from acd.app import Server
from tests.integration.fake_ami import FakeAmi, wait_until
from tests.web_login import login, password_of

WAIT = 30.0          # an upper bound to end a stuck test, never a timing assertion
CONTACT = "sip:{a}@127.0.0.1:5999"


def play_asterisk(ami: FakeAmi) -> None:
    """The actions the runtime sends when it takes up its state."""
    def status(conn, msg):
        conn.send({"Response": "Success", "ActionID": msg["ActionID"],
                   "CoreStartupDate": "2026-11-21", "CoreStartupTime": "08:00:00"})

    def channels(conn, msg):
        aid = msg["ActionID"]
        conn.send({"Response": "Success", "ActionID": aid, "EventList": "start"})
        conn.send({"Event": "CoreShowChannelsComplete", "ActionID": aid,
                   "EventList": "Complete", "ListItems": "0"})

    def contacts(conn, msg):
        aid = msg["ActionID"]
        conn.send({"Response": "Success", "ActionID": aid, "EventList": "start"})
        for a in ("1001", "1002"):
            conn.send({"Event": "ContactList", "ActionID": aid, "ObjectType": "contact",
                       "ObjectName": f"{a}/{CONTACT.format(a=a)}", "Endpoint": a, "Aor": a,
                       "Uri": CONTACT.format(a=a), "Status": "Reachable"})
        conn.send({"Event": "ContactListComplete", "ActionID": aid, "EventList": "Complete",
                   "ListItems": "2"})

    ami.on("CoreStatus", status)
    ami.on("CoreShowChannels", channels)
    ami.on("PJSIPShowContacts", contacts)


@contextlib.asynccontextmanager
async def running(tmp_path, **overrides):
    """The real Server on loopback with a fake AMI that plays Asterisk; ``overrides``: config
    sections replaced after loading (e.g. agi=...)."""
    ami = await FakeAmi(secret="fake-ami-secret-1").start()
    play_asterisk(ami)
    (tmp_path / "flows").mkdir()
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "data_dir": "data",
        "ami": {"port": ami.port, "secret": "fake-ami-secret-1", "ping_interval": 1,
                "ping_timeout": 3},
        "agents": [{"id": "1001", "name": "Alice"}, {"id": "1002", "name": "Bob"}],
        "groups": [{"name": "sales", "members": {"1001": 5, "1002": 3}}],
        "flows": {"dir": "flows", "watch_seconds": 0},
        "web": {"users": [{"username": "admin", "role": "admin"}]}}))
    os.chmod(path, 0o600)
    cfg, _ = configmod.with_secrets(configmod.load(path, environ={}))
    cfg = replace(cfg, agi=replace(cfg.agi, port=0), http=replace(cfg.http, port=0))  # free ports
    cfg = replace(cfg, **{k: replace(getattr(cfg, k), **v) for k, v in overrides.items()})
    srv = Server(cfg, rng=random.Random(7))
    await srv.start()
    try:
        await asyncio.wait_for(srv.runtime.ready.wait(), WAIT)
        yield srv, ami
    finally:
        await srv.stop()
        await ami.stop()


@pytest.fixture
async def server(tmp_path):
    async with running(tmp_path) as both:
        yield both


#: For each event type the runtime dispatches: headers missing, empty, of the wrong type,
#: naming nothing we know, or naming our agents' phones with nonsense.
GARBAGE_EVENTS = [
    {"Event": "Newstate"},
    {"Event": "Newstate", "Uniqueid": "", "ChannelState": "x", "Channel": ""},
    {"Event": "Newstate", "Uniqueid": "no-such-leg", "ChannelState": "6", "ChannelStateDesc": "Up"},
    {"Event": "Newchannel", "Uniqueid": "no-such-leg", "Channel": "PJSIP/1001-0000"},
    {"Event": "Hangup"},
    {"Event": "Hangup", "Uniqueid": "no-such", "Cause": "not-a-number", "Channel": "PJSIP/1001-1"},
    {"Event": "Hangup", "Uniqueid": "1.1", "Cause": "-5", "Linkedid": "1.1"},
    {"Event": "HangupRequest", "Uniqueid": "x", "Cause": "abc"},
    {"Event": "SoftHangupRequest", "Uniqueid": "x", "Cause": "9999999999999999999999"},
    {"Event": "SoftHangupRequest"},
    {"Event": "BridgeEnter"},
    {"Event": "BridgeEnter", "BridgeUniqueid": "", "Uniqueid": "no-such", "BridgeNumChannels": "x"},
    {"Event": "BridgeLeave", "BridgeUniqueid": "b-unknown", "Uniqueid": "no-such"},
    {"Event": "BridgeLeave"},
    {"Event": "OriginateResponse"},
    {"Event": "OriginateResponse", "ActionID": "nobody-asked", "Response": "Failure",
     "Reason": "banana", "Uniqueid": "no-such", "Channel": "PJSIP/1001"},
    {"Event": "OriginateResponse", "Response": "Success", "Reason": "4", "Uniqueid": "<null>"},
    {"Event": "ContactStatus"},
    {"Event": "ContactStatus", "EndpointName": "1001", "URI": CONTACT.format(a="1001"),
     "ContactStatus": "Banana"},
    {"Event": "ContactStatus", "EndpointName": "1001", "URI": "", "ContactStatus": ""},
    {"Event": "ContactStatus", "EndpointName": "1002", "ContactStatus": "Unreachable"},  # no URI
    {"Event": "ContactStatus", "EndpointName": "no-such-agent", "URI": "sip:x@1.2.3.4",
     "ContactStatus": "Unreachable"},
    {"Event": "Rename"},
    {"Event": "Rename", "Uniqueid": "no-such", "Newname": ""},
    {"Event": "UserEvent"},
    {"Event": "UserEvent", "UserEvent": "AcdVoicemail"},
    {"Event": "UserEvent", "UserEvent": "SomethingElse", "Call": "x" * 5000},
    {"Event": "DialBegin", "DestUniqueid": "no-such"},
    {"Event": "DialEnd", "DialStatus": "???"},
    {"Event": "VarSet", "Variable": "", "Value": "\x01\x02"},
    {"Event": "DTMFEnd", "Digit": "too many", "Duration_ms": "abc"},
    {"Event": "DeviceStateChange", "Device": "PJSIP/1001", "State": "BANANA"},
    {"Event": "MusicOnHoldStart", "Uniqueid": "no-such"},
    {"Event": "FullyBooted", "Uptime": "-1"},
    {"Event": "QueueCallerJoin", "Queue": "sales"},                      # unknown to us
    {"Event": "NoSuchEventEver", "Foo": "bar"},
    {"Event": ""},
    {"Response": "Success", "ActionID": "never-sent-1", "Message": "who asked?"},
    {"Response": "Error", "ActionID": "", "Message": "nobody"},
    {"Response": "Follows"},
    {"Event": "ContactStatus", "EndpointName": "1001", "EndpointName ": "dup", "URI": "u"},
]

#: Raw bytes: malformed lines, a binary blob, huge and many headers.
GARBAGE_BYTES = [
    b"this line has no colon\r\n\r\n",
    b": value without a key\r\n\r\n",
    b"Event:Newstate\r\nUniqueid:no-space-after-colon\r\n\r\n",
    b"Event: Hangup\nUniqueid: bare-newlines\n\n",
    b"\r\n\r\n\r\n",
    b"Event: Newstate\r\nUniqueid: \xff\xfe\xfd\r\nChannel: \x00\x00\r\n\r\n",
    bytes(random.Random(1).getrandbits(8) for _ in range(4096)).replace(b"\r\n\r\n", b"") + b"\r\n\r\n",
    b"Event: Hangup\r\n" + b"".join(b"X-%d: %d\r\n" % (i, i) for i in range(2000)) + b"\r\n",
    b"Event: UserEvent\r\nUserEvent: Big\r\nData: " + b"A" * 60_000 + b"\r\n\r\n",
    "Event: Rename\r\nUniqueid: 中文\r\nNewname: PJSIP/\u202e\r\n\r\n".encode(),
]


async def _view(srv):
    rt = srv.runtime
    agents = {a: (v["state"], v.get("reachable"), v.get("call_id")) for a, v in rt.agents().items()}
    calls = await srv.store.recent_calls(50)
    return agents, rt.queues(), calls


async def test_garbage_from_ami_changes_nothing_and_the_server_stays_up(server, tmp_path):
    srv, ami = server
    rt = srv.runtime
    await wait_until(lambda: all(rt.agents()[a]["reachable"] for a in ("1001", "1002")), WAIT)
    rt.login("1001")
    rt.login("1002")
    rt.set_state("1002", "break", "lunch")
    before = await _view(srv)
    assert before[0]["1001"][:2] == ("idle", True) and before[0]["1002"][0] == "break"
    link = ami.live[0]

    with capture_logs() as logs:
        for fields in GARBAGE_EVENTS:
            ami.event(**fields)
        for data in GARBAGE_BYTES:
            ami.raw(data)
        # the server's own Ping, answered after the garbage on the same link: when its
        # response is in, every message before it has been read and dispatched
        await srv.ami.action("Ping")
        await srv.runtime.flush()              # and what it had to write is written

    assert not link.closed, "the link was dropped for garbage that fits in a message"
    failed = [e for e in logs if e.get("log_level") in ("error", "critical")
              or e["event"] in ("runtime.event_failed", "runtime.core_error",
                                "runtime.decision_failed")]
    assert failed == [], failed
    # the garbage did reach the runtime (not only the parser): it said what it ignored
    ignored = [e for e in logs if e["event"] == "runtime.contact_status_ignored"]
    assert {e["status"] for e in ignored} >= {"Banana", ""}
    # A Newchannel for 1001's phone that never hangs up makes it count as in use, until the
    # minutely check reads Asterisk's channels (here: none).
    assert rt.agent("1001")["phone_in_use"] is True
    await rt.check_phones()
    assert rt.agent("1001")["phone_in_use"] is False
    assert await _view(srv) == before

    # the web API still answers, with the same states
    base = f"http://127.0.0.1:{srv.http_port}"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        r = await http.get(f"{base}/api/health")
        assert r.status == 200 and (await r.json())["ami_connected"] is True
        admin = await login(http, "admin", password_of(srv.cfg, "admin"), base=base)
        r = await admin.get("/api/agents")
        assert r.status == 200, await r.text()
        agents = (await r.json())["agents"]
        assert agents["1001"]["state"] == "idle" and agents["1002"]["state"] == "break"
        # and the agents can still be driven
        r = await admin.post("/api/agents/1002/state", json={"state": "idle"})
        assert r.status == 200 and rt.agent("1002")["state"] == "idle"


async def test_an_endless_line_drops_the_link_and_the_server_comes_back(server):
    """A message with no end (bigger than the client's limit): the client drops that link,
    logs it, logs in again, and the runtime reconciles: the same agents, the same states."""
    srv, ami = server
    rt = srv.runtime
    await wait_until(lambda: all(rt.agents()[a]["reachable"] for a in ("1001", "1002")), WAIT)
    rt.login("1001")
    before = await _view(srv)
    first = ami.live[0]
    with capture_logs() as logs:
        first.send(b"Event: Newstate\r\nUniqueid: " + b"9" * (MAX_MESSAGE_CHARS + 1024))
        await wait_until(lambda: first.closed, WAIT)
        await wait_until(lambda: len(ami.live) == 1 and ami.live[0] is not first, WAIT)
        await wait_until(lambda: srv.ami.connected, WAIT)
        await wait_until(lambda: len(ami.actions("PJSIPShowContacts")) >= 2, WAIT)
        await asyncio.sleep(0)
    assert any(e["event"].startswith("ami.") and e.get("log_level") in ("warning", "error")
               for e in logs), [e["event"] for e in logs]
    await wait_until(lambda: rt.agent("1001")["state"] == "idle" and rt.agent("1001")["reachable"],
                     WAIT)
    assert await _view(srv) == before
