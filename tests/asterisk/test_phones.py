"""Real agent phones: baresip registers to Asterisk, calls the hotline and keys in digits, and
answers calls Asterisk places to it, with RTP both ways. Everything stays on 127.0.0.1."""
from __future__ import annotations

import pytest

from acd.ami.client import AmiActionError
from tests.asterisk.calls import field
from tests.asterisk.phones import PhoneError, SoftPhone
from tests.asterisk.test_first_call import _stored


@pytest.fixture
async def phones(asterisk, test_config):
    """Start phones registered as the configured agents; all are stopped after the test."""
    started: list[SoftPhone] = []
    a = test_config.asterisk

    async def start(agent_id: str, password: str | None = None, **kw) -> SoftPhone:
        agent = next(ag for ag in test_config.agents if ag.id == agent_id)
        phone = SoftPhone(agent.id, agent.password if password is None else password,
                          a.sip_host, a.sip_port, **kw)
        started.append(phone)
        await phone.start()
        return phone

    yield start
    for phone in started:
        await phone.stop()


async def contacts(ami) -> list[dict]:
    try:
        return await ami.action_list("PJSIPShowContacts")
    except AmiActionError as e:
        if "No Contacts found" in e.message:
            return []
        raise


def at_phone(phone: SoftPhone) -> str:
    """How Asterisk names the phone's address in a contact URI."""
    return f"@127.0.0.1:{phone.sip_port}"


async def rtp_addresses(ami, channel: str) -> tuple[str, str]:
    """(Asterisk's RTP address, where Asterisk sends RTP to) for a channel."""
    src = await ami.action("Getvar", Channel=channel, Variable="CHANNEL(rtp,src)")
    dest = await ami.action("Getvar", Channel=channel, Variable="CHANNEL(rtp,dest)")
    return str(src.get("Value")), str(dest.get("Value"))


def host(addr: str) -> str:
    return addr.rpartition(":")[0]


def assert_sdp_on_loopback(phone: SoftPhone) -> None:
    """The offer and the answer (o= and c= lines each) name 127.0.0.1 only. Asterisk's
    RTP address alone cannot show this: with rtp_symmetric it follows where packets come from."""
    addresses = phone.sdp_addresses()
    assert len(addresses) >= 4 and set(addresses) == {"127.0.0.1"}, addresses


async def test_agent_phone_registers_and_a_wrong_password_is_refused(phones, ami, test_config):
    # A wrong password: Asterisk refuses the digest, baresip reports REGISTER_FAIL, no contact.
    a = test_config.asterisk
    impostor = SoftPhone("1001", "not-the-password", a.sip_host, a.sip_port)
    try:
        with pytest.raises(PhoneError, match="401 Unauthorized"):
            await impostor.start()
    finally:
        await impostor.stop()
    await ami.events.wait_for(
        lambda e: e.name == "ChallengeResponseFailed" and field(e, "AccountID") == "1001"
        and field(e, "RemoteAddress") == f"IPV4/UDP/127.0.0.1/{impostor.sip_port}",
        what="Asterisk refusing the wrong password")
    assert [ev["type"] for ev in impostor.events if ev["type"].startswith("REGISTER")] == [
        "REGISTERING", "REGISTER_FAIL"]
    assert not [c for c in await contacts(ami) if at_phone(impostor) in c["Uri"]]

    # The right password: registered, qualified and reachable, at its loopback address.
    phone = await phones("1001")
    await ami.events.wait_for(
        lambda e: e.name == "ContactStatus" and field(e, "AOR") == "1001"
        and at_phone(phone) in field(e, "URI") and field(e, "ContactStatus") == "Reachable",
        what="agent 1001's phone reachable")
    mine = [c for c in await contacts(ami) if c["Endpoint"] == "1001"]
    assert len(mine) == 1
    assert at_phone(phone) in mine[0]["Uri"]
    assert (mine[0]["ViaAddr"], mine[0]["ViaPort"]) == ("127.0.0.1", str(phone.sip_port))
    assert mine[0]["Status"] == "Reachable"
    assert mine[0]["UserAgent"].startswith("baresip")
    assert not [c for c in await contacts(ami) if at_phone(impostor) in c["Uri"]]

    # Unregistering removes the contact.
    await phone.unregister()
    await phone.wait_event("UNREGISTERING")
    await ami.events.wait_for(
        lambda e: e.name == "ContactStatus" and at_phone(phone) in field(e, "URI")
        and field(e, "ContactStatus") == "Removed", what="the contact removed")
    assert not [c for c in await contacts(ami) if c["Endpoint"] == "1001"]


