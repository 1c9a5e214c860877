"""The figures of a bench run, the targets, and docs/benchmarks.md with its plots.

Pure functions over plain data (the results dict that becomes bench/results/latest.json),
except :func:`write_docs`, which writes the page and its SVG plots.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import svg, webrtc
from bench.stats import ratio, summary

OURS, AQ = "ours", "app_queue"
MAX_FAILED = 0.001          # stop criterion: more than 0.1% failed calls
MAX_P95_S = 1.0             # stop criterion: p95 queue entry -> INVITE over 1 s


# =========================================================================== throughput

def step_figures(run: Any, seconds: float) -> dict[str, Any]:
    """One throughput step of one arm: offered and completed calls, failed share, latency,
    CPU per completed call, and whether the step passes the stop criteria."""
    records = run.records
    n = len(records)
    completed = run.completed
    failed = n - completed
    lat = summary([r.queue_to_invite for r in records if r.queue_to_invite is not None], 1000, 3)
    cpu = run.cpu

    def per_call(key: str) -> float | None:
        v = cpu.get(key)
        return None if v is None or not completed else round(v / completed * 1000, 3)
    failed_share = failed / n if n else 1.0
    reasons = []
    if failed_share > MAX_FAILED:
        reasons.append(f"{failed} of {n} calls failed ({failed_share:.2%})")
    if lat["p95"] is None or lat["p95"] > MAX_P95_S * 1000:
        reasons.append(f"p95 queue entry -> INVITE {lat['p95']} ms")
    if run.ami_disconnects:
        reasons.append(f"{run.ami_disconnects} AMI disconnect(s)")
    if getattr(run, "stopped", None):
        reasons.append(f"stopped early: {run.stopped}")
    ast, srv = per_call("asterisk"), per_call("server")
    return {"arm": run.arm, "rate": run.profile["rate"], "seconds": seconds, "calls": n,
            "completed": completed, "failed": failed, "failed_share": round(failed_share, 5),
            "outcomes": run.outcomes(), "achieved_cps": round(completed / seconds, 2),
            "queue_to_invite_ms": lat, "ami_disconnects": run.ami_disconnects,
            "cpu_ms_per_call": {"asterisk": ast, "server": srv,
                                "together": round((ast or 0) + (srv or 0), 3) if ast is not None else None,
                                "phones": per_call("phones"), "loadgen": per_call("loadgen")},
            "machine_busy_share": _busy(cpu),
            "passed": not reasons, "reason": "; ".join(reasons)}


def recording_figures(runs: dict[str, list[dict[str, Any]]], rate: float) -> dict[str, Any]:
    """The recording measure: CPU per completed call with the group recorded (``all``) and
    not (``none``), the difference (what recording a call costs), and the files' size."""
    out: dict[str, Any] = {"rate": rate}
    for record, rs in runs.items():
        completed = sum(r["completed"] for r in rs)

        def per_call(part: str) -> float | None:
            vals = [r["cpu"].get(part) for r in rs]
            if not completed or any(v is None for v in vals):
                return None
            return round(sum(vals) / completed * 1000, 3)
        ast, srv = per_call("asterisk"), per_call("server")
        out[record] = {"runs": len(rs), "calls": sum(r["calls"] for r in rs),
                       "completed": completed,
                       "cpu_ms_per_call": {"asterisk": ast, "server": srv,
                                           "together": None if ast is None or srv is None
                                           else round(ast + srv, 3)},
                       "files": sum(r["files"] for r in rs), "bytes": sum(r["bytes"] for r in rs),
                       "audio_seconds": round(sum(r["audio_seconds"] for r in rs), 1)}
    rec, plain = out.get("all", {}), out.get("none", {})
    extra = {}
    for part in ("asterisk", "server", "together"):
        a = _get(rec, "cpu_ms_per_call", part)
        b = _get(plain, "cpu_ms_per_call", part)
        extra[part] = None if a is None or b is None else round(a - b, 3)
    out["extra_ms_per_recorded_call"] = extra
    secs = rec.get("audio_seconds") or 0
    # Per second of recorded conversation: what recording costs however long the calls are.
    out["extra_ms_per_audio_second"] = {
        part: None if v is None or not secs else round(v * rec["completed"] / secs, 2)
        for part, v in extra.items()}
    out["bytes_per_second"] = round(rec["bytes"] / secs) if secs else None
    out["mb_per_hour"] = round(rec["bytes"] / secs * 3600 / 1e6, 1) if secs else None
    return out


def _busy(cpu: dict[str, Any]) -> float | None:
    total = cpu.get("machine_total")
    return round(cpu["machine_busy"] / total, 3) if total else None


def throughput_summary(steps: list[dict[str, Any]], rates: list[float]) -> dict[str, Any]:
    """Each arm's highest passing step (its sustained rate), and the CPU per call of both arms
    at the highest rate both passed."""
    out: dict[str, Any] = {"steps": steps, "rates": rates}
    for arm in (OURS, AQ):
        passed = [s for s in steps if s["arm"] == arm and s["passed"]]
        best = max(passed, key=lambda s: s["rate"]) if passed else None
        failed = [s for s in steps if s["arm"] == arm and not s["passed"]]
        out[arm] = None if best is None else {
            "rate": best["rate"], "achieved_cps": best["achieved_cps"],
            "stopped_at": failed[0]["rate"] if failed else None,
            "stop_reason": failed[0]["reason"] if failed else
            ("passed every step" if best["rate"] == max(rates) else
             "no higher step run (the time budget)")}
        if best is None and failed:
            out[arm] = {"rate": None, "achieved_cps": None, "stopped_at": failed[0]["rate"],
                        "stop_reason": failed[0]["reason"]}
    both = [r for r in rates
            if any(s["rate"] == r and s["arm"] == OURS and s["passed"] for s in steps)
            and any(s["rate"] == r and s["arm"] == AQ and s["passed"] for s in steps)]
    common = max(both) if both else (rates[0] if rates else None)
    out["cpu_rate"] = common
    cpu = {}
    for arm in (OURS, AQ):
        s = next((s for s in steps if s["arm"] == arm and s["rate"] == common), None)
        cpu[arm] = s["cpu_ms_per_call"] if s else None
    out["cpu_ms_per_call"] = cpu
    return out


# =========================================================================== the machine

def load_share(runs: list[Any]) -> dict[str, Any]:
    """The machine during a measure: how busy its cores were, and how much of that was ours
    (Asterisk, our server, the phones, the load generator) or other processes (colleagues'
    tests on a shared machine)."""
    busy = total = mine = 0.0
    for r in runs:
        c = r.cpu
        if not c.get("machine_total"):
            continue
        busy += c["machine_busy"]
        total += c["machine_total"]
        mine += sum(c.get(k) or 0.0 for k in ("asterisk", "server", "phones", "loadgen"))
    if not total:
        return {"busy": None, "bench": None, "others": None}
    return {"busy": round(busy / total, 3), "bench": round(mine / total, 3),
            "others": round(max(0.0, busy - mine) / total, 3)}


