"""``v6alt demo`` and ``v6alt lab up --with xmpp`` from the command line, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from v6alt.cli import main
from v6alt.lab.matrix_half import find_matrix_half, synapse_installed
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
    import v6alt.synapse_module.lab as synapse_lab

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(synapse_lab, "find_spec", lambda name: None)
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
    finally:
        down = v6alt("lab", "down", *lab_args, "--json")
    assert down.returncode == 0, down.stderr
    report = json.loads(down.stdout)
    assert sum(" prosody pid " in s or " sidecar pid " in s for s in report["stopped"]) == 4
    assert all(process_start_time(s["pid"]) != s["pid_start"] for s in services)
    assert not run_dir.exists()
    assert not [n for n in list_netns() if n.startswith(prefix)]
