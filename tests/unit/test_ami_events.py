"""acd.ami.events: typed AMI events, parse_event never raises."""
import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acd.ami.events import (
    CHANNEL_STATE_RINGING, CHANNEL_STATE_UP, AmiEvent, BridgeEnter, BridgeLeave, ChannelEvent,
    ContactStatus, DeviceStateChange, DialBegin, DialEnd, DTMFBegin, DTMFEnd, FullyBooted,
    GenericEvent, Hangup, MusicOnHoldStart, MusicOnHoldStop, Newchannel, Newstate,
    OriginateResponse, Rename, UserEvent, VarSet, parse_event,
)

SNAPSHOT = {
    "Privilege": "call,all", "Channel": "PJSIP/1001-00000001", "ChannelState": "6",
    "ChannelStateDesc": "Up", "CallerIDNum": "1001", "CallerIDName": "Alice",
    "ConnectedLineNum": "<unknown>", "ConnectedLineName": "<unknown>", "Language": "en",
    "AccountCode": "", "Context": "acd-in", "Exten": "500", "Priority": "3",
    "Uniqueid": "1700000000.1", "Linkedid": "1700000000.0",
}


def ev(name, **extra):
    return parse_event({"Event": name, **SNAPSHOT, **extra})


def test_channel_snapshot_fields():
    e = ev("Newchannel")
    assert type(e) is Newchannel and isinstance(e, ChannelEvent) and isinstance(e, AmiEvent)
    assert e.name == "Newchannel"
    assert (e.channel, e.uniqueid, e.linkedid) == ("PJSIP/1001-00000001", "1700000000.1", "1700000000.0")
    assert (e.caller_id_num, e.caller_id_name) == ("1001", "Alice")
    assert (e.context, e.exten, e.priority, e.channel_state) == ("acd-in", "500", 3, CHANNEL_STATE_UP)


def test_newstate_ringing():
    e = ev("Newstate", ChannelState="5")
    assert type(e) is Newstate and e.channel_state == CHANNEL_STATE_RINGING == 5


def test_each_typed_event():
    h = ev("Hangup", **{"Cause": "16", "Cause-txt": "Normal Clearing"})
    assert type(h) is Hangup and (h.cause, h.cause_txt) == (16, "Normal Clearing")
    db = ev("DialBegin", DestChannel="PJSIP/2001-02", DestUniqueid="u2", DestCallerIDNum="2001",
            DialString="2001")
    assert type(db) is DialBegin
    assert (db.dest_channel, db.dest_uniqueid, db.dest_caller_id_num, db.dial_string) == (
        "PJSIP/2001-02", "u2", "2001", "2001")
    de = ev("DialEnd", DestChannel="PJSIP/2001-02", DestUniqueid="u2", DialStatus="ANSWER")
    assert type(de) is DialEnd and de.dial_status == "ANSWER" and de.forward is None
    be = ev("BridgeEnter", BridgeUniqueid="b-1", BridgeType="basic", BridgeNumChannels="2")
    assert type(be) is BridgeEnter and (be.bridge_uniqueid, be.bridge_num_channels) == ("b-1", 2)
    bl = ev("BridgeLeave", BridgeUniqueid="b-1", BridgeNumChannels="1")
    assert type(bl) is BridgeLeave and bl.bridge_uniqueid == "b-1"
    cs = parse_event({"Event": "ContactStatus", "URI": "sip:1001@10.0.0.5:5060",
                      "ContactStatus": "Unreachable", "AOR": "1001", "EndpointName": "1001",
                      "RoundtripUsec": "N/A"})
    assert type(cs) is ContactStatus
    assert (cs.aor, cs.endpoint_name, cs.contact_status, cs.roundtrip_usec) == (
        "1001", "1001", "Unreachable", None)
    ds = parse_event({"Event": "DeviceStateChange", "Device": "PJSIP/1001", "State": "INUSE"})
    assert type(ds) is DeviceStateChange and (ds.device, ds.state) == ("PJSIP/1001", "INUSE")
    orr = ev("OriginateResponse", ActionID="acd-1-7", Response="Failure", Reason="5")
    assert type(orr) is OriginateResponse
    assert (orr.action_id, orr.response, orr.reason, orr.channel) == (
        "acd-1-7", "Failure", 5, "PJSIP/1001-00000001")
    moh = ev("MusicOnHoldStart", Class="default")
    assert type(moh) is MusicOnHoldStart and moh.moh_class == "default"
    assert type(ev("MusicOnHoldStop")) is MusicOnHoldStop
    d1 = ev("DTMFBegin", Digit="#", Direction="Received")
    assert type(d1) is DTMFBegin and (d1.digit, d1.direction) == ("#", "Received")
    d2 = ev("DTMFEnd", Digit="5", Direction="Received", DurationMs="120")
    assert type(d2) is DTMFEnd and (d2.digit, d2.duration_ms) == ("5", 120)
    vs = ev("VarSet", Variable="ACD_QUEUE", Value="sales")
    assert type(vs) is VarSet and (vs.variable, vs.value) == ("ACD_QUEUE", "sales")
    fb = parse_event({"Event": "FullyBooted", "Status": "Fully Booted"})
    assert type(fb) is FullyBooted and fb.status == "Fully Booted"
    rn = ev("Rename", Newname="PJSIP/1001-00000001<ZOMBIE>")
    assert type(rn) is Rename and rn.new_name.endswith("<ZOMBIE>")


