"""The server's AMI session asks Asterisk for only the events it reads (AMI Filter with a
structured MatchCriteria, Asterisk 22.1+): proved on the real Asterisk, beside an
unfiltered session that sees everything."""
from __future__ import annotations

import asyncio

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


async def test_a_filtered_session_gets_only_the_events_it_asked_for(asterisk, test_config):
    everything, all_seen = await _client(test_config)
    filtered, got = await _client(test_config, AMI_EVENTS)
    await asyncio.sleep(0.2)
    del got[:]                   # the logins' own events (FullyBooted...) come before filters
    try:
        # A Local channel pair: one side runs UserEvent twice (ours and another), the other
        # plays a goodbye and hangs up: Newchannel, Newexten, VarSet, UserEvent, Hangup...
        await everything.action(
            "Originate", Channel="Local/hangup@acd-dest", Application="UserEvent",
            Data="AcdVoicemail,Call: x-filter,Mailbox: 1,File: none", Async="true")
        await everything.action(
            "Originate", Channel="Local/hangup@acd-dest", Application="UserEvent",
            Data="SomethingElse,Call: x-filter", Async="true")
        for _ in range(400):
            if sum(e.name == "Hangup" for e in got) >= 4:
                break
            await asyncio.sleep(0.025)
        await asyncio.sleep(0.3)     # anything filtered wrongly would have come by now
    finally:
        await filtered.close()
        await everything.close()
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
