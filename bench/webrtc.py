"""The measure ``webrtc``: what a browser phone costs Asterisk, beside a SIP phone.

Three arms in turn on the bench's Asterisk, each ``calls`` concurrent calls held ``hold``
seconds: agents on SIP phones (baresip, G.711), agents on browser phones with
``asterisk.browser_codecs: [ulaw]`` and with ``[opus]`` (one Chromium, one page per agent,
fake media: a tone as the microphone; each page logs in, chooses "this browser" as its phone,
goes idle and answers on its Answer button). The callers are the loopback trunk's (G.711,
sending a tone), so each call is three channels in Asterisk: the caller's leg out, its leg in
(the ACD's queue, then bridged) and the agent's leg; what differs between arms is the agent's
leg alone.

Asterisk's CPU (its process in /proc) over the held window, minus the same process's CPU over
an idle window just before (agents registered, no call), divided by the calls: ms of CPU per
second of call, and % of one core per call. Our server's and Chromium's CPU likewise, for
context. Each arm checks that its calls were up with the codec it expects on every agent leg
(``core show channel``: NativeFormats), else it fails with ``bench.webrtc_codec``.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import time
from pathlib import Path
from typing import Any, Callable

from acd.errors import UserError
from acd.tools import load, server_api
from acd.tools.softphone import write_tone
from bench import instance as inst
from bench.measures import until_available

#: The arms, in the order they run: (name, what the agents' phones are, browser_codecs,
#: the codec every agent leg must show).
ARMS = (("sip", "SIP phones (baresip), G.711", None, "ulaw"),
        ("browser_g711", "browser phones, G.711", ("ulaw",), "ulaw"),
        ("browser_opus", "browser phones, Opus", ("opus",), "opus"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-quic", "--use-fake-ui-for-media-stream",
                  "--use-fake-device-for-media-stream", "--allow-loopback-in-peer-connection",
                  "--autoplay-policy=no-user-gesture-required"]
PAGE_HZ, CALLER_HZ = 1000, 440          # the pages' microphone tone; the callers' tone
WAIT = 60.0                             # bound on every wait for a page or a call


# =========================================================================== pure parts

_FORMATS = re.compile(r"^\s*NativeFormats:\s*\(([^)]*)\)", re.M)


def native_formats(show_channel: str) -> list[str]:
    """The codecs of ``core show channel NAME``'s ``NativeFormats: (opus)`` line ([] when
    the output has none: the channel is gone)."""
    m = _FORMATS.search(show_channel)
    return [c for c in re.split(r"[|,\s]+", m.group(1)) if c] if m else []


def codec_problems(legs: dict[str, list[str]], expected: str, calls: int) -> list[str]:
    """What is wrong with an arm's agent legs (leg name -> NativeFormats): fewer legs than
    calls, or a leg whose formats are not exactly the expected codec."""
    out = []
    if len(legs) < calls:
        out.append(f"{len(legs)} agent legs up of {calls} calls")
    out += [f"{name}: {fmts or 'gone'} instead of {expected}"
            for name, fmts in sorted(legs.items()) if fmts != [expected]]
    return out


def per_call(held: dict[str, float | None], idle: dict[str, float | None], held_s: float,
             idle_s: float, calls: int) -> dict[str, Any]:
    """Each process's CPU per call: (CPU seconds per second held - per second idle) / calls,
    as ms of CPU per second of call and as % of one core per call (the same figure / 10)."""
    out: dict[str, Any] = {}
    for k in held:
        h, i = held.get(k), idle.get(k)
        if h is None or i is None or held_s <= 0 or idle_s <= 0 or calls <= 0:
            out[k] = None
            continue
        ms = (h / held_s - i / idle_s) / calls * 1000
        out[k] = {"ms_per_call_second": round(ms, 3), "core_percent_per_call": round(ms / 10, 3),
                  "held_cpu_s": round(h, 3), "idle_cpu_s": round(i, 3)}
    return out


def ratios(arms: dict[str, dict[str, Any]], base: str = "sip",
           proc: str = "asterisk") -> dict[str, float | None]:
    """Each arm's Asterisk CPU per call over the SIP phone arm's."""
    def ms(a: str) -> float | None:
        d = ((arms.get(a) or {}).get("per_call") or {}).get(proc)
        return d["ms_per_call_second"] if d else None
    b = ms(base)
    return {a: (round(ms(a) / b, 2) if b and b > 0 and ms(a) is not None else None)
            for a in arms}


def deltas(a: dict[str, float | None], b: dict[str, float | None]) -> dict[str, float | None]:
    return {k: (None if a.get(k) is None or b.get(k) is None else b[k] - a[k])  # type: ignore[operator]
            for k in a}


# =========================================================================== processes

def chromium_pids(root: int | None = None) -> list[int]:
    """Chromium's processes under this one (Playwright's driver starts them): every
    descendant whose name begins with ``chrom``."""
    root = root or os.getpid()
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d.name))
        names[int(d.name)] = name
    out, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if names.get(pid, "").startswith("chrom"):
            out.append(pid)
        todo += children.get(pid, [])
    return out


def cpu_now(bench: Any) -> dict[str, float | None]:
    """CPU seconds so far: Asterisk, our server, Chromium (0 when none runs)."""
    apid = bench.asterisk.pid() if bench.asterisk else None
    return {"asterisk": inst.cpu_seconds(apid) if apid else None,
            "server": (inst.cpu_seconds(bench.server.pid)
                       if bench.server and bench.server.alive() else None),
            "chromium": inst.cpu_seconds_many(chromium_pids())}


# =========================================================================== browser pages

class Pages:
    """One Chromium, one page per agent: logged in, the browser chosen as the phone, idle,
    answering every call on its Answer button."""

    def __init__(self, base: str, agents: dict[str, str], tone: Path) -> None:
        self.base, self.agents, self.tone = base, agents, tone    # agent id -> web password
        self.pw: Any = None
        self.browser: Any = None
        self.pages: dict[str, Any] = {}
        self.answered: dict[str, int] = {}
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        from playwright.async_api import async_playwright
        if not Path(CHROMIUM).exists():
            raise UserError("bench.chromium", f"{CHROMIUM} is missing (make setup installs it)")
        write_tone(self.tone, 600, hz=PAGE_HZ, rate=48000)
        self.pw = await async_playwright().start()
        self.browser = await self.pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_FLAGS + [f"--use-file-for-fake-audio-capture={self.tone}"])
        for agent, password in self.agents.items():
            self.pages[agent] = await self._page(agent, password)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._answer(a, p)) for a, p in self.pages.items()]

    async def _page(self, agent: str, password: str) -> Any:
        from playwright.async_api import expect
        ms = WAIT * 1000
        ctx = await self.browser.new_context()
        await ctx.grant_permissions(["microphone"], origin=self.base)
        page = await ctx.new_page()
        await page.goto(self.base + "/agent")
        await page.fill("#username", agent)
        await page.fill("#password", password)
        await page.click("#login-button")
        await page.wait_for_url(self.base + "/agent", timeout=ms)
        await expect(page.locator("#conn")).to_have_text("live", timeout=ms)
        await page.click("#state-buttons button[data-state=idle]")
        await expect(page.locator("#agent-state")).to_have_text("idle", timeout=ms)
        await page.select_option("#phone-kind", "browser")
        await expect(page.locator("#reachable")).to_have_text("registered", timeout=ms)
        return page

    async def _answer(self, agent: str, page: Any) -> None:
        """Click Answer whenever the page rings (the Playwright click waits for the button
        to be visible and enabled)."""
        self.answered[agent] = 0
        while True:
            try:
                await page.click("#answer", timeout=3_600_000)
                self.answered[agent] += 1
            except asyncio.CancelledError:
                raise
            except Exception:          # the page closing at the end; or a click that raced
                if page.is_closed():
                    return
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.browser is not None:
            await self.browser.close()
        if self.pw is not None:
            await self.pw.stop()


# =========================================================================== the measure

async def agent_legs(bench: Any, agents: list[str]) -> dict[str, dict[str, Any]]:
    """The agents' legs now (channel name -> channel_info), ``PJSIP/<agent>-...``."""
    chans = await inst.channel_list(bench.ami)
    want = tuple(f"PJSIP/{a}-" for a in agents)
    return {c["channel"]: c for c in chans if c["channel"].startswith(want)}


