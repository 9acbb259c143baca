"""``v6alt demo`` and ``v6alt lab up --with xmpp`` from the command line, as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from v6alt.cli import main
from v6alt.lab.demo import find_matrix_half
from v6alt.lab.matrix import synapse_installed
from v6alt.lab.netns import list_netns
from v6alt.lab.procs import process_start_time


def v6alt(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "v6alt", *args], capture_output=True, text=True, timeout=timeout
    )


def test_demo_help_lists_the_steps() -> None:
    result = v6alt("demo", "--help")
    assert result.returncode == 0
    for text in ("--keep", "Prosody 13", "XMPP message", "Matrix"):
        assert text in result.stdout


def test_demo_without_root_or_synapse_says_why_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process with the euid faked: a real unprivileged user could not even
    # import v6alt from tox's private (0700) virtualenv. Without root the demo
    # falls back to Matrix on loopback (tests/e2e/test_demo_loopback.py); with
    # matrix-synapse not importable that cannot run either, and it says so.
    import v6alt.lab.matrix as lab_matrix

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(lab_matrix, "find_spec", lambda name: None)
    code = main(["demo"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out.startswith("v6alt demo: not root, so no network namespaces or Yggdrasil")
    assert "XMPP half is skipped because it needs root to start Prosody" in out
    assert err.startswith("v6alt demo: matrix-synapse is not installed for ")
    assert len(err.strip().splitlines()) == 1


def test_demo_runs_and_leaves_nothing_behind(e2e_env: tuple[Path, str]) -> None:
    run_dir, prefix = e2e_env
    result = v6alt("demo", "--run-dir", str(run_dir), "--prefix", prefix, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    names = [h["name"] for h in summary["hosts"]]
    assert len(names) == 2 and all(n.endswith(".v6.alt") for n in names)
    assert [jid.split("@")[1] for jid in summary["xmpp"]["users"]] == names
    for name in names:
        assert name in result.stderr  # every step shows the v6.alt names involved
    assert result.stderr.count("delivered in") >= 2
    half = find_matrix_half()
    if half.start is None:  # said plainly, never faked
        assert f"Matrix half: skipped ({half.reason})" in result.stderr
        assert summary["matrix"] == {"ran": False, "reason": half.reason}
        if not synapse_installed():
            assert half.reason == "matrix-synapse not installed"
    else:
        assert summary["matrix"]["ran"] is True
    assert not run_dir.exists()
    assert not [n for n in list_netns() if n.startswith(prefix)]


def test_lab_up_with_xmpp_is_recorded_and_removed_by_down(e2e_env: tuple[Path, str]) -> None:
    run_dir, prefix = e2e_env
    lab_args = ["--run-dir", str(run_dir), "--prefix", prefix]
    up = v6alt("lab", "up", *lab_args, "--with", "xmpp", "--json")
    try:
        assert up.returncode == 0, up.stderr
        data = json.loads(up.stdout)
        hosts = {h["host"]: h["name"] for h in data["hosts"]}
        assert {s["host"]: s["domain"] for s in data["xmpp"]} == hosts
        assert all(s["muc"] == "groups." + s["domain"] for s in data["xmpp"])
        state = json.loads((run_dir / "state.json").read_text())
        services = state["services"]
        assert sorted((s["host"], s["kind"]) for s in services) == [
            ("a", "prosody"), ("a", "sidecar"), ("b", "prosody"), ("b", "sidecar"),
        ]  # fmt: skip
        assert all(process_start_time(s["pid"]) == s["pid_start"] for s in services)
        again = v6alt("lab", "up", *lab_args, "--with", "xmpp", "--json")
        assert again.returncode == 0 and "already running" in again.stderr
        assert json.loads((run_dir / "state.json").read_text())["services"] == services
        killed = status_shows_the_servers_and_a_killed_one_as_down(lab_args, data, services)
    finally:
        down = v6alt("lab", "down", *lab_args, "--json")
    assert down.returncode == 0, down.stderr
    report = json.loads(down.stdout)
    stopped = [s for s in report["stopped"] if " prosody pid " in s or " sidecar pid " in s]
    assert len(stopped) == 3 and f"b: prosody pid {killed}" not in stopped
    assert all(process_start_time(s["pid"]) != s["pid_start"] for s in services)
    assert not run_dir.exists()
    assert not [n for n in list_netns() if n.startswith(prefix)]


def status_shows_the_servers_and_a_killed_one_as_down(
    lab_args: list[str], up: dict[str, Any], services: list[dict[str, Any]]
) -> int:
    """``lab status`` lists every recorded server; one killed shows as down (exit 1).

    Returns the pid of the Prosody it killed (b's).
    """
    status = v6alt("lab", "status", *lab_args, "--json")
    assert status.returncode == 0, status.stdout
    shown = json.loads(status.stdout)
    assert (shown["healthy"], shown["mesh_healthy"], shown["problems"]) == (True, True, [])
    for host in shown["hosts"]:
        recorded = [(s["kind"], s["pid"]) for s in services if s["host"] == host["host"]]
        assert [(s["kind"], s["pid"]) for s in host["services"]] == recorded
        assert all(s["running"] for s in host["services"])
        sidecar, prosody = host["services"]
        assert sidecar["endpoints"] == {"dns": "[::1]:5353", "lookup": "[::1]:5380"}
        assert prosody["endpoints"] == {
            "xmpp_domain": host["name"],
            "muc_domain": f"groups.{host['name']}",
            "c2s": f"[{host['ygg_address']}]:5222",
        }

    victim = next(s for s in services if (s["host"], s["kind"]) == ("b", "prosody"))
    os.kill(victim["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while process_start_time(victim["pid"]) == victim["pid_start"]:
        assert time.monotonic() < deadline, "prosody did not die on SIGKILL"
        time.sleep(0.05)
    status = v6alt("lab", "status", *lab_args, "--json")
    assert status.returncode == 1, status.stdout
    shown = json.loads(status.stdout)
    assert (shown["healthy"], shown["mesh_healthy"]) == (False, True)
    assert shown["problems"] == [f"b: prosody (pid {victim['pid']}) is not running"]
    running = {(h["host"], s["kind"]): s["running"] for h in shown["hosts"] for s in h["services"]}
    assert running == {("a", "sidecar"): True, ("a", "prosody"): True,
                       ("b", "sidecar"): True, ("b", "prosody"): False}  # fmt: skip
    table = v6alt("lab", "status", *lab_args)
    assert table.returncode == 1
    rows = [line.split()[:4] for line in table.stdout.splitlines()]
    assert ["b", "prosody", "DOWN", str(victim["pid"])] in rows
    alive = next(s for s in services if (s["host"], s["kind"]) == ("a", "prosody"))
    assert ["a", "prosody", "running", str(alive["pid"])] in rows

    # `up` finds the mesh healthy and keeps it (same nodes); the dead server makes it exit 1.
    again = v6alt("lab", "up", *lab_args, "--json")
    assert again.returncode == 1 and "lab is already up" in again.stderr
    assert [h["pid"] for h in json.loads(again.stdout)["hosts"]] == [h["pid"] for h in up["hosts"]]
    return int(victim["pid"])
