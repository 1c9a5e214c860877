"""A browser phone's contact (SIP over WebSocket) that goes mid-call is a phone lost: the tab
closed or crashed and no BYE comes. A SIP phone's clean unregister stays no loss
(test_runtime_faults.test_phone_unregistered_is_no_phone_lost)."""
from __future__ import annotations

from tests.unit.test_runtime import Env, env, start  # noqa: F401

WS_CONTACT = "sip:k3j2b1@df7jal23ls0d.invalid;transport=ws"


def _contact(e: Env, status: str) -> None:
    e.emit(Event="ContactStatus", EndpointName="1001", AOR="1001", URI=WS_CONTACT,
           ContactStatus=status)


async def test_a_browser_phone_gone_with_its_websocket_mid_call_is_a_phone_lost(env):
    await start(env)
    _contact(env, "Created")
    env.rt.login("1001")
    await env.arrive("c1")
    leg = env.leg("1001")
    env.ringing(leg)
    env.answered(leg)
    await env.settle()
    assert env.state("1001") == "talking"
    env.ami.clear()
    _contact(env, "Removed")
    await env.settle()
    assert env.ami.sent("Redirect") == [{"Channel": "PJSIP/acd-caller-c1", "Context": "acd-queue",
                                         "Exten": "s", "Priority": 1}]
    assert (env.state("1001"), env.rt.agent("1001")["reason"]) == ("break", "phone lost")
    call = await env.store.get_call("c1")
    assert [e["detail"]["detail"] for e in call["events"] if e["kind"] == "requeued"] == [
        "unregistered"]