def setup_description(s: Any) -> dict[str, Any]:
    from bench import instance as inst
    return {
        "agents_configured": s.agents, "agent_phones": s.phones,
        "group": {"strategy": s.strategy, "ring_timeout": s.ring_timeout,
                  "wrapup_seconds": s.wrapup_seconds, "announcements": "none"},
        "app_queue": {"strategy": inst.AQ_STRATEGY[s.strategy], "timeout": int(s.ring_timeout),
                      "wrapuptime": int(s.wrapup_seconds), "retry": 1, "autofill": "yes",
                      "ringinuse": "no", "members": f"PJSIP/<agent> for the {s.phones} phones",
                      "announcements": "none"},
        "numbers": {"ours": inst.OURS_DIRECT, "app_queue": inst.AQ_DIRECT,
                    "ours_hotline": inst.OURS_HOTLINE, "app_queue_hotline": inst.AQ_HOTLINE},
        "phones": "baresip 1.1.0, auto-answer after 0.2 s, 8 kHz tone (aufile), G.711 u-law",
        "callers": "Asterisk's loopback trunk: AMI Originate PJSIP/<number>@acd-trunk; the "
                   "caller's side is in the same Asterisk",
        "ports": {"sip": s.sip_port, "ami": s.ami_port, "agi": s.agi_port, "http": s.http_port,
                  "rtp": f"{s.rtp_start}-{s.rtp_end}"},
    }


# =========================================================================== targets