async def codecs_of(bench: Any, legs: list[str]) -> dict[str, list[str]]:
    out = {}
    for name in legs:
        r = await bench.ami.action("Command", Command=f"core show channel {name}", timeout=15)
        text = r.get("Output", "") if hasattr(r, "get") else ""
        out[name] = native_formats(text if isinstance(text, str) else "\n".join(map(str, text)))
    return out


async def place_calls(bench: Any, number: str, n: int, run: int, hold: float) -> list[str]:
    """``n`` callers on the loopback trunk dial ``number``, each sending a tone; their
    channel ids (to hang them up)."""
    ids = []
    for i in range(n):
        cid = f"webrtc{run}-{i}-caller"
        await bench.ami.action("Originate", Channel=f"PJSIP/{number}@acd-trunk",
                               Context="acd-testcaller", Exten="tone", Priority=1,
                               CallerID=f"<1390000{run:02d}{i:02d}>", Async="true",
                               Variable=[f"HOLD_FOR={int(hold) + 120}", f"TONE_HZ={CALLER_HZ}"],
                               ChannelId=cid)
        ids.append(cid)
        await asyncio.sleep(0.3)        # callers a little apart, as they come
    return ids


async def wait_bridged(bench: Any, agents: list[str], timeout: float = WAIT) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        legs = await agent_legs(bench, agents)
        up = {k: v for k, v in legs.items() if v["bridge"] and v["state"] in ("Up", "6")}
        if len(up) >= len(agents):
            return up
        if time.monotonic() > deadline:
            raise UserError("bench.webrtc_calls", f"{len(up)} of {len(agents)} agents' calls "
                                                  f"up within {timeout:.0f} s: {sorted(legs)}")
        await asyncio.sleep(0.5)        # polling Asterisk's channels, bounded


