"""No Docker engine runs here, so the docker/ files are checked as far as plain tools allow:
the compose file's structure, that every file a Dockerfile copies exists, that every command
the containers run is a valid `acd` command line, and that the render step works offline."""
import re
import shlex
from pathlib import Path

import yaml

from acd import cli
from tests.conftest import PROJECT

DOCKER = PROJECT / "docker"


def compose():
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def dockerfile_lines(name):
    text = (DOCKER / name).read_text().replace("\\\n", " ")
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def test_compose_services_build_existing_dockerfiles_and_declare_volumes():
    c = compose()
    assert {n for n, svc in c["services"].items() if not svc.get("profiles")} == {
        "render", "asterisk", "acd"}
    assert {n for n, svc in c["services"].items() if "ha" in svc.get("profiles", [])} == {
        "postgres", "acd-standby"}
    declared = set(c["volumes"])
    for name, svc in c["services"].items():
        build = svc.get("build") or {"context": ".", "dockerfile": ""}
        assert "image" in svc or (DOCKER / build["context"] / build["dockerfile"]).resolve().is_file(), name
        assert svc["network_mode"] == "host", name
        for vol in svc.get("volumes", []):
            assert vol.split(":")[0] in declared, (name, vol)
    assert c["services"]["asterisk"]["depends_on"]["render"]["condition"] == "service_completed_successfully"


def test_render_and_asterisk_share_the_inside_path():
    c = compose()
    render_cmd = c["services"]["render"]["command"]
    inside = render_cmd[render_cmd.index("--inside") + 1]
    out = render_cmd[render_cmd.index("--out") + 1]
    assert f"asterisk-conf:{out}" in c["services"]["render"]["volumes"]
    assert f"asterisk-conf:{inside}" in c["services"]["asterisk"]["volumes"]
    cmd = [ln for ln in dockerfile_lines("Dockerfile.asterisk") if ln.startswith("CMD")][0]
    assert f"{inside}/etc/asterisk.conf" in cmd


def test_every_copied_path_exists():
    for name in ("Dockerfile.server", "Dockerfile.asterisk"):
        for ln in dockerfile_lines(name):
            if ln.startswith("COPY") and "--from=" not in ln:     # not from a build stage
                sources = shlex.split(ln)[1:-1]
                for src in sources:
                    assert (PROJECT / src).exists(), f"{name}: COPY {src}"


def test_container_commands_are_valid_acd_command_lines():
    c = compose()
    p = cli.parser()
    for name in ("render", "acd", "acd-standby"):
        argv = c["services"][name]["command"]
        assert argv[0] == "acd"
        p.parse_args(argv[1:])  # exits (SystemExit) on an invalid command line
    cmd = [ln for ln in dockerfile_lines("Dockerfile.server") if ln.startswith("CMD")][0]
    argv = yaml.safe_load(cmd[3:].strip())
    p.parse_args(argv[1:])


def test_asterisk_image_installs_the_managed_roots_packages():
    from acd.asterisk.provision import ROOT_PACKAGES
    run = " ".join(ln for ln in dockerfile_lines("Dockerfile.asterisk") if ln.startswith("RUN"))
    for pkg in ROOT_PACKAGES:
        if pkg != "baresip":  # the softphone is for tests and demos, not the server image
            assert re.search(rf"\b{re.escape(pkg)}\b", run), pkg
    assert dockerfile_lines("Dockerfile.asterisk")[0] == "FROM debian:sid-slim"


def test_render_step_writes_config_for_the_asterisk_container(tmp_path):
    cfgfile = tmp_path / "config.yaml"
    cfgfile.write_text((PROJECT / "config.yaml").read_text())
    out = tmp_path / "conf"
    rc = cli.main(["-c", str(cfgfile), "asterisk", "render", "--out", str(out), "--inside", "/srv/acd/main"])
    assert rc == 0
    conf = (out / "etc" / "asterisk.conf").read_text()
    assert "astetcdir => /srv/acd/main/etc" in conf
    manager = (out / "etc" / "manager.conf").read_text()
    secret = re.search(r"^secret = (\S+)$", manager, re.M).group(1)
    assert len(secret) >= 16  # generated, never a default
    assert (out / "etc").stat().st_mode & 0o077 == 0


def test_the_standbys_environment_makes_a_valid_config():
    """The ha profile's standby: its ACD_* variables load as a config that passes the checks
    (a leader and a standby on one host: its own HTTP and FastAGI ports, both in the list)."""
    from acd import config as configmod
    env = compose()["services"]["acd-standby"]["environment"]
    cfg = configmod.load(PROJECT / "config.yaml", environ=dict(env))
    assert cfg.ha.enabled and cfg.ha.node == "acd-b"
    assert cfg.agi.servers == ("127.0.0.1:4573", f"127.0.0.1:{cfg.agi.port}")
    assert cfg.database_url.startswith("postgresql+asyncpg://")
