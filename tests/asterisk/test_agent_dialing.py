"""What an agent's own phone may call: the hotline, every skill group's number and every IVR
flow's number (a newcomer tries them from the phone they registered); no other number: an
agent's phone is never a way out."""
from __future__ import annotations

import pytest

from tests.asterisk.acd_fixtures import acd_config  # noqa: F401
from tests.asterisk.calls import field
from tests.asterisk.phones import PhoneError, SoftPhone


@pytest.fixture
async def phone_1003(acd_config):  # noqa: F811
    agent = next(a for a in acd_config.agents if a.id == "1003")
    a = acd_config.asterisk
    phone = SoftPhone(agent.id, agent.password, a.sip_host, a.sip_port)
    await phone.start()
    yield phone, f"{a.sip_host}:{a.sip_port}"
    await phone.stop()


async def test_an_agents_phone_reaches_a_skill_groups_number(phone_1003, ami):
    """`acd phone 1001 --dial 7001` was refused (403): agents could dial the hotline only."""
    phone, at = phone_1003
    call_id = await phone.dial(f"sip:7101@{at}")              # skill group "sales"
    queued = await ami.events.wait_for(
        lambda e: e.name == "Newexten" and field(e, "Channel").startswith("PJSIP/1003-")
        and field(e, "Context") == "acd-queue", what="the agent's call in the queue")
    assert field(queued, "Channel").startswith("PJSIP/1003-")
    await phone.wait_established(call_id)                     # the queue answers (music)
    await phone.hangup()
    await phone.wait_event("CALL_CLOSED", id=call_id)


async def test_any_other_number_is_refused(phone_1003, ami):
    phone, at = phone_1003
    call_id = await phone.dial(f"sip:5551234@{at}")
    with pytest.raises(PhoneError, match="403"):
        await phone.wait_established(call_id)
