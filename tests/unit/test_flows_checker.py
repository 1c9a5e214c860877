"""The flow checker: one bad file per error class (tests/unit/flows/), each rejected by
`acd flows check` with the file, the line and a plain message; the good file and the example
flows pass; checks across files; Asterisk's sound names; the picture's DOT text."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from acd.cli import main
from agi.flows import graph
from agi.flows.cli import check_files
from agi.flows.loader import check_set, load_file, load_text
from agi.flows.prompts import SoundIndex
from tests.conftest import PROJECT

BAD = Path(__file__).parent / "flows"
EXAMPLES = PROJECT / "ivr_flows"

#: file -> (error id, line, message)
EXPECTED = {
    "yaml_syntax.yaml": ("flow.yaml_syntax", 6, "not valid YAML: expected <block end>, but found "
                                                "'<block mapping start>'"),
    "unknown_kind.yaml": ("flow.unknown_kind", 8, "node 'ask': unknown node kind 'ask_question' "
                          "(known: play, say, menu, collect, verify_identity, set, branch, hours, "
                          "queue, voicemail, survey, http, goto, transfer, hangup)"),
    "unknown_key.yaml": ("flow.unknown_key", 7, "node 'main': unknown key 'retires' for a menu node "
                         "(known: fallback, invalid_prompt, keys, kind, no_input_prompt, note, "
                         "prompt, retries, timeout)"),
    "missing_key.yaml": ("flow.missing_key", 4, "node 'main': a menu node needs fallback:"),
    "wrong_type.yaml": ("flow.bad_type", 7, "node 'main'.timeout: expected a number of seconds, "
                        "got 'five seconds'"),
    "bad_key.yaml": ("flow.bad_value", 8, "node 'main'.keys: 'A1' is not a key (one of 0-9, * or #; "
                     "write '*' and '#' in quotes)"),
    "unknown_next.yaml": ("flow.unknown_node", 6, "node 'start': next -> 'mian_menu': no node of "
                          "that name in this flow"),
    "unreachable.yaml": ("flow.unreachable", 9, "node 'forgotten' is unreachable: no path from the "
                         "start ('start') leads to it"),
    "loop_without_input.yaml": ("flow.loop_without_input", 3, "node 'start': a loop that takes no "
                                "input: start -> check -> again -> start (put a menu, collect or "
                                "other node that waits for the caller in it)"),
    "missing_prompt.yaml": ("flow.prompt_missing", 5, "node 'start'.prompt: prompt file "
                            f"'recordings/welcome.wav' not found (looked for {BAD}/recordings/welcome.wav)"),
    "unknown_flow.yaml": ("flow.unknown_flow", 5, "node 'start': goto flow 'paymnets': no such flow"),
    "unknown_group.yaml": ("flow.unknown_group", 5, "node 'start'.group: no skill group 'finanse' is "
                           "configured (known: general, orders)"),
}


@pytest.fixture
def config(tmp_path) -> Path:
    """A config with two skill groups and an empty flows folder; no Asterisk is known here."""
    (tmp_path / "flows").mkdir()
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "asterisk": {"mode": "managed", "root": str(tmp_path / "no-root")},
        "agents": [{"id": "1001"}],
        "groups": [{"name": "general", "members": {"1001": 1}}, {"name": "orders"}],
        "flows": {"dir": "flows"}}))
    return path


def test_every_error_class_has_a_bad_file():
    assert sorted(EXPECTED) == sorted(p.name for p in BAD.glob("*.yaml") if p.name != "good.yaml")
    ids = {v[0] for v in EXPECTED.values()}
    assert {"flow.yaml_syntax", "flow.unknown_kind", "flow.unknown_key", "flow.missing_key",
            "flow.bad_type", "flow.bad_value", "flow.unknown_node", "flow.unreachable",
            "flow.loop_without_input", "flow.prompt_missing", "flow.unknown_flow",
            "flow.unknown_group"} == ids


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_acd_flows_check_rejects_with_file_line_and_message(name, config, capsys):
    path = BAD / name
    assert main(["-c", str(config), "flows", "check", str(path)]) == 1
    out, err = capsys.readouterr()
    error_id, line, message = EXPECTED[name]
    assert out.splitlines() == [f"{path}:{line}: {message} [{error_id}]"]
    assert err.strip() == "1 error in 1 file"


def test_the_good_file_passes_and_several_files_are_checked_together(config, capsys):
    good = BAD / "good.yaml"
    assert main(["-c", str(config), "flows", "check", str(good)]) == 0
    assert capsys.readouterr().out == ""
    assert main(["-c", str(config), "flows", "check", str(good), str(BAD / "unreachable.yaml"),
                 str(BAD / "unknown_next.yaml")]) == 1
    out, err = capsys.readouterr()
    assert [line.split(":")[1] for line in out.splitlines()] == ["6", "9"]   # by file name
    assert err.strip() == "2 errors in 3 files"


def test_every_error_in_a_file_is_reported_at_once(tmp_path):
    text = (BAD / "unknown_key.yaml").read_text().replace("prompt: dir-welcome", "prompt: 42")
    _, errors = load_text(text, "f.yaml")
    assert [(e.id, e.line) for e in errors] == [("flow.bad_type", 5), ("flow.unknown_key", 7)]


def test_the_example_flows_pass_and_goto_finds_the_other_file():
    flows, errors = check_files(sorted(EXAMPLES.glob("*.yaml")), EXAMPLES,
                                ["general", "orders", "payments"], None, None)
    assert errors == []
    assert {f.name for f in flows} == {"hotline", "payments", "survey"}
    # Checked alone, the hotline's goto still finds payments in the same folder.
    flows, errors = check_files([EXAMPLES / "hotline.yaml"], EXAMPLES, None, None, None)
    assert errors == [] and [f.name for f in flows] == ["hotline"]


def test_across_files_duplicate_names_and_loops_through_goto(tmp_path):
    a = tmp_path / "a.yaml"
    a.write_text("nodes:\n  go:\n    kind: goto\n    flow: b\n")
    b = tmp_path / "b.yaml"
    b.write_text("nodes:\n  back:\n    kind: set\n    vars: {x: '1'}\n    next: go\n"
                 "  go:\n    kind: goto\n    flow: a\n")
    c = tmp_path / "c.yaml"
    c.write_text("name: a\nnodes:\n  bye:\n    kind: hangup\n")
    flows = [load_file(p)[0] for p in (a, b, c)]
    errors = check_set(flows)
    assert [(e.id, Path(e.file).name, e.line) for e in errors] == [
        ("flow.duplicate_flow", "c.yaml", 1), ("flow.loop_without_input", "a.yaml", 2)]
    assert "a.go -> b.back -> b.go -> a.go" in errors[1].message


def test_sound_names_are_checked_against_asterisks_sounds():
    sounds = SoundIndex({"en": {"hello", "digits/1"}, "fr": {"bonjour"}})
    text = ("language: fr\nnodes:\n  a:\n    kind: play\n    prompt: [bonjour, hello, digits/1, "
            "nosuch]\n    next: b\n  b:\n    kind: hangup\n")
    _, errors = load_text(text, "f.yaml", sound_known=sounds.known)
    assert [(e.id, e.line, e.message) for e in errors] == [
        ("flow.prompt_missing", 5, "node 'a'.prompt: Asterisk has no sound 'nosuch' for language 'fr'")]
    assert SoundIndex({}).known("anything", "en") is None      # nothing known: not checked


@pytest.mark.parametrize("snippet, error", [
    ("kind: collect\n    prompt: hello\n    var: caller_number\n    next: b\n    fallback: b",
     "node 'a': caller_number is kept by the IVR"),
    ("kind: collect\n    prompt: hello\n    var: x\n    terminator: #\n    next: b\n    fallback: b",
     "node 'a'.terminator: expected text, got nothing (write '#' in quotes: a bare # starts a comment)"),
    ("kind: http\n    url: ftp://x/\n    ok: b\n    failed: b",
     "node 'a'.url: 'ftp://x/' is not an http:// or https:// URL"),
    ("kind: branch\n    cases: [{equals: x, next: b}]\n    else: b",
     "node 'a'.cases[1]: a case needs a condition: one of var, caller, verified, time"),
    ("kind: hours\n    hours: ['mon-fri 9-5']\n    open: b\n    closed: b",
     "node 'a'.hours: 'mon-fri 9-5': write e.g. 'mon-fri 09:00-18:00' or 'sat 10:00-14:00'"),
    ("kind: play\n    prompt: {text: 你好}\n    next: b",
     "node 'a'.prompt: a text prompt needs a voice (the flow's voice: or the prompt's)"),
    ("kind: say\n    next: b", "node 'a': say needs one of digits: or number:"),
    ("kind: collect\n    prompt: hello\n    var: x\n    pattern: '[0-9'\n    next: b\n    fallback: b",
     "node 'a'.pattern: not a regular expression: unterminated character set at position 0"),
])
def test_values_that_do_not_fit(snippet, error):
    text = f"nodes:\n  a:\n    {snippet}\n  b:\n    kind: hangup\n"
    _, errors = load_text(text, "f.yaml")
    assert [e.message for e in errors] == [error]


def test_a_picture_names_every_node_and_branch_and_escapes_text():
    flow, errors = load_file(EXAMPLES / "hotline.yaml")
    assert not errors
    dot = graph.to_dot(flow)
    for name in flow.nodes:
        assert f'"n_{name}" [label="{name}\\n[' in dot
    assert '"n_main_menu" -> "n_payments" [label="key 2"' in dot
    assert '"n_hours" -> "n_closed" [label="closed"' in dot
    assert '"n_payments" -> "flow_payments" [style=dashed]' in dot
    text = 'nodes:\n  a:\n    kind: hangup\n    note: "say \\"hi\\" \\\\ there"\n'
    flow, _ = load_text(text, "q.yaml")
    assert '[hangup]\\nsay \\"hi\\" \\\\ there"' in graph.to_dot(flow)


def test_every_value_type_of_the_model_has_its_check():
    from agi.flows import loader, model
    assert set(loader._TYPE_CHECKS) == set(model.TYPES)