async def held_arm(bench: Any, *, name: str, number: str, agents: list[str], expected: str,
                   hold: float, idle: float, run: int, say: Callable[[str], None]) -> dict[str, Any]:
    """The idle window, the calls, the held window, the codec check, the hang-up."""
    await bench.quiet()
    c0, t0 = cpu_now(bench), time.monotonic()
    await asyncio.sleep(idle)           # the idle window, measured
    c1, t1 = cpu_now(bench), time.monotonic()
    ids = await place_calls(bench, number, len(agents), run, hold)
    try:
        await wait_bridged(bench, agents)
        await asyncio.sleep(2.0)        # media settled (ICE, DTLS) before the window
        c2, t2 = cpu_now(bench), time.monotonic()
        await asyncio.sleep(hold)       # the held window, measured
        c3, t3 = cpu_now(bench), time.monotonic()
        legs = {k: v for k, v in (await agent_legs(bench, agents)).items() if v["bridge"]}
        formats = await codecs_of(bench, sorted(legs))
    finally:
        for cid in ids:
            try:
                await bench.ami.action("Hangup", Channel=cid)
            except Exception:           # already gone
                pass
    left = await inst.left_over(bench.ami, settle=bench.settle)
    problems = codec_problems(formats, expected, len(agents))
    held_s, idle_s = t3 - t2, t1 - t0
    out = {"calls": len(agents), "held_seconds": round(held_s, 2),
           "idle_seconds": round(idle_s, 2), "codec": expected,
           "agent_leg_formats": sorted({"|".join(f) for f in formats.values()}),
           "per_call": per_call(deltas(c2, c3), deltas(c0, c1), held_s, idle_s, len(agents)),
           "loadavg_after": [round(x, 2) for x in os.getloadavg()],
           "channels_left": None if left.get("left") is None else len(left["left"])}
    a = out["per_call"].get("asterisk") or {}
    say(f"  {name:13s} {len(agents)} calls held {held_s:.0f} s, agent legs "
        f"{out['agent_leg_formats']}: Asterisk {a.get('ms_per_call_second')} ms CPU per "
        f"call-second ({a.get('core_percent_per_call')} % of a core per call)")
    if problems:
        raise UserError("bench.webrtc_codec", f"{name}: " + "; ".join(problems[:10]))
    return out


