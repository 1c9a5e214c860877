"""Where the runtime sends a caller it does not queue: ``ivr:FLOW`` starts that flow (the flow
runner reads ``ACD_FLOW``; a target that is not a flow name is not passed on), ``voicemail:BOX`` leaves a message, ``hangup`` ends the call."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from acd import config as configmod
from acd.core import Acd
from acd.web.hub import Hub
from acd.runtime import AcdRuntime
from acd.runtime.queue import SentOn
from acd.store.db import Store, migrate_async
from tests.unit.test_runtime import AGENTS, Clock, Env, FakeAmi, start

HOLIDAY = "2027-01-15"


@pytest.fixture
async def env(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'acd.db'}"
    await migrate_async(url)
    store = Store(url)
    groups = tuple(
        configmod.GroupConfig(name=f"closed{i}", number=f"710{i}", members={"1001": 1},
                              holidays=(HOLIDAY,), closed_destination=dest)
        for i, dest in enumerate(["ivr:payments", "ivr:bad name!", "hangup"])) + (
        configmod.GroupConfig(name="timed", number="7110", members={"1002": 1}, max_wait=30,
                              max_wait_destination="voicemail:late"),)
    cfg = configmod.Config(agents=AGENTS, groups=groups)
    ami, hub, clock = FakeAmi(), Hub(), Clock()
    rt = AcdRuntime(Acd(configmod.core_groups(cfg)), ami, store, hub,
                    endpoints={a.id: a.id for a in AGENTS}, groups=groups, clock=clock,
                    customer_dial="PJSIP/testcust{number}@acd-trunk", hotline_number="7000")
    rt.attach()
    await rt.start()
    clock.now = datetime(2027, 1, 15, 12, tzinfo=timezone.utc).timestamp()
    e = Env(rt, ami, store, hub, clock)
    await start(e, "1001")
    yield e
    await rt.stop()
    await store.close()


# Sent away on arrival: the queue script sends the caller on (SentOn), no AMI action.

async def test_ivr_destination_names_the_flow(env):
    assert await env.arrive("c1", group="closed0") == SentOn("acd-dest,ivr,1",
                                                             {"ACD_FLOW": "payments"})
    assert env.ami.sent("Setvar") == [] and env.ami.sent("Redirect") == []
    assert env.rt.call_info("c1")["end_reason"] == "closed"


async def test_a_flow_name_that_is_no_name_is_not_passed_on(env):
    # the runner's default flow for the number
    assert await env.arrive("c2", group="closed1") == SentOn("acd-dest,ivr,1", {})


async def test_hangup_destination(env):
    assert await env.arrive("c3", group="closed2") == SentOn("acd-dest,hangup,1", {})


async def test_a_caller_sent_on_while_waiting_is_redirected_over_ami(env):
    """Only a caller sent away on arrival is sent on by the queue script: one who waits
    (here past the group's maximum wait) is in Asterisk's hands, and goes by AMI."""
    assert await env.arrive("c4", group="timed") is True
    env.clock.now += 30
    env.rt.fire_timer("maxwait:c4")
    await env.settle()
    assert env.ami.sent("Setvar") == [{"Channel": "PJSIP/acd-caller-c4", "Variable": "ACD_VM_BOX",
                                       "Value": "late"}]
    assert env.ami.sent("Redirect") == [{"Channel": "PJSIP/acd-caller-c4",
                                         "Context": "acd-voicemail", "Exten": "s", "Priority": 1}]
    assert env.rt.call_info("c4")["end_reason"] == "overflow"
