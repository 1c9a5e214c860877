"""The newcomer's phones on real calls, as the README's quick start runs them: `acd call` (a
caller's phone, never an agent) dials a skill group; `acd phone 1002 --answer manual` rings
until its a key; keys send DTMF and hang up. During the call every UDP socket of both baresip
processes is on loopback (their RTP and RTCP included, which baresip itself binds to 0.0.0.0)."""
from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest

from acd.ami.client import AmiActionError
from tests.asterisk.acd_fixtures import acd_config, acd_server, after, agents, mark, stored  # noqa: F401
from tests.asterisk.calls import field

WAIT = 20.0


class Cli:
    """`acd ...` as a person runs it in a terminal: lines out, keys in (a pipe)."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name
        self.lines: list[str] = []

    @classmethod
    async def start(cls, config: str, *args: str) -> "Cli":
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "acd.cli", "-c", config, *args,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return cls(proc, " ".join(args))

    async def line(self, pattern: str, timeout: float = WAIT) -> str:
        """The next line (after those already read) that matches ``pattern``."""
        async def read() -> str:
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    raise AssertionError(f"acd {self.name} ended before {pattern!r}: {self.lines}")
                text = raw.decode(errors="replace").rstrip("\n")
                self.lines.append(text)
                if re.search(pattern, text):
                    return text
        try:
            return await asyncio.wait_for(read(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"acd {self.name}: no line {pattern!r} within {timeout}s: "
                                 f"{self.lines}") from None

    async def key(self, keys: str) -> None:
        self.proc.stdin.write(keys.encode() + b"\n")
        await self.proc.stdin.drain()

    async def exited(self) -> int:
        rest = await asyncio.wait_for(self.proc.stdout.read(), WAIT)
        self.lines += rest.decode(errors="replace").splitlines()
        return await asyncio.wait_for(self.proc.wait(), WAIT)

    async def close(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), WAIT)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()


def baresip_of(cli: Cli) -> int:
    """The pid of the baresip a CLI started (its child)."""
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:]
            if comm == "baresip" and int(rest.split()[1]) == cli.proc.pid:
                return int(d.name)
    raise AssertionError(f"no baresip started by acd {cli.name}")


def udp_sockets(pid: int) -> list[tuple[str, int]]:
    """(local address, port) of each UDP socket of a process, as `ss -uanp` shows them."""
    out = subprocess.run(["ss", "-uanpH"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        if f"pid={pid}," in line:
            local = line.split()[3]
            host, _, port = local.rpartition(":")
            found.append((host.strip("[]"), int(port)))
    return found


async def rtp_dest_port(ami, channel: str) -> int:
    """The port Asterisk sends the channel's RTP to: the phone's RTP socket."""
    dest = await ami.action("Getvar", Channel=channel, Variable="CHANNEL(rtp,dest)")
    return int(str(dest.get("Value")).rpartition(":")[2])


@pytest.fixture
async def clis():
    started: list[Cli] = []

    async def start(config: str, *args: str) -> Cli:
        cli = await Cli.start(config, *args)
        started.append(cli)
        return cli
    yield start
    for cli in started:
        await cli.close()


async def test_a_caller_rings_an_agent_who_answers_with_a_key_all_media_on_loopback(
        acd_server, acd_config, test_config, agents, clis, ami):
    config = str(test_config.source)
    agents.login("1002")
    since = agents.mark("1002")
    agent = await clis(config, "phone", "1002", "--answer", "manual")
    assert "rings until you press a" in await agent.line(r"^registered as agent 1002 at ")
    assert "a answer, h hang up" in await agent.line(r"^keys: ")
    await agents._watch("1002").wait(lambda m: m["type"] == "state" and m["reachable"], since,
                                     what="agent 1002's phone reachable")

    # The caller's phone: group sales (7101) straight into its queue; members 1001-1003, only
    # 1002 logged in.
    at = mark(ami)
    caller = await clis(config, "call", "7101", "--from", "13800138000", "--tone-hz", "660")
    await caller.line(r"^calling 7101 as caller 13800138000 \(a customer, not an agent\)")
    new = await after(ami, at, lambda e: e.name == "Newchannel"
                      and field(e, "Channel").startswith("PJSIP/acd-caller-"), "the caller's channel")
    caller_channel = field(new, "Channel")
    assert field(new, "CallerIDNum") == "13800138000"
    await caller.line(r"^call to 7101 established")

    # The agent's phone rings and stays ringing: the ACD shows the agent ringing meanwhile.
    ringing = await agents.wait_state("1002", "ringing", since)
    assert await agent.line(r"^ringing: call from ") == \
        "ringing: call from sip:13800138000@127.0.0.1 (press a to answer)"   # as the README says
    leg = await after(ami, at, lambda e: e.name == "Newstate" and field(e, "Channel").startswith(
        "PJSIP/1002-") and field(e, "ChannelStateDesc") == "Ringing", "agent 1002's phone ringing")
    agent_channel = field(leg, "Channel")
    # Keys while waiting: Asterisk (the queue's holding bridge) receives them as RFC 4733 events.
    await caller.key("4")
    await caller.line(r"^sent DTMF 4")
    await after(ami, at, lambda e: e.name == "DTMFEnd" and field(e, "Channel") == caller_channel
                and field(e, "Digit") == "4" and field(e, "Direction") == "Received",
                "the caller's 4")
    await asyncio.sleep(2)      # a person looking at the screen pop; nothing answers meanwhile
    assert srv_state(acd_server, "1002") == "ringing", ringing
    assert not [e for e in ami.events.events if e.name == "Newstate" and field(e, "Channel") ==
                agent_channel and field(e, "ChannelStateDesc") == "Up"]

    # Never an agent: not among the agents, not on the wall board, no registration.
    assert "13800138000" not in acd_server.runtime.agents()
    contacts = await pjsip_contacts(ami)
    assert not [c for c in contacts if "13800138000" in c.get("Uri", "")]

    await agent.key("a")
    await agents.wait_state("1002", "talking", since)
    await agent.line(r"^call established: ")

    # Every UDP socket of both phones is on loopback, the RTP sockets Asterisk sends to included.
    for cli, channel in ((agent, agent_channel), (caller, caller_channel)):
        socks = udp_sockets(baresip_of(cli))
        port = await rtp_dest_port(ami, channel)
        assert ("127.0.0.1", port) in socks, (port, socks)          # RTP
        assert ("127.0.0.1", port + 1) in socks, (port, socks)      # RTCP
        assert {h for h, _ in socks} <= {"127.0.0.1", "::1"}, socks

    # Keys in the conversation: digits reach the other phone; h hangs up.
    await caller.key("5")       # in a bridge Asterisk relays the RTP events to the agent's phone
    await caller.line(r"^sent DTMF 5")
    await agent.line(r"^the other side keyed 5")
    await agent.key("h")
    await after(ami, at, lambda e: e.name == "Hangup" and field(e, "Channel") == agent_channel,
                "the agent's hangup")
    await caller.line(r"^call closed: ")
    assert await caller.exited() == 0              # the caller's phone ends with its call
    await agent.line(r"^call closed: ")
    await agent.key("q")
    assert await agent.exited() == 0

    call = await stored(acd_server, field(new, "Uniqueid"), ended=True)
    assert call["caller_number"] == "13800138000"
    assert call["skill_group"] == "sales"
    assert [leg["agent_id"] for leg in call["legs"]] == ["1002"]


def srv_state(srv, agent_id: str) -> str:
    return srv.runtime.agent(agent_id)["state"]


async def pjsip_contacts(ami) -> list[dict]:
    try:
        return await ami.action_list("PJSIPShowContacts")
    except AmiActionError as e:
        if "No Contacts found" in e.message:
            return []
        raise


async def test_a_phone_answers_by_itself_after_the_given_seconds(asterisk, test_config, clis, ami):
    phone = await clis(str(test_config.source), "phone", "1001", "--answer-after", "1.5")
    assert "answers 1.5 s after the ring" in await phone.line(r"^registered as agent 1001")
    at = mark(ami)
    r = await ami.action("Originate", Channel="PJSIP/1001", Application="Echo", Async="true")
    await phone.line(r"^ringing: call from ")
    ring = await after(ami, at, lambda e: e.name == "Newstate" and field(e, "Channel").startswith(
        "PJSIP/1001-") and field(e, "ChannelStateDesc") == "Ringing", "the phone ringing")
    done = await after(ami, at, lambda e: e.name == "OriginateResponse"
                       and field(e, "ActionID") == r.action_id, "the originate's outcome")
    assert field(done, "Reason") == "4"      # answered, by the phone itself
    await phone.line(r"^call established: ")
    assert ami.events.events.index(ring) < ami.events.events.index(done)
    await phone.key("h")
    await phone.line(r"^call closed: ")
    await phone.key("q")
    assert await phone.exited() == 0

