"""`acd run` stops Asterisk at exit only if that run started it, and never with
--keep-asterisk (restarting the server alone leaves Asterisk and its calls alone). Asterisk
and the server are stand-ins here: the unit tier checks the command's wiring only."""
from __future__ import annotations

import pytest

from acd import cli


class FakeAsterisk:
    def __init__(self, running: bool) -> None:
        self.running, self.downs = running, 0
        self.install = type("I", (), {"version": "22"})()

    def pid(self):
        return 4242 if self.running else None

    def up(self):
        self.running = True

    def down(self):
        self.downs += 1
        self.running = False

    def where(self):
        return "here"


@pytest.mark.parametrize("running, keep, downs", [
    (False, False, 1), (False, True, 0), (True, False, 0), (True, True, 0)])
def test_asterisk_is_stopped_only_when_this_run_started_it(monkeypatch, tmp_path, running,
                                                          keep, downs):
    ast = FakeAsterisk(running)
    monkeypatch.setattr(cli, "_asterisk", lambda cfg: ast)

    async def serve(cfg, ready=None, manage_asterisk=True):
        return None

    import acd.app
    monkeypatch.setattr(acd.app, "serve", serve)
    (tmp_path / "config.yaml").write_text("agents: []\n")
    argv = ["-c", str(tmp_path / "config.yaml"), "run"] + (["--keep-asterisk"] if keep else [])
    monkeypatch.chdir(tmp_path)
    args = cli.parser().parse_args(argv)
    assert args.func(args) == 0
    assert ast.downs == downs
