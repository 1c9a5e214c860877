"""The server's AMI session asks Asterisk for only the events it reads (AMI Filter with a
structured MatchCriteria, Asterisk 22.1+): proved on the real Asterisk, beside an
unfiltered session that sees everything."""
from __future__ import annotations

import asyncio
import contextlib

from acd.ami.client import AmiClient
from acd.runtime.ami_in import AMI_EVENTS


async def _client(cfg, event_filter=None):
    c = cfg.ami
    client = AmiClient(c.host, c.port, c.username, c.secret, action_timeout=10,
                       event_filter=event_filter)
    seen: list = []
    client.on_event(seen.append)
    await client.start(connect_timeout=15)
    return client, seen


@contextlib.asynccontextmanager
async def _sessions(cfg):
    """An unfiltered session and one with the server's filter (its login events dropped):
    (everything, all_seen, got)."""
    everything, all_seen = await _client(cfg)
    filtered, got = await _client(cfg, AMI_EVENTS)
    await asyncio.sleep(0.2)
    del got[:]                   # the logins' own events (FullyBooted...) come before filters
    try:
        yield everything, all_seen, got
        await asyncio.sleep(0.3)     # anything filtered wrongly would have come by now
    finally:
        await filtered.close()
        await everything.close()


async def _until(events, name: str, count: int) -> None:
    """Until ``count`` events named ``name`` are in ``events`` (10 s at most)."""
    for _ in range(400):
        if sum(e.name == name for e in events) >= count:
            return
        await asyncio.sleep(0.025)


async def test_a_filtered_session_gets_only_the_events_it_asked_for(asterisk, test_config):
    async with _sessions(test_config) as (everything, all_seen, got):
        # A Local channel pair: one side runs UserEvent twice (ours and another), the other
        # plays a goodbye and hangs up: Newchannel, Newexten, VarSet, UserEvent, Hangup...
        await everything.action(
            "Originate", Channel="Local/hangup@acd-dest", Application="UserEvent",
            Data="AcdVoicemail,Call: x-filter,Mailbox: 1,File: none", Async="true")
        await everything.action(
            "Originate", Channel="Local/hangup@acd-dest", Application="UserEvent",
            Data="SomethingElse,Call: x-filter", Async="true")
        await _until(got, "Hangup", 4)
    wanted = {e if isinstance(e, str) else e[0] for e in AMI_EVENTS}
    names = {e.name for e in got}
    all_names = {e.name for e in all_seen}
    assert {"Newchannel", "Hangup", "UserEvent"} <= names
    assert names <= wanted, names - wanted
    # The unfiltered session saw what the filter kept out.
    assert {"Newexten", "VarSet"} <= all_names
    user_events = {e.fields.get("UserEvent") for e in got if e.name == "UserEvent"}
    assert user_events == {"AcdVoicemail"}
    assert {e.fields.get("UserEvent") for e in all_seen if e.name == "UserEvent"} >= {
        "AcdVoicemail", "SomethingElse"}


async def test_holding_bridge_leaves_and_states_but_ringing_are_filtered_out(asterisk,
                                                                           test_config):
    """A channel that waits in a holding bridge (BridgeWait) and hangs up there: the filtered
    session hears it enter (a leg's "up") and hang up, but neither its leaving the holding
    bridge nor its state changes other than Ringing; the unfiltered session hears all."""
    async with _sessions(test_config) as (everything, all_seen, got):
        # Local/s@acd-agent: its ;2 side waits in [acd-agent]'s holding bridge; the ;1 side
        # waits half a second and hangs up, which ends the ;2 side in the bridge.
        await everything.action("Originate", Channel="Local/s@acd-agent", Application="Wait",
                                Data="0.5", Async="true")
        await _until(got, "Hangup", 2)

    def holding(events, name):
        return [e for e in events if e.name == name
                and e.fields.get("BridgeCreator") == "BridgeWait"
                and str(e.fields.get("Channel", "")).startswith("Local/s@acd-agent")]
    assert holding(all_seen, "BridgeEnter") and holding(all_seen, "BridgeLeave")
    assert holding(got, "BridgeEnter")
    assert not holding(got, "BridgeLeave")
    assert sum(e.name == "Hangup" for e in got) >= 2
    assert any(e.name == "Newstate" and e.fields.get("ChannelState") != "5" for e in all_seen)
    assert all(e.fields.get("ChannelState") == "5" for e in got if e.name == "Newstate")


async def test_only_failed_originates_and_our_legs_hangup_requests_come_through(asterisk,
                                                                              test_config):
    """An Originate's outcome reaches the server only when it failed (or for a monitoring
    channel), a hangup request only for channels whose uniqueid starts with ``acd-`` (our
    legs): every caller's and phone's hangup requests and every answered Originate stay in
    Asterisk."""
    async with _sessions(test_config) as (everything, all_seen, got):
        for uid in ("acd-filter-1", "other-filter-1"):
            await everything.action("Originate", Channel="Local/s@acd-agent", Application="Wait",
                                    Data="5", Async="true", ChannelId=uid,
                                    OtherChannelId=uid.replace("-1", "-2"))
        await everything.action("Originate", Channel="PJSIP/no-such-endpoint",
                                Application="Wait", Data="1", Async="true",
                                ChannelId="acd-filter-failed")
        await _until(all_seen, "OriginateResponse", 3)
        channels = {e.fields.get("Uniqueid"): e.fields.get("Channel") for e in all_seen
                    if e.name == "Newchannel"}
        for uid in ("acd-filter-1", "other-filter-1"):
            await everything.action("Hangup", Channel=channels[uid])
        await _until(got, "Hangup", 4)

    def of(events, name):
        return [(e.fields.get("Uniqueid"), e.fields.get("Response")) for e in events
                if e.name == name]
    # The unfiltered session heard both answered Originates and the failed one ...
    assert {r for _, r in of(all_seen, "OriginateResponse")} == {"Success", "Failure"}
    # ... the filtered one the failure alone.
    assert [r for _, r in of(got, "OriginateResponse")] == ["Failure"]
    # (The hangup request shows on one side of each Local pair, the -1 or the -2.)
    requests_all = {u for u, _ in of(all_seen, "SoftHangupRequest") + of(all_seen, "HangupRequest")}
    requests = {u for u, _ in of(got, "SoftHangupRequest") + of(got, "HangupRequest")}
    assert any(u.startswith("other-filter-") for u in requests_all), requests_all
    assert any(u.startswith("acd-filter-") for u in requests), requests
    assert all(u.startswith("acd-") for u in requests), requests
    assert {"acd-filter-1", "other-filter-1"} <= {u for u, _ in of(got, "Hangup")}