async def measure(bench: Any, *, calls: int, hold: float, idle: float,
                  say: Callable[[str], None]) -> dict[str, Any]:
    """The three arms in turn (see the module's doc)."""
    s = bench.setup
    sip_agents = s.phone_ids()[:calls]
    browser_agents = s.browser_ids()
    if len(browser_agents) < calls:
        raise UserError("bench.setup", f"{len(browser_agents)} browser agents for {calls} calls")
    web_pw = {a.id: a.web_password for a in bench.cfg.agents}
    arms: dict[str, Any] = {}
    try:
        for run, (name, what, codecs, expected) in enumerate(ARMS, start=1):
            say(f"  arm {name}: {what}")
            await bench.ours_down()
            if codecs is None:
                await bench.ours_up(agents=sip_agents)
                bench.phones.talk = load.TalkTimes("fixed", hold + 600, 0)   # we hang up
                arms[name] = await held_arm(bench, name=name, number=inst.OURS_DIRECT,
                                            agents=sip_agents, expected=expected, hold=hold,
                                            idle=idle, run=run, say=say)
                continue
            bench.setup = s = dataclasses.replace(s, browser_codecs=codecs)
            bench.cfg, bench.config_path = inst.write_config(s)
            await bench.ours_up(agents=[], manage_asterisk=True)
            pages = Pages(bench.http, {a: web_pw[a] for a in browser_agents[:calls]},
                          s.run_dir / "page-tone.wav")
            try:
                await pages.start()
                await wait_available(bench, browser_agents[:calls])
                arms[name] = await held_arm(bench, name=name, number=inst.WEBRTC_DIRECT,
                                            agents=browser_agents[:calls], expected=expected,
                                            hold=hold, idle=idle, run=run, say=say)
                arms[name]["answered_on_page"] = sum(pages.answered.values())
            finally:
                await pages.stop()
    finally:
        await bench.ours_down()
        bench.setup = dataclasses.replace(bench.setup, browser_codecs=inst.BenchSetup.browser_codecs)
        bench.cfg, bench.config_path = inst.write_config(bench.setup)
        if bench.asterisk is not None:      # our server rendered without app_queue's arm:
            bench.asterisk.cfg = bench.cfg  # rendered with it again, and `core reload`
            await asyncio.to_thread(bench.asterisk.up)
    for name, what, _codecs, _exp in ARMS:
        arms[name]["label"] = what
    return {"calls": calls, "hold_seconds": hold, "idle_seconds": idle, "arms": arms,
            "ratios": ratios(arms)}


async def wait_available(bench: Any, agents: list[str]) -> None:
    """Every page's agent is idle and their browser phone reachable, as the ACD sees it."""
    async with server_api.ServerApi(bench.http, server_api.web_login(bench.cfg)) as api:
        await until_available(api, agents, WAIT, "browser agents")


# =========================================================================== the report

def _f(v: Any, nd: int = 2) -> str:
    return "–" if v is None else f"{v:.{nd}f}"