def _get(d: Any, *path: Any) -> Any:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the performance issue: the figure, met or not (None: not measured, or
    a behaviour that the tests prove rather than a figure)."""
    m = results.get("measures", {})
    out = []

    def add(tid: int | str, text: str, met: bool | None, figure: str) -> None:
        out.append({"id": tid, "text": text, "met": met, "figure": figure})

    t = m.get("throughput") or {}
    co = _get(t, "cpu_ms_per_call", OURS, "together")
    ca = _get(t, "cpu_ms_per_call", AQ, "together")
    cs = _get(t, "cpu_ms_per_call", OURS, "server")
    add(1, "CPU per completed call, Asterisk + our server, at the highest rate both arms "
           "sustain: <= 1.2x app_queue's; our server alone <= 6 ms",
        None if co is None or ca is None or cs is None else (co <= 1.2 * ca and cs <= 6),
        f"ours {co} ms (our server {cs} ms), app_queue {ca} ms at {t.get('cpu_rate')} calls/s, "
        f"ratio {ratio(co, ca)}")

    o50, o95 = _get(m, "idle_agent", OURS, "ms", "p50"), _get(m, "idle_agent", OURS, "ms", "p95")
    a50, a95 = _get(m, "idle_agent", AQ, "ms", "p50"), _get(m, "idle_agent", AQ, "ms", "p95")
    add(2, "queue entry -> agent INVITE, idle agent: p50 <= 3 ms, p95 <= 8 ms",
        None if o50 is None or o95 is None else (o50 <= 3 and o95 <= 8),
        f"ours p50 {o50} / p95 {o95} ms, app_queue p50 {a50} / p95 {a95} ms")

    f95 = _get(m, "agent_free", OURS, "ms", "p95")
    fa95 = _get(m, "agent_free", AQ, "ms", "p95")
    add(3, "agent freed -> next waiting caller's INVITE: p95 <= 10 ms",
        None if f95 is None else f95 <= 10, f"ours p95 {f95} ms, app_queue p95 {fa95} ms")

    add(4, "nothing waits on the store (a behaviour, not a figure)", None,
        "proved by tests/asterisk/test_faults_store.py (callers offered and served while the "
        "database is locked) and tests/unit/test_store_writer.py (the backlog logged)")

    mem = m.get("memory") or {}
    share, per = mem.get("steady_cpu_share"), mem.get("per_caller_bytes")
    waiting = mem.get("waiting")
    add(5, "10,000 waiting callers: <= 5% of a core and <= 8 KiB each; agi.max_sessions "
           "never limits them",
        None if share is None or per is None else (share <= 0.05 and per <= 8192
                                                   and waiting == mem.get("callers")),
        "not measured" if per is None else
        f"{waiting} of {mem.get('callers')} waiting, {per / 1024:.1f} KiB each, "
        f"{share:.1%} of a core while they wait")

    oc, ac = _get(t, OURS, "rate"), _get(t, AQ, "rate")
    ov = m.get("overload") or {}

    def stop(arm: str) -> str:
        x = t.get(arm) or {}
        return (f"stopped at {x.get('stopped_at')}: {x.get('stop_reason')}" if x.get("stopped_at")
                else str(x.get("stop_reason", "")))
    add(6, "sustained calls per second >= app_queue's",
        None if not t else (oc is not None and (ac is None or oc >= ac)),
        f"ours {oc} calls/s ({stop(OURS)}), app_queue {ac} calls/s ({stop(AQ)})")
    add("6b", "offered 2x the sustained rate for 60 s: no AMI disconnect, no crash, API p95 "
              "< 200 ms, callers beyond capacity treated, service recovers by itself",
        ov.get("met") if ov else None,
        "not measured" if not ov else
        f"{ov['rate']:g} calls/s: served {ov['served']}, turned away {ov['turned_away']}, gave "
        f"up waiting {ov['gave_up']}, failed otherwise {ov['failed_other']} of {ov['calls']}; "
        f"API p95 {_get(ov, 'api_during', 'ms', 'p95')} ms, {_get(ov, 'api_during', 'errors')} "
        f"errors; AMI disconnects {ov['ami_disconnects']}; server up {ov['server_alive']}; "
        f"after, at {_get(ov, 'after', 'rate')} calls/s: {_get(ov, 'after', 'completed')} of "
        f"{_get(ov, 'after', 'calls')} completed")

    p = m.get("screen_pop") or {}
    p95, p99 = _get(p, "ms", "p95"), _get(p, "ms", "p99")
    add(7, "screen pop, INVITE -> ring on the page, 300 pages, at the highest sustained rate: "
           "p99 < 100 ms, none lost",
        None if p99 is None else (p99 < 100 and p.get("lost") == 0),
        f"p95 {p95} ms, p99 {p99} ms, lost {p.get('lost')} of {p.get('connected_calls')}, "
        f"at {p.get('rate')} calls/s")

    add(8, "`acd run` ready in under 5 s with 1,000 agents and their web users; a restart's "
           "time does not grow with the agents", *startup_target(m.get("startup") or {}))

    rp = m.get("reports") or {}
    if rp.get("reports"):
        slowest = rp.get("slowest_seconds")
        add("15", f"(issue 15) a history report over {rp.get('calls'):,} calls answers in under 2 s",
            slowest is not None and slowest < 2.0,
            f"slowest report {slowest} s, per group or agent (an agent's year has "
            f"{rp.get('legs', 0):,} legs and {rp.get('agent_time_rows', 0):,} rows of time in "
            f"states, read as their sums by hour); slowest group report "
            f"{rp.get('slowest_calls_seconds')} s; the indexer makes "
            f"{_get(rp, 'indexer', 'calls_per_second')} calls' facts a second")

    add(9, "supervisor views as throttled deltas, built only for subscribers (a behaviour)",
        None, "proved by tests/unit/test_board_deltas.py and "
              "tests/integration/test_supervisor_ws.py")

    c = m.get("core") or {}
    r99 = c.get("routing_p99_us_at_max")
    exps = [_get(c, "growth", op, "exponent") for op in ("agent_free_ring", "caller_arrives_ring")]
    flat = all(e is not None and e < 0.5 for e in exps)
    add("core", "(kept from before) core: routing decision p99 < 200 us with 10,000 agents; "
                "not linear in agents",
        None if r99 is None else (r99 < 200 and flat),
        f"p99 {r99} us at {max(c.get('sizes') or [0])} agents; growth exponents {exps}")
    return out


STARTS = ("first", "second", "restart")
MAX_RESTART_GROWTH_S = 0.5   # the restart's own part, most agents minus fewest, at most


def startup_target(x: dict[str, Any]) -> tuple[bool | None, str]:
    """Target 8 from the start-up measure: every start of the largest size ready in time,
    and the server's own part of its restart (all but starting Python and the imports) at
    most MAX_RESTART_GROWTH_S seconds longer than with the smallest size."""
    sizes = sorted((x.get("sizes") or {}).items(), key=lambda kv: int(kv[0]))
    if not sizes:
        return None, "not measured"
    n, big = sizes[-1]
    secs = {k: _get(big, k, "seconds") for k in STARTS}
    if any(v is None for v in secs.values()):
        return None, f"incomplete at {n} agents"
    limit = x.get("target_seconds", 5.0)
    met = max(secs.values()) < limit
    text = f"{n} agents: ready in " + ", ".join(f"{secs[k]} s ({k})" for k in STARTS)
    if len(sizes) > 1:
        n0, small = sizes[0]
        own = _get(big, "restart", "server_seconds")
        own0 = _get(small, "restart", "server_seconds")
        growth = None if own is None or own0 is None else round(own - own0, 3)
        met = met and growth is not None and growth <= MAX_RESTART_GROWTH_S
        text += (f"; the server's own part of a restart {own} s, with {n0} agents {own0} s "
                 f"(+{growth} s)")
    if int(n) < 1000:
        return None, text + " (fewer than 1,000 agents: not the target's size)"
    return met, text


def ratios(results: dict[str, Any]) -> dict[str, float | None]:
    """ours / app_queue for every figure both arms have (below 1: ours is lower)."""
    m = results.get("measures", {})
    t = m.get("throughput") or {}
    return {
        "idle_agent_p50": ratio(_get(m, "idle_agent", OURS, "ms", "p50"), _get(m, "idle_agent", AQ, "ms", "p50")),
        "idle_agent_p95": ratio(_get(m, "idle_agent", OURS, "ms", "p95"), _get(m, "idle_agent", AQ, "ms", "p95")),
        "agent_free_p50": ratio(_get(m, "agent_free", OURS, "ms", "p50"), _get(m, "agent_free", AQ, "ms", "p50")),
        "agent_free_p95": ratio(_get(m, "agent_free", OURS, "ms", "p95"), _get(m, "agent_free", AQ, "ms", "p95")),
        "sustained_cps": ratio(_get(t, OURS, "rate"), _get(t, AQ, "rate")),
        "cpu_per_call_together": ratio(_get(t, "cpu_ms_per_call", OURS, "together"),
                                       _get(t, "cpu_ms_per_call", AQ, "together")),
        "cpu_per_call_asterisk": ratio(_get(t, "cpu_ms_per_call", OURS, "asterisk"),
                                       _get(t, "cpu_ms_per_call", AQ, "asterisk")),
    }


# =========================================================================== the page

def _ms(v: Any) -> str:
    return "–" if v is None else f"{v:g}"


def _row(*cells: Any) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _dist_table(d: dict[str, Any], unit: str = "ms") -> list[str]:
    lines = [_row("arm", "n", "min", "median", "p95", "p99", "max", "mean"),
             _row(*["---"] * 8)]
    for arm in (OURS, AQ):
        s = _get(d, arm, unit)
        if s:
            lines.append(_row(arm, s.get("n", "–"), *(_ms(s.get(k)) for k in
                                                     ("min", "p50", "p95", "p99", "max", "mean"))))
    return lines


def _cdf_plot(title: str, d: dict[str, Any], x_label: str, target: float | None = None) -> str:
    series = {arm: [tuple(p) for p in d[arm]["cdf_ms"]] for arm in (OURS, AQ)
              if _get(d, arm, "cdf_ms")}
    return svg.lines(title, series, x_label, "share of calls at or below", log_x=True,
                     step=True, y_min=0.0, y_max=1.0,
                     hlines=[(0.95, "p95")])


def write_docs(results: dict[str, Any], docs: Path) -> Path:
    """docs/benchmarks.md and docs/benchmarks/*.svg."""
    plots = docs / "benchmarks"
    plots.mkdir(parents=True, exist_ok=True)
    m = results.get("measures", {})
    files: dict[str, str] = {}
    if m.get("idle_agent"):
        files["idle_agent.svg"] = _cdf_plot("(1) queue entry -> agent INVITE, idle agent",
                                            m["idle_agent"], "milliseconds (log scale)")
    if m.get("agent_free"):
        files["agent_free.svg"] = _cdf_plot("(2) agent free -> next caller's INVITE",
                                            m["agent_free"], "milliseconds (log scale)")
    t = m.get("throughput")
    if t:
        files["throughput.svg"] = svg.lines(
            "(3) completed calls per second by offered rate",
            {arm: [(s["rate"], s["achieved_cps"]) for s in t["steps"] if s["arm"] == arm]
             for arm in (OURS, AQ)}, "offered calls per second", "completed calls per second",
            markers=True, y_min=0.0)
        files["throughput_latency.svg"] = svg.lines(
            "(3) p95 queue entry -> INVITE by offered rate",
            {arm: [(s["rate"], max(s["queue_to_invite_ms"]["p95"] or 0.01, 0.01))
                   for s in t["steps"] if s["arm"] == arm] for arm in (OURS, AQ)},
            "offered calls per second", "milliseconds (log scale)", log_y=True, markers=True,
            hlines=[(1000, "stop: 1 s")])
        rates = sorted({s["rate"] for s in t["steps"]})
        series: dict[str, list[float | None]] = {}
        for arm in (OURS, AQ):
            for part in ("asterisk", "server"):
                if arm == AQ and part == "server":
                    continue
                series[f"{arm}: {part}"] = [
                    next((s["cpu_ms_per_call"][part] for s in t["steps"]
                          if s["arm"] == arm and s["rate"] == r), None) for r in rates]
        files["cpu_per_call.svg"] = svg.bars("(4) CPU milliseconds per completed call",
                                             [f"{r:g}/s" for r in rates], series,
                                             "offered calls per second", "CPU ms per call")
    p = m.get("screen_pop")
    if p and p.get("cdf_ms"):
        files["screen_pop.svg"] = svg.lines(
            "(5) agent INVITE -> ring event on the agent's page", {OURS: [tuple(x) for x in p["cdf_ms"]]},
            "milliseconds (log scale)", "share of calls at or below", log_x=True, step=True,
            y_min=0.0, y_max=1.0, hlines=[(0.95, "p95"), (0.99, "p99")])
    c = m.get("core")
    if c and c.get("ops"):
        files["core.svg"] = svg.lines(
            "(6) the core alone: p99 per operation by number of agents",
            {op: [(int(n), v["us"]["p99"]) for n, v in sizes.items()]
             for op, sizes in c["ops"].items()},
            "agents (log scale)", "microseconds, p99 (log scale)", log_x=True, log_y=True,
            markers=True, hlines=[(200, "target 200 us")])
    for name, text in files.items():
        (plots / name).write_text(text)
    md = docs / "benchmarks.md"
    md.write_text(markdown(results, sorted(files)))
    return md


def markdown(results: dict[str, Any], plots: list[str]) -> str:
    m = results.get("measures", {})
    mach = results.get("machine", {})
    setup = results.get("setup", {})
    r = results.get("ratios", {})
    L: list[str] = []
    a = L.append
    a("# Benchmarks: our ACD beside Asterisk's app_queue")
    a("")
    a(f"Generated by `{results.get('command')}` on {results.get('generated_at')} "
      f"(commit {str(_get(results, 'git', 'commit'))[:12]}"
      f"{', with uncommitted changes' if _get(results, 'git', 'dirty') else ''}), in "
      f"{results.get('wall_seconds', 0) / 60:.0f} minutes. Rerun it with `make bench` "
      f"(`make bench-quick` runs each measure briefly). Every figure is in "
      f"[bench/results/latest.json](../bench/results/latest.json), every call's record in "
      f"`bench/results/calls-latest.jsonl.gz`.")
    a("")
    a(f"**The machine**: {mach.get('cores')} cores ({mach.get('cpu_model')}), "
      f"{(mach.get('memory_bytes') or 0) / 2**30:.0f} GiB, Linux {mach.get('kernel')}, Python "
      f"{mach.get('python')}, Asterisk {results.get('asterisk')}. Load average at the start "
      f"{mach.get('loadavg')}, at the end {mach.get('loadavg_end')}. The machine is shared: "
      f"other processes' share of all cores during each measure is in the table below "
      f"(\"others\"); the arms alternate in chunks so that such load hits both.")
    a("")
    a("## Summary")
    a("")
    a(_row("#", "target", "measured", "met"))
    a(_row("---", "---", "---", "---"))
    for t in results.get("targets", []):
        met = {True: "yes", False: "**no**", None: "–"}[t["met"]]
        a(_row(t["id"], t["text"], t["figure"], met))
    a("")
    a("Ratios, ours / app_queue (below 1: ours is lower): " + ", ".join(
        f"{k.replace('_', ' ')} **{v}**" for k, v in r.items() if v is not None) + ".")
    a("")
    loads = results.get("machine_load", {})
    if loads:
        a(_row("measure", "cores busy", "of which the bench", "others"))
        a(_row("---", "---", "---", "---"))
        for k, v in loads.items():
            a(_row(k, _pct(v.get("busy")), _pct(v.get("bench")), _pct(v.get("others"))))
        a("")
    a("## The two arms")
    a("")
    a("One Asterisk (instance `bench`, its own ports), the same agent phones, the same callers, "
      "the same call mix; the arms run in turn, alternating which goes first.")
    a("")
    a(f"- **ours**: callers dial the bench skill group's number ({_get(setup, 'numbers', 'ours')}); "
      "the dialplan hands them to our FastAGI queue script, the ACD core decides, the runtime "
      "rings the agent with AMI Originate and bridges with AMI Bridge. Our server runs as a "
      "process of its own (`acd run`, SQLite store, info logging as shipped).")
    a(f"- **app_queue**: callers dial {_get(setup, 'numbers', 'app_queue')}, whose dialplan runs "
      f"`Queue()` on a queue with the nearest settings: {_settings(setup.get('app_queue', {}))}. "
      "`retry = 1` is app_queue's shortest recheck (0 gives its default of 5 s). Our server "
      "is stopped meanwhile, so it costs Asterisk nothing.")
    a(f"- Both: group strategy {_get(setup, 'group', 'strategy')}, ring timeout "
      f"{_get(setup, 'group', 'ring_timeout')} s, wrap-up {_get(setup, 'group', 'wrapup_seconds')} s, "
      f"no announcements. {setup.get('agent_phones')} agents have a phone: {setup.get('phones')}. "
      f"Callers: {setup.get('callers')}. RTP flows through Asterisk on every call (music on "
      "hold while waiting; the phone's tone and the caller's silence while talking).")
    a("")
    a("Times are taken from the `Timestamp` Asterisk puts on every AMI event (microseconds): "
      "*queue entry* is the caller's channel starting the queueing application (`AGI(.../queue)` "
      "for ours, `Queue()` for app_queue); the *agent's INVITE* is the agent's channel being "
      "created (`Newchannel` of `PJSIP/<agent>-...`), right before Asterisk sends the INVITE.")
    a("")
    _section_idle(L, m)
    _section_free(L, m)
    _section_ivr(L, m)
    _section_throughput(L, m)
    _section_pop(L, m)
    _section_profile(L, m)
    _section_recording(L, m)
    L += webrtc.section(m)
    _section_core(L, m)
    _section_overload(L, m)
    _section_memory(L, m)
    _section_startup(L, m)
    _section_reports(L, m)
    _section_gaps(L, results)
    return "\n".join(L) + "\n"


def _pct(v: Any) -> str:
    return "–" if v is None else f"{v * 100:.0f}%"


def _settings(d: dict[str, Any]) -> str:
    return ", ".join(f"`{k} = {v}`" for k, v in d.items() if k not in ("members", "announcements")) \
        + (f", members {d['members']}" if "members" in d else "")


def _img(L: list[str], name: str, alt: str) -> None:
    L.append(f"![{alt}](benchmarks/{name})")
    L.append("")


def _section_idle(L: list[str], m: dict[str, Any]) -> None:
    d = m.get("idle_agent")
    if not d:
        return
    L += ["## Queue entry to the agent's INVITE, an idle agent waiting (target 2)", "",
          "Callers arrive (Poisson) while most agents are idle; only callers who found an idle "
          "agent count.", ""]
    L += _dist_table(d)
    L.append("")
    _img(L, "idle_agent.svg", "distribution of queue entry to INVITE")
    parts = d.get("ours_breakdown_ms") or {}
    if parts:
        L += ["Where ours' time goes (from our server's log, call by call; milliseconds):", "",
              _row("step", "median", "p95"), _row("---", "---", "---")]
        names = {"fastagi_connect": "Asterisk opens the FastAGI session",
                 "queue_script_to_core": "queue script: music on, 5 channel variables, the "
                                         "call's record written and read back, then the core",
                 "core_to_ring_decision": "the core's routing decision (logged)",
                 "originate_to_channel": "AMI Originate until the agent's channel exists"}
        for k, s in parts.items():
            L.append(_row(names.get(k, k), _ms(s.get("p50")), _ms(s.get("p95"))))
        L.append("")


def _section_free(L: list[str], m: dict[str, Any]) -> None:
    d = m.get("agent_free")
    if not d:
        return
    L += ["## An agent becomes free: to the next waiting caller's INVITE (target 3)", "",
          f"{d.get('agents')} agents take calls, callers arrive faster than they are served, so "
          "callers always wait. Sample: an agent's channel hangs up (the phone ends the call; "
          "no wrap-up) while a caller waits, to that agent's next channel.", ""]
    L += _dist_table(d)
    L.append("")
    _img(L, "agent_free.svg", "distribution of agent free to next INVITE")


def _section_ivr(L: list[str], m: dict[str, Any]) -> None:
    d = m.get("ivr_mix")
    if not d:
        return
    L += ["## The hotline mix (keys in the IVR)", "",
          "The same hotline in both arms: a prompt asks for a number, the caller keys "
          "`13800138000#` (RFC 4733 via AMI PlayDTMF), hears it read back, then queues "
          "(ours: the FastAGI hotline IVR; app_queue: the same prompts with `Read()` in "
          "dialplan).", "",
          _row("arm", "calls", "completed", "asked for keys", "keyed", "queue -> INVITE p95 ms"),
          _row(*["---"] * 6)]
    for arm in (OURS, AQ):
        x = d.get(arm)
        if x:
            L.append(_row(arm, x["calls"], x["completed"], x["asked"], x["keyed"],
                          _ms(_get(x, "queue_to_invite_ms", "p95"))))
    L.append("")


def _section_throughput(L: list[str], m: dict[str, Any]) -> None:
    t = m.get("throughput")
    if not t:
        return
    L += ["## Sustained calls per second and CPU per completed call (targets 6 and 1)", "",
          "Steps upward, arms alternating at each rate (Poisson arrivals, the same seed for "
          "both arms at a rate, so both get the same calls); a step passes with at most 0.1% failed "
          "calls, p95 queue entry -> INVITE at most 1 s and no AMI disconnect; an arm stops at "
          "its first failing step. A call *completes* when the caller reached the queue, was "
          "connected with an agent, and the agent's phone hung up after its talk time.", "",
          _row("arm", "rate/s", "calls (arrived/s)", "completed/s", "failed", "p95 queue->INVITE ms",
               "CPU ms/call Asterisk", "CPU ms/call server", "together", "cores busy", "passed"),
          _row(*["---"] * 11)]
    for s in t["steps"]:
        c = s["cpu_ms_per_call"]
        L.append(_row(s["arm"], f"{s['rate']:g}",
                      f"{s['calls']} ({s['calls'] / s['seconds']:.2f})" if s.get("seconds")
                      else s["calls"], s["achieved_cps"],
                      f"{s['failed']} ({s['failed_share']:.2%})", _ms(s["queue_to_invite_ms"]["p95"]),
                      _ms(c["asterisk"]), _ms(c["server"]), _ms(c["together"]),
                      _pct(s.get("machine_busy_share")),
                      "yes" if s["passed"] else f"no: {s['reason']}"))
    L.append("")
    for arm in (OURS, AQ):
        x = t.get(arm)
        if x:
            L.append(f"- **{arm}**: sustained {_ms(x.get('rate'))} calls/s offered "
                     f"({_ms(x.get('achieved_cps'))} completed/s); stopped at "
                     f"{_ms(x.get('stopped_at'))}: {x.get('stop_reason')}.")
    L.append(f"- CPU per completed call compared at {_ms(t.get('cpu_rate'))} calls/s, the highest "
             "rate both arms sustained. Asterisk's figure includes the callers' side of the "
             "loopback trunk, the same in both arms.")
    if t.get("agents_capacity_cps"):
        L.append(f"- The agents' own limit: {t.get('phones')} phones, each call taking the phone "
                 f"about {t.get('handle_seconds')} s (ring, talk), can take about "
                 f"{t['agents_capacity_cps']:.0f} calls/s; a step near that is bounded by the "
                 "agents, not by the queue.")
    L.append("")
    _img(L, "throughput.svg", "completed calls per second by offered rate")
    _img(L, "throughput_latency.svg", "p95 latency by offered rate")
    _img(L, "cpu_per_call.svg", "CPU per call")


def _section_pop(L: list[str], m: dict[str, Any]) -> None:
    p = m.get("screen_pop")
    if not p:
        return
    s = p.get("ms") or {}
    L += ["## Screen pop: the agent's INVITE to the ring event on the agent's page (target 7)", "",
          f"{p.get('pages')} agent pages connected (`/api/agents/{{id}}/ws`, aiohttp clients, one "
          f"per configured agent), ours at {_ms(p.get('rate'))} calls/s. The ring event is sent "
          "when the phone rings (its 180 Ringing), so this includes the phone's answer to the "
          "INVITE. Clock: the machine's wall clock on both sides.", "",
          _row("n", "min", "median", "p95", "p99", "max", "ring events lost"),
          _row(*["---"] * 7),
          _row(s.get("n"), _ms(s.get("min")), _ms(s.get("p50")), _ms(s.get("p95")),
               _ms(s.get("p99")), _ms(s.get("max")),
               f"{p.get('lost')} of {p.get('connected_calls')} connected calls"), ""]
    if p.get("cdf_ms"):
        _img(L, "screen_pop.svg", "screen pop distribution")


def _section_profile(L: list[str], m: dict[str, Any]) -> None:
    p = m.get("server_profile")
    if not p or not p.get("by_package"):
        return
    L += ["## Where our server's CPU goes", "",
          f"One short step ({_ms(p.get('rate'))} calls/s) with our server under cProfile "
          "(its own time per package or module; the event loop's idle wait left out; cProfile "
          "slows the server, the shares are what counts):", "",
          _row("package / module", "share"), _row("---", "---")]
    for x in p["by_package"]:
        L.append(_row(f"`{x['what']}`", _pct(x["share"])))
    L.append("")


def _section_recording(L: list[str], m: dict[str, Any]) -> None:
    x = m.get("recording")
    if not x or "all" not in x:
        return
    L += ["## What recording a call costs", "",
          f"Our arm alone, {_ms(x.get('rate'))} calls/s, the same calls with the bench group's "
          "`record: none` and `record: all` (our server restarted between), in turn. Recording is "
          "Asterisk's MixMonitor writing each side raw, then our server writing the stereo WAV "
          "(left the agent, right the caller) and its checksum; the CPU until the last file is "
          "written is counted.", "",
          _row("record", "completed calls", "Asterisk ms/call", "our server ms/call",
               "together ms/call", "files", "audio"),
          _row("---", "---", "---", "---", "---", "---", "---")]
    for k in ("none", "all"):
        v = x.get(k) or {}
        c = v.get("cpu_ms_per_call") or {}
        L.append(_row(f"`{k}`", v.get("completed"), _ms(c.get("asterisk")), _ms(c.get("server")),
                      _ms(c.get("together")), v.get("files"),
                      f"{v.get('audio_seconds')} s" if v.get("files") else "–"))
    e = x.get("extra_ms_per_recorded_call") or {}
    per_s = x.get("extra_ms_per_audio_second") or {}
    L += ["", f"A recorded call costs **{_ms(e.get('together'))} ms** of CPU more (Asterisk "
              f"{_ms(e.get('asterisk'))}, our server {_ms(e.get('server'))}): "
              f"**{_ms(per_s.get('together'))} ms per second of recorded conversation** (Asterisk "
              f"{_ms(per_s.get('asterisk'))}, our server {_ms(per_s.get('server'))}); a recording takes "
              f"{x.get('bytes_per_second')} bytes a second, **{x.get('mb_per_hour')} MB an hour** "
              "of conversation (8 kHz 16-bit stereo WAV).", ""]


def _section_core(L: list[str], m: dict[str, Any]) -> None:
    c = m.get("core")
    if not c or not c.get("ops"):
        return
    L += ["## The core alone (no I/O)", "",
          f"{c['groups']} skill groups, each agent in two; {c['waiting']:,} callers waiting; "
          f"{c['cycles']} timed operations of each kind per size (microseconds). The snapshot "
          "rows are not core events: the runtime publishes both snapshots to the supervisors' "
          "topic after every change.", "",
          _row("operation", *[f"{int(n):,} agents: median / p99" for n in c["sizes"]],
               "growth exponent"),
          _row(*["---"] * (len(c["sizes"]) + 2))]
    for op, sizes in c["ops"].items():
        L.append(_row(op.replace("_", " "), *[f"{sizes[str(n)]['us']['p50']:g} / "
                                              f"{sizes[str(n)]['us']['p99']:g}" for n in c["sizes"]],
                      _get(c, "growth", op, "exponent")))
    L += ["", "Growth exponent: log(cost ratio) / log(agents ratio) between the smallest and the "
          "largest size, on the medians: 0 is flat, 1 is linear.", ""]
    _img(L, "core.svg", "core operation cost by agents")


def _section_overload(L: list[str], m: dict[str, Any]) -> None:
    x = m.get("overload")
    if not x:
        return
    api, after = x.get("api_during") or {}, x.get("after") or {}
    ref = x.get("reference") or {}
    ro = ref.get("outcomes") or {}
    na = "–" if not ref else None

    def aq(v: Any) -> Any:
        return na if na is not None else v
    ref_q = (f"{_ms(_get(ref, 'queue_to_invite_ms', 'p50'))} / "
             f"{_ms(_get(ref, 'queue_to_invite_ms', 'p95'))} ms")
    ref_after = f"{_get(ref, 'after', 'completed')} / {_get(ref, 'after', 'calls')}"
    L += ["## Past the sustained rate: twice of it for a minute (target 6b)", "",
          f"Our server offered {x['rate']:g} calls/s (twice the {x['sustained_rate']:g} it "
          f"sustained above) for {x.get('seconds'):.0f} s, then {after.get('rate')} calls/s "
          "for a while, the same server process throughout; an API client asked "
          "`GET /api/queues` and `GET /api/health` in turns every 0.2 s (bench/overload.py). "
          "Then app_queue was offered the same two runs: the one Asterisk also plays the "
          "callers and the agents' far ends, so the callers it could not place at this rate "
          "(its own Originate failed, before any queue) are the machine's limit, not an "
          "ACD's.", "",
          "| figure | ours | app_queue |", "| --- | --- | --- |",
          f"| calls offered | {x['calls']} | {aq(ref.get('calls'))} |",
          f"| served (talked to an agent) | {x['served']} | {aq(ref.get('served'))} |",
          f"| turned away with the group's overload treatment | {x['turned_away']} | – |",
          f"| hung up after waiting the load caller's patience (60 s) | {x['gave_up']} | "
          f"{aq(ro.get('not_connected', 0))} |",
          f"| not placed by Asterisk (never reached a queue) | {x.get('not_placed')} | "
          f"{aq(ref.get('not_placed'))} |",
          f"| failed after reaching the queue | {x.get('failed_after_arrival')} | – |",
          f"| queue entry -> INVITE p50 / p95 | {_ms(_get(x, 'queue_to_invite_ms', 'p50'))} / "
          f"{_ms(_get(x, 'queue_to_invite_ms', 'p95'))} ms | "
          f"{aq(ref_q)} |",
          f"| API answers p50 / p95 / max | {_ms(_get(api, 'ms', 'p50'))} / "
          f"{_ms(_get(api, 'ms', 'p95'))} / {_ms(_get(api, 'ms', 'max'))} ms "
          f"({api.get('requests')} requests, {api.get('errors')} errors) | – |",
          f"| AMI disconnects | {x['ami_disconnects']} | {aq(ref.get('ami_disconnects'))} |",
          f"| server still up | {'yes' if x['server_alive'] else '**no**'} | – |",
          f"| overload episodes (server log) / callers turned away (logged) | "
          f"{_get(x, 'server_log', 'episodes')} / {_get(x, 'server_log', 'turned_away_logged')}"
          " | – |",
          f"| after: completed / calls | {after.get('completed')} / {after.get('calls')} | "
          f"{aq(ref_after)} |",
          f"| after: still overloaded | {after.get('overloaded_at_end')} | – |", ""]


def _section_memory(L: list[str], m: dict[str, Any]) -> None:
    x = m.get("memory")
    if not x or not x.get("with_agents"):
        return
    mib = lambda k: f"{_get(x, k, 'VmRSS') / 2**20:.0f} MiB" if _get(x, k, "VmRSS") else "–"  # noqa: E731
    L += ["## Waiting callers: our server's memory and CPU (target 5)", "",
          f"The real server (`acd run`) with {x.get('agents'):,} agents logged in (all busy) "
          f"and then {x.get('callers'):,} callers arriving and waiting: each caller's queue "
          "script registers them and sends them to the dialplan's wait, where they wait in "
          "Asterisk with no session of ours. Asterisk's sides of AMI and FastAGI are played by "
          "the bench on loopback (bench/memory.py). Then a restart of our server with the same "
          "callers waiting in Asterisk.", "",
          _row("state", "resident memory"), _row("---", "---"),
          _row(f"{x.get('agents'):,} agents logged in", mib("with_agents")),
          _row(f"{x.get('waiting') or 0:,} callers waiting", mib("with_callers")),
          _row(f"after a restart, {x.get('restart_waiting') or 0:,} callers waiting",
               mib("restart_with_callers")), "",
          f"About {(x.get('per_caller_bytes') or 0) / 1024:.1f} KiB per waiting caller (the "
          "same process, before and after they arrived); with them all waiting our server "
          f"used {_pct(x.get('steady_cpu_share'))} of a core. The callers entered at "
          f"{_get(x, 'arrivals', 'callers_per_second')} a second; "
          f"{x.get('sessions')} FastAGI sessions in the restart's part for "
          f"{x.get('callers'):,} callers; the restart took {x.get('restart_seconds')} s.", ""]


def _section_startup(L: list[str], m: dict[str, Any]) -> None:
    x = m.get("startup")
    if not x or not x.get("sizes"):
        return
    L += ["## Start-up (target 8)", "",
          "The real server (`acd run --no-asterisk`, SQLite, info logging in JSON) with Asterisk's "
          "side of AMI played by the bench (every phone reachable, no channels; "
          "bench/startup.py). *Ready*: `/api/health` says `ready` (the ACD took up its state "
          "from Asterisk and the store), from the moment the process was started. **first**: "
          "a new data folder and database (the web users' passwords hashed behind, after the "
          "start); **second**: nothing changed, then every agent logs in; **restart**: with "
          "every agent logged in, their states taken up from the store. The phases are from the "
          "server's own log timestamps; its own part is all but starting Python and importing "
          "the libraries.", ""]
    for n, size in sorted(x["sizes"].items(), key=lambda kv: int(kv[0])):
        phases = [p for p in (size.get("restart") or {}).get("phases", {})]
        L += [f"**{int(n):,} agents** in {size.get('groups')} groups, {size.get('web_users')} "
              "web users:", "",
              _row("start", "ready (s)", "server's own part (s)", *phases, "log lines",
                   "passwords pending"),
              _row(*["---"] * (len(phases) + 5))]
        for k in STARTS:
            r = size.get(k) or {}
            L.append(_row(k, _ms(r.get("seconds")), _ms(r.get("server_seconds")),
                          *(_ms(_get(r, "phases", p)) for p in phases),
                          _ms(r.get("log_lines")), _ms(r.get("pending"))))
        behind = _get(size, "first", "hashed_behind") or {}
        L += ["", f"After the first start {behind.get('hashed', '–')} passwords were hashed "
                  f"behind in {behind.get('seconds', '–')} s (argon2), the server serving "
                  "meanwhile; a web login of a user still pending answered "
                  f"{_get(size, 'first', 'pending_login_status') or '–'}. "
                  f"{_get(size, 'second', 'logged_in') or '–'} agents logged in over the API in "
                  f"{_get(size, 'second', 'login_seconds') or '–'} s; the restart found "
                  f"{_get(size, 'restart', 'logged_in') or '–'} logged in.", ""]


def _section_reports(L: list[str], m: dict[str, Any]) -> None:
    x = m.get("reports")
    if not x or not x.get("reports"):
        return
    L += ["## History reports (issue 15's scale target)", "",
          f"A SQLite store holding a year of report facts: {x['calls']:,} calls' offers, "
          f"{x['legs']:,} agents' legs, {x['agent_time_rows']:,} rows of agents' time in states "
          "(5 groups, 50 agents; bench/reports_bench.py), and their sums per agent and hour "
          "that agent reports by 60 minutes, day, week or month read. Each report is the "
          "API's own code, timed twice (the first read from disk, the second from the page "
          "cache).", "",
          _row("report", "first (s)", "again (s)", "rows", "calls counted"),
          _row("---", "---", "---", "---", "---")]
    for name, r in x["reports"].items():
        L.append(_row(name, r["seconds"][0], r["seconds"][1], f"{r['rows']:,}",
                      f"{r['counted']:,}"))
    ix = x.get("indexer") or {}
    L += ["", f"The indexer made the facts of {ix.get('calls', 0):,} calls written as the "
              f"runtime writes them in {ix.get('seconds')} s: {ix.get('calls_per_second')} "
              "calls a second, on the store's write thread, behind the calls.", ""]
    run = x.get("run")
    if run:         # measured alone, later than the rest of this page
        L += [f"Measured alone (`{run.get('command')}`) on {run.get('generated_at')} (commit "
              f"{str(_get(run, 'git', 'commit') or '')[:12]}), the machine's load average "
              f"{(run.get('loadavg_end') or [None])[0]} at the end.", ""]


def _section_gaps(L: list[str], results: dict[str, Any]) -> None:
    notes = results.get("notes") or []
    missed = [t for t in results.get("targets", []) if t["met"] is False]
    if not missed and not notes:
        return
    L += ["## Targets missed, why, and what would close the gap", ""]
    for t in missed:
        L.append(f"- **Target {t['id']}** ({t['text']}): {t['figure']}.")
    L.append("")
    L += notes
    L.append("")


# =========================================================================== the gaps

def gap_notes(results: dict[str, Any]) -> list[str]:
    """For each missed target: why, from this run's figures, and what would close the gap.
    Markdown paragraphs for docs/benchmarks.md (and the notes in latest.json)."""
    m = results.get("measures", {})
    targets = {t["id"]: t for t in results.get("targets", [])}
    prof = m.get("server_profile") or {}
    shares = {x["what"]: x["share"] for x in prof.get("by_package", [])}
    ami_per_call = (round(prof["ami_messages"] / prof["completed"])
                    if prof.get("ami_messages") and prof.get("completed") else None)
    store = sum(v for k, v in shares.items() if k in ("sqlalchemy", "aiosqlite", "acd/store/db.py",
                                                        "greenlet"))
    ami = sum(v for k, v in shares.items() if k.startswith("acd/ami/"))
    mem = m.get("memory") or {}
    notes: list[str] = []

    def missed(i: int | str) -> bool:
        return (targets.get(i) or {}).get("met") is False

    t = m.get("throughput") or {}
    o = (t.get("cpu_ms_per_call") or {}).get(OURS) or {}
    a = (t.get("cpu_ms_per_call") or {}).get(AQ) or {}
    if missed(1):
        notes.append(
            "**Why (1) is missed.** At "
            f"{_ms(t.get('cpu_rate'))} calls/s our server spent {_ms(o.get('server'))} ms of CPU "
            f"per completed call and Asterisk {_ms(o.get('asterisk'))} ms in our arm; app_queue's "
            f"arm cost Asterisk {_ms(a.get('asterisk'))} ms in all. Asterisk's part of our arm "
            "(a FastAGI session per caller, an AMI Originate for the agent's leg, an AMI Bridge "
            "that moves both channels out of their holding bridges, the AMI events our session "
            "reads) is about app_queue's whole cost, so the gap is our server's own CPU: "
            f"{ami_per_call if ami_per_call is not None else '–'} AMI messages read per call "
            "(each parsed, typed and routed by Python), the caller's FastAGI session (a TCP "
            "connect, its headers, two commands), three AMI actions (Originate, Bridge, a "
            "Setvar), the call's records and "
            f"its log lines. Our server's profile (above): the store {_pct(store)}, AMI "
            f"{_pct(ami)}, the rest asyncio's turns, FastAGI, the core and logging. Tried and "
            "left: uvloop's event loop cut our server's CPU per call by about 8%, but at 25 "
            "calls/s two of its three runs failed calls (a Bridge answered after the agent's "
            "phone had hung up) where asyncio's runs failed none. **What "
            "would close it:** the caller's arrival as an AMI UserEvent instead of a FastAGI "
            "session (no connect, no session task; the entry time kept by the dialplan); "
            "fewer events read per call (the load generator's own channels are read too, "
            "which a real trunk does not add); AMI parsing outside Python's interpreter loop "
            "(a C parser), or the server under PyPy.")
    if missed(2):
        parts = _get(m, "idle_agent", "ours_breakdown_ms") or {}
        p50 = {k: _get(parts, k, "p50") for k in parts}
        notes.append(
            "**Why (2) is missed.** app_queue rings the member from inside Asterisk, in the "
            "caller's own thread, in about a millisecond. Ours leaves Asterisk twice: Asterisk "
            f"opens a FastAGI session to our server (median {_ms(p50.get('fastagi_connect'))} ms), "
            "the queue script registers the caller with the core from its arguments "
            f"({_ms(p50.get('queue_script_to_core'))} ms), the core decides in microseconds "
            f"({_ms(p50.get('core_to_ring_decision'))} ms as logged) and the AMI Originate "
            f"creates the agent's channel ({_ms(p50.get('originate_to_channel'))} ms). Each hop "
            "is a socket, a thread wake-up in Asterisk and a turn of our event loop on a "
            "machine whose two cores are shared with Asterisk, the phones and the load "
            "generator. **What would close it:** deciding from an AMI event of the caller's "
            "arrival (UserEvent) instead of a FastAGI session, which saves the connect; the "
            "Originate itself stays.")
    if missed(3):
        notes.append("**Why (3) is missed:** see the distribution above; the agent leaving the "
                     "bridge reaches the core through AMI (BridgeLeave, Hangup), which then "
                     "originates at once; a miss here means our server's event loop was busy.")
    if missed(5):
        notes.append(
            f"**Why (5) is missed.** With {mem.get('waiting', '–')} callers waiting our server "
            f"held {_ms(round((mem.get('per_caller_bytes') or 0) / 1024, 1))} KiB more per caller "
            f"and spent {_pct(mem.get('steady_cpu_share'))} of a core. A waiting caller is a "
            "core entry (the queue's place, the timers of its announcements) and a runtime "
            "entry (its channel); the bytes are Python objects and dictionaries.")
    if missed(6):
        notes.append(
            "**Why (6) is missed.** Our sustained rate is where our server's core or the "
            "machine's two cores run out (see the CPU per call above and the load table): at "
            "the first step that failed, the reason is in the throughput table.")
    if missed("6b"):
        ov = m.get("overload") or {}
        notes.append(
            "**Why (6b) is missed.** " + "; ".join(x for x in (
                f"{ov.get('ami_disconnects')} AMI disconnect(s)" if ov.get("ami_disconnects") else "",
                "the server did not survive" if ov.get("server_alive") is False else "",
                f"the API's p95 was {_get(ov, 'api_during', 'ms', 'p95')} ms with "
                f"{_get(ov, 'api_during', 'errors')} errors" if (
                    (_get(ov, 'api_during', 'ms', 'p95') or 0) >= 200
                    or _get(ov, 'api_during', 'errors')) else "",
                f"{ov.get('failed_after_arrival')} calls failed after reaching the queue "
                f"(outcomes {ov.get('outcomes')})" if ov.get("failed_after_arrival") else "",
                f"Asterisk did not place {ov.get('not_placed')} of our calls against "
                f"{_get(ov, 'reference', 'not_placed')} of app_queue's at the same rate"
                if ov.get("not_placed_ok") is False else "",
                "service did not recover in the run after" if ov.get("recovered") is False else "",
            ) if x) + ".")
    if missed(7):
        p = m.get("screen_pop") or {}
        notes.append(
            "**Why (7) is missed.** The ring event leaves when the phone's 180 Ringing reaches "
            "Asterisk and Asterisk's Newstate reaches our server over AMI, so it includes the "
            "phone's own answer to the INVITE and our event loop's backlog at "
            f"{_ms(p.get('rate'))} calls/s. Lost ring events: {p.get('lost')} (a call the phone "
            "answered before ringing is announced with `answered`, not `ring`).")
    if missed(8):
        x = m.get("startup") or {}
        big = max((x.get("sizes") or {"0": {}}).items(), key=lambda kv: int(kv[0]))[1]
        slow = {k: max((_get(big, k, "phases") or {"–": 0}).items(), key=lambda kv: kv[1])
                for k in STARTS}
        notes.append(
            "**Why (8) is missed.** The longest phase of each start: " + ", ".join(
                f"{k}: {p} ({_ms(v)} s)" for k, (p, v) in slow.items()) + ". A phase that "
            "grows with the agents is one to take apart with `python -m cProfile` on "
            "`acd run` (per-agent queries, argon2, log lines or loops).")
    core = m.get("core") or {}
    snap = _get(core, "ops", "snapshot_agents", str(max(core.get("sizes") or [0])), "us", "p50")
    snapq = _get(core, "ops", "snapshot_queues", str(max(core.get("sizes") or [0])), "us", "p50")
    mem = m.get("memory") or {}
    if snap is not None or mem:
        notes.append(
            "**Beyond the targets: what grows with the number of agents and callers.** The core "
            "does not (table 6); the supervisors' whole board takes "
            f"{_ms(snap)} µs for the agents and {_ms(snapq)} µs for the queues at the largest "
            "size here (built only while a supervisor's page is subscribed, at most four times "
            "a second, and sent as changes); one agent's view is built alone "
            f"(a login took {_ms(_get(mem, 'api_login_ms', 'p50'))} ms at median with "
            f"{mem.get('agents', '–')} agents). New callers entered the queue at "
            f"{_ms(_get(mem, 'arrivals', 'callers_per_second'))}/s with {mem.get('agents', '–')} "
            "agents. Waiting callers wait in Asterisk's dialplan with no session of ours (keys "
            "come as AMI DTMF events): "
            f"{_pct(mem.get('steady_cpu_share'))} of a core with {mem.get('waiting', '–')} "
            "waiting.")
    for name, why in (m.get("errors") or {}).items():
        notes.append(f"**The {name} measure did not finish:** {why}")
    return notes
