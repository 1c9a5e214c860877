"""The bench's measure ``webrtc`` (bench/webrtc.py), its pure parts: the plan, the codec check,
the CPU per call, the ratios to the SIP phone arm, the section of docs/benchmarks.md; and the
bench's config with its browser agents' group."""
from __future__ import annotations

import pytest

from acd.errors import UserError
from bench import instance as inst
from bench import report, webrtc
from bench.__main__ import FULL, MEASURES, QUICK, Runner

SHOW_CHANNEL = """ -- General --
           Name: PJSIP/2041-00000012
           Type: PJSIP
       UniqueID: 1733330000.55
       LinkedID: 1733330000.53
      Caller ID: 2041
          State: Up (6)
  NativeFormats: (opus)
    WriteFormat: opus
     ReadFormat: opus
 WriteTranscode: No
  ReadTranscode: No
"""


def test_webrtc_is_a_measure_with_a_size_in_both_plans():
    assert "webrtc" in MEASURES
    assert FULL.webrtc_calls == 10 and FULL.webrtc_hold == 30.0 and FULL.webrtc_idle > 0
    assert 0 < QUICK.webrtc_calls < FULL.webrtc_calls and QUICK.webrtc_hold < FULL.webrtc_hold


def test_the_runner_sets_browser_agents_aside_only_when_webrtc_runs():
    on = Runner(QUICK, {"webrtc"}).bench.setup
    assert on.browser_agents == QUICK.webrtc_calls
    assert Runner(QUICK, {"idle"}).bench.setup.browser_agents == 0


def test_browser_agents_have_a_group_of_their_own_and_the_codecs_go_to_asterisk():
    s = inst.BenchSetup(agents=10, phones=4, browser_agents=3, browser_codecs=("opus",))
    assert s.browser_ids() == ["2005", "2006", "2007"]
    data = inst.config_data(s)
    groups = {g["name"]: g for g in data["groups"]}
    assert set(groups[inst.WEBRTC_GROUP]["members"]) == {"2005", "2006", "2007"}
    assert groups[inst.WEBRTC_GROUP]["number"] == inst.WEBRTC_DIRECT
    assert set(groups[inst.GROUP]["members"]) == {"2001", "2002", "2003", "2004"}
    assert data["asterisk"]["browser_codecs"] == ["opus"]
    assert inst.WEBRTC_DIRECT not in (inst.OURS_DIRECT, inst.OURS_HOTLINE, inst.AQ_DIRECT,
                                      inst.AQ_HOTLINE)
    assert [g["name"] for g in inst.config_data(inst.BenchSetup(agents=10, phones=4))["groups"]] \
        == [inst.GROUP]
    with pytest.raises(UserError) as e:
        inst.config_data(inst.BenchSetup(agents=10, phones=8, browser_agents=3))
    assert e.value.id == "bench.setup"


def test_native_formats_from_core_show_channel():
    assert webrtc.native_formats(SHOW_CHANNEL) == ["opus"]
    assert webrtc.native_formats("  NativeFormats: (ulaw|alaw)\n") == ["ulaw", "alaw"]
    assert webrtc.native_formats("No such channel 'PJSIP/x'\n") == []


def test_an_arm_fails_on_a_missing_leg_or_another_codec():
    ok = {"PJSIP/2041-1": ["opus"], "PJSIP/2042-2": ["opus"]}
    assert webrtc.codec_problems(ok, "opus", 2) == []
    got = webrtc.codec_problems({"PJSIP/2041-1": ["ulaw"], "PJSIP/2042-2": []}, "opus", 3)
    assert got == ["2 agent legs up of 3 calls", "PJSIP/2041-1: ['ulaw'] instead of opus",
                   "PJSIP/2042-2: gone instead of opus"]


def test_cpu_per_call_is_the_held_rate_minus_the_idle_rate_over_the_calls():
    held = {"asterisk": 3.3, "server": 0.6, "chromium": None}
    idle = {"asterisk": 0.1, "server": 0.2, "chromium": 0.0}
    got = webrtc.per_call(held, idle, held_s=30.0, idle_s=10.0, calls=10)
    # Asterisk: (3.3 / 30 - 0.1 / 10) / 10 = 0.01 s of CPU per second per call
    assert got["asterisk"]["ms_per_call_second"] == pytest.approx(10.0)
    assert got["asterisk"]["core_percent_per_call"] == pytest.approx(1.0)
    assert got["server"]["ms_per_call_second"] == pytest.approx(0.0)
    assert got["chromium"] is None
    assert webrtc.per_call(held, idle, 30.0, 10.0, 0)["asterisk"] is None
    assert webrtc.deltas({"a": 1.0, "b": None}, {"a": 3.5, "b": 2.0}) == {"a": 2.5, "b": None}


def _arm(ms):
    return {"per_call": {"asterisk": None if ms is None else {"ms_per_call_second": ms,
                                                             "core_percent_per_call": ms / 10}}}


def test_ratios_are_to_the_sip_phone_arm():
    arms = {"sip": _arm(8.0), "browser_g711": _arm(10.0), "browser_opus": _arm(14.0)}
    assert webrtc.ratios(arms) == {"sip": 1.0, "browser_g711": 1.25, "browser_opus": 1.75}
    assert webrtc.ratios({"sip": _arm(None), "browser_opus": _arm(3.0)}) == {
        "sip": None, "browser_opus": None}


def test_the_page_section_shows_the_three_arms_side_by_side_and_the_run(tmp_path):
    arms = {}
    for name, label, codec, ms in (("sip", "SIP phones (baresip), G.711", "ulaw", 8.0),
                                   ("browser_g711", "browser phones, G.711", "ulaw", 10.0),
                                   ("browser_opus", "browser phones, Opus", "opus", 14.0)):
        a = _arm(ms)
        a["per_call"]["server"] = {"ms_per_call_second": 1.5, "core_percent_per_call": 0.15}
        a["per_call"]["chromium"] = {"ms_per_call_second": 40.0, "core_percent_per_call": 4.0}
        arms[name] = {**a, "label": label, "agent_leg_formats": [codec]}
    x = {"calls": 10, "hold_seconds": 30.0, "idle_seconds": 15.0, "arms": arms,
         "ratios": webrtc.ratios(arms),
         "run": {"command": "python -m bench --only webrtc", "generated_at": "2026-12-04T19:00",
                 "git": {"commit": "abcdef1234567890"}, "loadavg_end": [2.5, 2.0, 1.9]}}
    md = report.markdown({"measures": {"webrtc": x}}, [])
    text = md[md.index("## What a browser phone costs Asterisk"):]
    text = text[:text.index("\n## ", 5)] if "\n## " in text[5:] else text
    assert "| browser phones, Opus | opus | 14.00 | 1.400 | 1.75× | 1.50 | 40.00 |" in text
    assert "| SIP phones (baresip), G.711 | ulaw | 8.00 | 0.800 | 1.00× | 1.50 | – |" in text
    assert "| browser phones, G.711 | ulaw | 10.00 | 1.000 | 1.25× |" in text
    assert "10 concurrent calls held 30 s" in text
    assert "abcdef123456" in text and "load average 2.5 at the end" in text
    assert "## What a browser phone costs Asterisk" not in report.markdown({"measures": {}}, [])
