"""Flows with their real tools: the admin API on a real aiohttp server (status, reload that
keeps the old version, the picture, the verification report), the log of a refused reload,
prompts synthesized by espeak-ng and converted by sox, `acd flows check` with synthesis,
`acd flows graph` through Graphviz, `acd directory import`."""
from __future__ import annotations

import asyncio
import wave
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from acd.cli import main
from acd.store.db import Store
from acd.web.api import make_app
from tests.web_login import login_as, web_for_tests
from agi.flows.loader import load_text
from agi.flows.prompts import PromptLibrary
from agi.flows.registry import FlowRegistry
from tests.conftest import PROJECT

EXAMPLES = PROJECT / "ivr_flows"


@dataclass
class _Cfg:
    class agi:  # noqa: N801
        host = "127.0.0.1"

    class hotline:  # noqa: N801
        number = "7000"


@dataclass
class _Flows:
    registry: FlowRegistry


@pytest.fixture
async def api(tmp_path, store):
    d = tmp_path / "flows"
    d.mkdir()
    (d / "a.yaml").write_text("nodes:\n  x: {kind: hangup, prompt: digits/1}\n")
    reg = FlowRegistry(d, numbers={"7000": "a"})
    await reg.reload("start")
    app = make_app(store=store, ami=None, agi=None, cfg=_Cfg(), flows=_Flows(reg),
                   web_ctx=await web_for_tests(store))
    raw = TestClient(TestServer(app, host="127.0.0.1"))
    await raw.start_server()
    client = await login_as(raw, "admin")         # the flows' routes are for admins
    yield client, d, reg
    await raw.close()


async def test_flows_status_reload_keeps_the_old_version_and_says_so(api):
    client, d, reg = api
    r = await client.get("/api/flows")
    body = await r.json()
    assert r.status == 200 and body["status"] == "ok" and body["errors"] == []
    assert [(f["name"], f["numbers"]) for f in body["flows"]] == [("a", ["7000"])]
    version = body["flows"][0]["version"]
    (d / "a.yaml").write_text("nodes:\n  x: {kind: hangup, prompt: digits/1}\n  y:\n    kind: play\n")
    with capture_logs() as logs:
        r = await client.post("/api/flows/reload")
    body = await r.json()
    assert r.status == 200 and body["status"] == "errors"
    assert body["flows"][0]["version"] == version               # the old one serves
    assert body["errors"] == [
        {"id": "flow.missing_key", "file": str(d / "a.yaml"), "line": 4,
         "message": "node 'y': a play node needs prompt:"},
        {"id": "flow.missing_key", "file": str(d / "a.yaml"), "line": 4,
         "message": "node 'y': a play node needs next:"}]
    warned = [entry for entry in logs if entry["event"] == "flows.reload_errors"]
    assert len(warned) == 1 and warned[0]["kept_working_versions"] is True
    assert warned[0]["serving"] == {"a": version} and warned[0]["log_level"] == "warning"
    assert "a.yaml:4: node 'y': a play node needs prompt:" in warned[0]["errors"][0]


async def test_the_picture_of_a_serving_flow_and_an_unknown_one(api):
    client, _d, _reg = api
    r = await client.get("/api/flows/a/graph")
    assert r.status == 200 and r.content_type == "image/svg+xml"
    svg = await r.text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "digits/1" in svg
    r = await client.get("/api/flows/nope/graph")
    assert r.status == 404 and (await r.json())["error"] == "http.not_found"


async def test_verification_report_route(api, store):
    client, _d, _reg = api
    r = await client.get("/api/reports/verification?since=2026-11-01&until=2026-12-01")
    body = await r.json()
    assert r.status == 200 and body["calls"] == 0 and body["verified_share"] is None
    assert body["since"] == "2026-11-01T00:00:00+00:00"
    r = await client.get("/api/reports/verification?since=yesterday")
    assert r.status == 400 and (await r.json())["error"] == "http.bad_request"


def _shape(path: Path) -> tuple[int, int, int]:
    with wave.open(str(path), "rb") as w:
        return w.getframerate(), w.getnchannels(), w.getsampwidth()