def section(m: dict[str, Any]) -> list[str]:
    """docs/benchmarks.md's "What a browser phone costs Asterisk" (empty without figures)."""
    x = m.get("webrtc")
    if not x or not x.get("arms"):
        return []
    arms, r = x["arms"], x.get("ratios") or {}
    L = ["## What a browser phone costs Asterisk", "",
         f"{x['calls']} concurrent calls held {_f(x['hold_seconds'], 0)} s, three arms in turn "
         "on the bench's Asterisk (our server running; bench/webrtc.py): agents on SIP phones "
         "(baresip, G.711), on browser phones with `asterisk.browser_codecs: [ulaw]`, and with "
         "`[opus]` (one Chromium, a page per agent with a tone as its microphone, answering on "
         "its Answer button; WebRTC: DTLS-SRTP, ICE). The callers are the loopback trunk's "
         "(G.711, sending a tone), so each call is three channels in Asterisk and the figures "
         "include the caller's two; only the agent's leg differs between arms. Asterisk's CPU "
         "(its process) over the held window minus its CPU over an idle window "
         f"({_f(x['idle_seconds'], 0)} s, the agents registered, no call) just before, per call. "
         "Each arm checked every agent leg's codec (`core show channel`: NativeFormats).", "",
         "| arm | agent legs | Asterisk ms CPU per call-second | % of one core per call | "
         "vs SIP phone | our server ms/call-s | Chromium ms/call-s |",
         "|---|---|---|---|---|---|---|"]
    for name, v in arms.items():
        pc = v.get("per_call") or {}
        a, s, c = pc.get("asterisk") or {}, pc.get("server") or {}, pc.get("chromium") or {}
        L.append(f"| {v.get('label', name)} | {', '.join(v.get('agent_leg_formats') or [])} | "
                 f"{_f(a.get('ms_per_call_second'))} | {_f(a.get('core_percent_per_call'), 3)} | "
                 f"{'–' if r.get(name) is None else f'{r[name]:.2f}×'} | "
                 f"{_f(s.get('ms_per_call_second'))} | "
                 f"{_f(c.get('ms_per_call_second')) if name != 'sip' else '–'} |")
    L += ["", "Chromium's figure is the whole browser's (every page's audio, WebRTC and "
              "rendering): on a real floor each agent's own computer carries it. On the SIP "
              "arm the phones are baresip processes, not counted here. G.711 on the browser "
              "phone costs Asterisk the SRTP and ICE of the agent's leg; Opus adds the "
              "transcoding between the agent's Opus and the caller's G.711 both ways. A "
              "contact center may choose `browser_codecs: [ulaw, alaw]` to save Asterisk's CPU "
              "(at G.711's bandwidth, 64 kbit/s a direction plus headers, against Opus's "
              "lower).", ""]
    L += ["Our server's share is nearly nothing: a held call sends it no event. The machine's "
          "load average after each arm: " + "; ".join(
              f"{v.get('label', k)}: {(v.get('loadavg_after') or [None])[0]}"
              for k, v in arms.items()) + ". Chromium itself took " + " and ".join(
              f"{_f(c['held_cpu_s'] / v['held_seconds'], 1)} cores"
              for v in arms.values() for c in [(v.get('per_call') or {}).get('chromium') or {}]
              if c.get("held_cpu_s") and v.get("held_seconds"))
          + " during the browser arms' windows (its threads are most of that load): Asterisk "
          "shared the machine with it, as it would not on a real floor.", ""]
    run = x.get("run")
    if run:         # measured alone, later than the rest of this page
        L += [f"Measured alone (`{run.get('command')}`) on {run.get('generated_at')} (commit "
              f"{str((run.get('git') or {}).get('commit') or '')[:12]}), the machine's load "
              f"average {(run.get('loadavg_end') or [None])[0]} at the end; the machine was "
              "shared with other work (tests run beside it), which the idle window subtracts "
              "only in part: one sample of each arm, read the ratios more than the absolute "
              "figures.", ""]
    return L