def test_user_event_headers_exclude_snapshot():
    e = ev("UserEvent", UserEvent="AcdAgentLogin", Agent="42", Queue="sales")
    assert type(e) is UserEvent and e.user_event == "AcdAgentLogin"
    assert dict(e.headers) == {"Agent": "42", "Queue": "sales"}


def test_unknown_event_is_generic_and_keeps_fields():
    raw = {"Event": "QueueMemberStatus", "Queue": "q1", "Status": "1"}
    e = parse_event(raw)
    assert type(e) is GenericEvent and e.name == "QueueMemberStatus"
    assert dict(e.fields) == raw


def test_raw_fields_kept_and_read_only():
    raw = {"Event": "Hangup", "Channel": "PJSIP/x", "X-Custom": "1"}
    e = parse_event(raw)
    assert dict(e.fields) == raw
    raw["Channel"] = "changed"          # a copy was kept
    assert e.fields["Channel"] == "PJSIP/x"
    with pytest.raises(TypeError):
        e.fields["Channel"] = "y"       # read-only
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.channel = "y"


def test_bad_and_missing_values_become_none():
    e = parse_event({"Event": "Hangup", "Cause": "sixteen", "ChannelState": "", "Priority": "1_0"})
    assert type(e) is Hangup
    assert (e.cause, e.channel_state, e.priority, e.channel, e.cause_txt) == (None, None, None, None, None)
    assert parse_event({"Event": "Hangup", "Cause": "٣"}).cause is None   # non-ASCII digit
    assert parse_event({"Event": "Hangup", "Cause": "9" * 5000}).cause is None
    assert parse_event({"Event": "Hangup", "Cause": " 17 "}).cause == 17


def test_case_insensitive_headers_and_repeated_header():
    e = parse_event({"event": "hangup", "CHANNEL": "PJSIP/a", "cause": "21",
                     "ChanVariable": ["A=1", "B=2"]})
    assert type(e) is Hangup and e.name == "Hangup"
    assert (e.channel, e.cause) == ("PJSIP/a", 21)
    assert e.fields["ChanVariable"] == ["A=1", "B=2"]
    assert parse_event({"Event": "VarSet", "Value": ["x", "y"]}).value == "x"


def test_missing_event_name():
    e = parse_event({"Response": "Success"})
    assert type(e) is GenericEvent and e.name == ""
    assert parse_event({}).name == ""


def test_events_hashable_and_comparable():
    assert ev("Hangup", Cause="16") == ev("Hangup", Cause="16")
    assert ev("Hangup", Cause="16") != ev("Hangup", Cause="17")
    assert hash(ev("UserEvent", UserEvent="X", A="1")) is not None


headers = st.one_of(
    st.sampled_from(["Event", "event", "Channel", "Cause", "ChannelState", "Priority",
                     "UserEvent", "Reason", "DurationMs", "BridgeNumChannels", "Value"]),
    st.text(max_size=20))
names = st.one_of(st.sampled_from(
    ["Newchannel", "Newstate", "Hangup", "DialBegin", "DialEnd", "BridgeEnter", "BridgeLeave",
     "ContactStatus", "DeviceStateChange", "OriginateResponse", "MusicOnHoldStart",
     "MusicOnHoldStop", "DTMFBegin", "DTMFEnd", "VarSet", "UserEvent", "FullyBooted",
     "Rename"]), st.text(max_size=20))
values = st.one_of(st.text(max_size=30), st.lists(st.text(max_size=10), max_size=3))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(headers, values, max_size=12), st.one_of(st.none(), names))
def test_parse_event_never_raises(fields, name):
    if name is not None:
        fields = {**fields, "Event": name}
    e = parse_event(fields)
    assert isinstance(e, AmiEvent)
    assert isinstance(e.name, str)
    assert dict(e.fields) == fields
    for f in dataclasses.fields(e):
        value = getattr(e, f.name)
        if f.metadata.get("header"):
            assert value is None or isinstance(value, int if f.metadata["int"] else str)