def test_text_prompts_are_synthesized_once_converted_and_published(tmp_path):
    lib = PromptLibrary(tmp_path / "cache", tmp_path / "ast", "/srv/acd/x/sounds")
    text = ("voice: cmn\nlanguage: zh\nnodes:\n  a:\n    kind: play\n    prompt: {text: 您好}\n"
            "    next: b\n  b: {kind: hangup, prompt: [{file: tone.wav}]}\n")
    with wave.open(str(tmp_path / "tone.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(b"\x00\x01" * 2 * 44100)
    flow, errors = load_text(text, str(tmp_path / "f.yaml"), base=tmp_path / "f.yaml")
    assert errors == []
    assert lib.prepare(flow) == []
    said, tone = flow.nodes["a"].params["prompt"][0], flow.nodes["b"].params["prompt"][0]
    for p in (said, tone):
        assert p.play.startswith("/srv/acd/x/sounds/acd-flows/")
        published = tmp_path / "ast" / "acd-flows" / (p.play.rsplit("/", 1)[1] + ".wav")
        assert _shape(published) == (8000, 1, 2)
    cached = sorted((tmp_path / "cache").glob("tts-*.wav"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    flow2, _ = load_text(text, str(tmp_path / "f.yaml"), base=tmp_path / "f.yaml")
    assert lib.prepare(flow2) == [] and cached[0].stat().st_mtime_ns == stamp   # once
    assert flow2.nodes["a"].params["prompt"][0].play == said.play
    digits, errors = lib.digit_prompts("cmn", "f.yaml")
    assert errors == [] and sorted(digits) == list("0123456789")


def test_a_voice_espeak_does_not_know_is_a_flow_error(tmp_path):
    lib = PromptLibrary(tmp_path / "cache")
    flow, _ = load_text("nodes:\n  a: {kind: hangup, prompt: {text: hi, voice: no-such-voice}}\n", "f.yaml")
    errors = lib.prepare(flow)
    assert [(e.id, e.line) for e in errors] == [("flow.prompt_synthesis", 2)]
    assert "espeak-ng has no voice 'no-such-voice'" in errors[0].message


@pytest.fixture
def project_config(tmp_path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "data_dir": str(tmp_path / "data"),
        "asterisk": {"mode": "managed", "root": str(PROJECT / ".cache" / "asterisk-root")},
        "agents": [{"id": "1001"}],
        "groups": [{"name": n} for n in ("general", "orders", "payments")],
        "flows": {"dir": str(EXAMPLES), "numbers": {"7000": "hotline", "7009": "survey"}}}))
    return path


def test_acd_flows_check_synthesizes_the_example_prompts(project_config, capsys):
    assert main(["-c", str(project_config), "flows", "check"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err.strip() == "3 flow files OK: hotline, payments, survey"


def test_acd_flows_graph_draws_each_example(project_config, tmp_path, capsys):
    for name in ("hotline", "payments", "survey"):
        out = tmp_path / f"{name}.svg"
        assert main(["-c", str(project_config), "flows", "graph", name, "-o", str(out)]) == 0
        svg = out.read_text()
        assert "<svg" in svg and f"flow {name}" in svg
    png = tmp_path / "hotline.png"
    assert main(["-c", str(project_config), "flows", "graph", "hotline", "-o", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["-c", str(project_config), "flows", "graph", "nosuch"]) == 2
    assert "flows.invalid" in capsys.readouterr().err


def test_acd_directory_import(project_config, tmp_path, capsys):
    good = tmp_path / "c.csv"
    good.write_text("customer_number,name,phone\nC1,Li Lei,13911112222\nC2,Han,+8613933334444\n")
    assert main(["-c", str(project_config), "directory", "import", str(good)]) == 0
    assert "2 customers added, 0 updated" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_number,phone\nC3,not a phone\n")
    assert main(["-c", str(project_config), "directory", "import", str(bad)]) == 2
    assert f"directory.bad_csv: {bad}, line 2" in capsys.readouterr().err
    assert main(["-c", str(project_config), "directory", "import", str(good)]) == 0
    assert "0 customers added, 2 updated" in capsys.readouterr().out

    async def count() -> int:
        cfg_url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'acd.db'}"
        s = Store(cfg_url)
        try:
            from sqlalchemy import func, select
            from acd.store.models import Customer
            async with s.session() as db:
                return await db.scalar(select(func.count()).select_from(Customer))
        finally:
            await s.close()
    assert asyncio.run(count()) == 2
