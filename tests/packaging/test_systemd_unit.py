"""The sidecar's systemd unit: shipped in the wheel, printed for the running
install by `v6alt sidecar --print-systemd-unit`, hardened, and accepted by
`systemd-analyze verify`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from v6alt.prosody_bridge.systemd_unit import UNIT_NAME, render_unit, unit_template

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def _print_unit(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "v6alt", "sidecar", "--print-systemd-unit", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def _directives(unit: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


def test_the_wheel_ships_the_unit_template() -> None:
    template = unit_template()
    assert "ExecStart=@V6ALT@ sidecar --config @CONFIG@" in template


def test_printed_unit_runs_this_installs_v6alt() -> None:
    unit = _directives(_print_unit())
    beside = Path(sys.executable).parent / "v6alt"
    assert beside.is_file(), "the test env has no v6alt script beside its python"
    assert unit["ExecStart"] == [f"{beside.absolute()} sidecar --config /etc/v6alt/sidecar.yaml"]


def test_printed_unit_takes_the_config_path(tmp_path: Path) -> None:
    config = tmp_path / "my sidecar.yaml"
    unit = _directives(_print_unit("--config", str(config)))
    assert unit["ExecStart"][0].endswith(f' sidecar --config "{config}"')


def test_unit_is_hardened() -> None:
    unit = _directives(render_unit("/opt/v6alt/bin/v6alt"))
    assert unit["DynamicUser"] == ["yes"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["NoNewPrivileges"] == ["yes"]
    assert unit["RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX"]
    assert unit["CapabilityBoundingSet"] == [""]
    assert "Documentation" not in unit  # it pointed at a file no install has


def test_specifiers_in_paths_are_escaped() -> None:
    unit = _directives(render_unit("/opt/v6alt%x/bin/v6alt", config="/etc/v6alt/a$b.yaml"))
    assert unit["ExecStart"] == ["/opt/v6alt%%x/bin/v6alt sidecar --config /etc/v6alt/a$$b.yaml"]
    with pytest.raises(ValueError, match="absolute"):
        render_unit("v6alt")


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_printed_unit(tmp_path: Path) -> None:
    path = tmp_path / UNIT_NAME
    path.write_text(_print_unit())
    done = subprocess.run(
        [str(SYSTEMD_ANALYZE), "verify", str(path)], capture_output=True, text=True, check=False
    )
    # verify prints nothing and exits 0 for a unit without findings.
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_fails_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a unit whose ExecStart does not exist is flagged."""
    path = tmp_path / UNIT_NAME
    path.write_text(render_unit("/nonexistent/bin/v6alt").replace("Type=notify", "Type=bogus"))
    done = subprocess.run(
        [str(SYSTEMD_ANALYZE), "verify", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode != 0 or done.stderr