async def test_agent_phone_calls_the_hotline_and_keys_reach_the_ivr(server, phones, ami, test_config):
    """An agent's own call to the hotline: the agents' dialplan context must route the hotline
    number to the IVR (Asterisk answers 403 Forbidden otherwise)."""
    phone = await phones("1001", sip_trace=True)
    a = test_config.asterisk
    call_id = await phone.dial(f"sip:{test_config.hotline.number}@{a.sip_host}:{a.sip_port}")
    leg = await ami.events.wait_for(
        lambda e: e.name == "Newchannel" and field(e, "Channel").startswith("PJSIP/1001-"),
        what="the phone's channel")
    channel, uniqueid = field(leg, "Channel"), field(leg, "Uniqueid")
    await phone.wait_established(call_id)
    # The IVR answered, played its prompt and waits for digits.
    await ami.events.wait_for(
        lambda e: e.name == "AGIExecStart" and field(e, "Channel") == channel
        and field(e, "Command").upper().startswith("GET DATA"), what="the IVR's GET DATA")
    src, dest = await rtp_addresses(ami, channel)
    assert (host(src), host(dest)) == ("127.0.0.1", "127.0.0.1")
    assert_sdp_on_loopback(phone)

    await phone.send_dtmf("1234#")
    for digit in "1234#":  # RFC 4733 events from the phone, each received by Asterisk
        await ami.events.wait_for(
            lambda e, d=digit: e.name == "DTMFEnd" and field(e, "Channel") == channel
            and field(e, "Digit") == d and field(e, "Direction") == "Received",
            what=f"DTMF {digit} from the phone")
    # The IVR stored the keys and reads them back; the agent hangs up meanwhile.
    await ami.events.wait_for(
        lambda e: e.name == "AGIExecStart" and field(e, "Channel") == channel
        and field(e, "Command").upper().startswith("SAY DIGITS 1234"), what="the IVR reading back")
    await phone.hangup()
    await phone.wait_event("CALL_CLOSED", id=call_id)
    await ami.events.wait_for(lambda e: e.name == "Hangup" and field(e, "Channel") == channel,
                              what="the hotline leg's hangup")

    call = await _stored(server, uniqueid)
    assert call["did"] == test_config.hotline.number
    assert call["caller_number"] == "1001"
    assert [(k["node"], k["keys"]) for k in call["key_trail"]] == [("collect_number", "1234")]
    assert call["end_reason"] == "caller_hangup"


async def test_asterisk_calls_an_auto_answer_phone_and_rtp_flows_both_ways(phones, ami):
    phone = await phones("1002", answer="auto", sip_trace=True)
    r = await ami.action("Originate", Channel="PJSIP/1002", Application="Playback",
                         Data="demo-congrats", Async="true")
    done = await ami.events.wait_for(
        lambda e: e.name == "OriginateResponse" and field(e, "ActionID") == r.action_id,
        what="the originate's outcome")
    assert (field(done, "Response"), field(done, "Reason")) == ("Success", "4")  # 4: answered
    channel = field(done, "Channel")
    assert channel.startswith("PJSIP/1002-")
    established = await phone.wait_established()
    assert established["direction"] == "incoming"

    # Both ends of the media are on loopback (Asterisk's end and the address the phone offered).
    src, dest = await rtp_addresses(ami, channel)
    assert (host(src), host(dest)) == ("127.0.0.1", "127.0.0.1")
    assert_sdp_on_loopback(phone)

    # The phone receives Asterisk's RTP ...
    await phone.wait_event("CALL_RTPESTAB", param="audio")
    report = await phone.wait_event("CALL_RTCP", param="audio")  # Asterisk's sender report
    assert report["rtcp_stats"]["rx"]["sent"] > 0   # packets the phone received
    assert report["rtcp_stats"]["tx"]["sent"] > 0   # packets the phone sent
    # ... and Asterisk the phone's, with the phone's reports coming from loopback too.
    theirs = await ami.events.wait_for(
        lambda e: e.name == "RTCPReceived" and field(e, "Channel") == channel
        and int(field(e, "SentPackets") or 0) > 0, what="the phone's RTCP sender report")
    assert host(field(theirs, "From")) == "127.0.0.1"
    stats = (await ami.action("Command", Command="pjsip show channelstats")).get("Output")
    name = channel.removeprefix("PJSIP/")
    row = next((line.split() for line in (stats if isinstance(stats, list) else [stats])
                if name in line.split()), None)
    assert row, f"{name} not in pjsip show channelstats: {stats}"
    i = row.index(name)  # [BridgeId] ChannelId UpTime Codec RxCount Lost Pct Jitter TxCount ...
    rx_count, tx_count = int(row[i + 3]), int(row[i + 7])
    assert rx_count > 0 and tx_count > 0, row

    try:
        await ami.action("Hangup", Channel=channel)
    except AmiActionError:
        pass  # the prompt ended first: Asterisk hung up itself
    qos = await ami.events.wait_for(
        lambda e: e.name == "VarSet" and field(e, "Channel") == channel
        and field(e, "Variable") == "RTPAUDIOQOS", what="the call's RTP statistics")
    counts = dict(kv.split("=", 1) for kv in field(qos, "Value").split(";"))
    assert int(counts["rxcount"]) > 0 and int(counts["txcount"]) > 0, counts
    await phone.wait_event("CALL_CLOSED")


async def test_a_phone_whose_port_was_taken_meanwhile_starts_on_other_ports(
        asterisk, test_config, monkeypatch):
    """The ports are picked free and bound by baresip a moment later; one taken in between
    (here on purpose) makes baresip exit with EADDRINUSE, and the phone starts again."""
    import socket

    import acd.tools.softphone as softphone
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    real, picks = softphone._free_ports, []

    def pick():
        picks.append(real() if picks else (port, real()[1]))
        return picks[-1]
    monkeypatch.setattr(softphone, "_free_ports", pick)
    agent = next(ag for ag in test_config.agents if ag.id == "1001")
    a = test_config.asterisk
    phone = SoftPhone("1001", agent.password, a.sip_host, a.sip_port)
    try:
        await phone.start()
        assert len(picks) == 2 and picks[0][0] == port and phone.sip_port != port
        assert phone.running
    finally:
        await phone.stop()
        taken.close()
