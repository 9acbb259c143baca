"""``v6alt lab``: exit codes, output, and clean-up when interrupted."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from ipaddress import IPv6Address
from pathlib import Path

import pytest

from v6alt import decode
from v6alt.cli import main
from v6alt.cli_common import Streams
from v6alt.lab import Lab, LabHost
from v6alt.lab.procs import process_start_time

from .lab_support import lab_ids, namespaces_with, needs_root


def run_cli(args: Sequence[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), streams=Streams(io.StringIO(), out, err))
    return code, out.getvalue(), err.getvalue()


def lab_args(lab: Lab) -> list[str]:
    return ["--run-dir", str(lab.run_dir), "--prefix", lab.prefix]


def test_lab_help_lists_the_actions() -> None:
    code, out, _ = run_cli(["lab", "--help"])
    assert code == 0
    for action in ("up", "status", "down"):
        assert re.search(rf"^\s+{action}\s", out, re.MULTILINE)


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--nodes", "0"], "nodes: 0 is not a whole number from 1 to 26"),
        (["--nodes", "27"], "nodes: 27 is not a whole number from 1 to 26"),
        (["--prefix", "Lab"], "namespace prefix 'Lab' is not valid"),
        (["--timeout", "0"], "timeout: 0.0 is not a positive number"),
    ],
)
def test_up_rejects_bad_arguments(args: list[str], reason: str) -> None:
    run_dir, _ = lab_ids("u")
    code, _, err = run_cli(["lab", "up", "--run-dir", str(run_dir), *args])
    assert code == 2
    assert reason in err
    assert not run_dir.exists()


def test_unknown_topology_is_a_usage_error() -> None:
    code, _, err = run_cli(["lab", "up", "--topology", "ring"])
    assert code == 2
    assert "invalid choice: 'ring'" in err


@pytest.mark.parametrize("action", ["up", "status", "down"])
def test_not_root_exits_2_with_a_reason(action: str) -> None:
    # As root, drop the effective uid for the call (the real uid stays root, so it comes back).
    was_root = os.geteuid() == 0
    if was_root:
        os.setegid(65534)
        os.seteuid(65534)
    try:
        code, out, err = run_cli(["lab", action])
    finally:
        if was_root:
            os.seteuid(0)
            os.setegid(0)
    assert code == 2
    assert out == ""
    assert err == (
        "v6alt lab: the lab needs root (it creates network namespaces and TUN devices); "
        "run it as root, e.g. with sudo\n"
    )


@needs_root
@pytest.mark.integration
def test_status_json_describes_the_lab(lab2: tuple[Lab, list[LabHost]]) -> None:
    lab, hosts = lab2
    code, out, _ = run_cli(["lab", "status", "--json", *lab_args(lab)])
    assert code == 0
    data = json.loads(out)
    assert (data["up"], data["healthy"], data["nodes"], data["topology"]) == (
        True,
        True,
        2,
        "chain",
    )
    assert data["problems"] == [] and data["mesh_healthy"] is True
    for entry, host in zip(data["hosts"], hosts, strict=True):
        assert entry["host"] == host.host and entry["netns"] == host.netns
        assert entry["services"] == []  # no servers started on this lab
        assert IPv6Address(entry["ygg_address"]) == host.ygg_address
        assert decode(entry["name"]) == host.ygg_address
        assert entry["peers_up"] == entry["peers_expected"] == list(host.neighbours)


@needs_root
@pytest.mark.integration
def test_status_table_and_up_again(lab2: tuple[Lab, list[LabHost]]) -> None:
    lab, hosts = lab2
    code, out, _ = run_cli(["lab", "status", *lab_args(lab)])
    assert code == 0
    assert out.startswith("lab is up, healthy: 2 hosts, chain")
    for host in hosts:
        assert re.search(
            rf"^{host.host}\s+{host.netns}\s+{host.ygg_address}\s+{host.name}\s", out, re.M
        )
    assert "SERVICE" not in out  # the table of servers appears only when some are recorded
    code, out, err = run_cli(["lab", "up", *lab_args(lab)])
    assert code == 0
    assert "lab is already up (2 hosts, chain); nothing to do" in err
    code, _, err = run_cli(["lab", "up", "--nodes", "3", *lab_args(lab)])
    assert code == 2
    assert "run `v6alt lab down`" in err


@needs_root
@pytest.mark.integration
def test_status_and_down_of_a_lab_that_is_not_up(fresh_lab: Lab) -> None:
    code, out, _ = run_cli(["lab", "status", *lab_args(fresh_lab)])
    assert code == 1
    assert out.startswith("lab is down")
    code, out, _ = run_cli(["lab", "status", "--json", *lab_args(fresh_lab)])
    assert code == 1 and json.loads(out)["up"] is False
    code, _, err = run_cli(["lab", "down", *lab_args(fresh_lab)])
    assert code == 0 and "not up; nothing to do" in err


@needs_root
@pytest.mark.integration
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_up_removes_what_it_made(lab_tools: None, signum: int) -> None:
    run_dir, prefix = lab_ids("i")
    proc = subprocess.Popen(
        [sys.executable, "-m", "v6alt", "lab", "up", "--nodes", "3", "--run-dir", str(run_dir),
         "--prefix", prefix],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    pids: list[int] = []
    try:
        # Interrupt in the middle: after the second node started, before the mesh is up.
        for line in proc.stderr:
            match = re.search(r"yggdrasil started \(pid (\d+)\)", line)
            if match:
                pids.append(int(match[1]))
                if len(pids) == 2:
                    break
        assert len(pids) == 2, "bring-up never reached its second node"
        proc.send_signal(signum)
        rest = proc.stderr.read()
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run([sys.executable, "-m", "v6alt", "lab", "down", "--run-dir", str(run_dir),
                        "--prefix", prefix], capture_output=True)  # fmt: skip
    assert "removing what was made" in rest
    assert namespaces_with(prefix) == set()
    assert all(process_start_time(pid) is None for pid in pids)
    assert not run_dir.exists()


@needs_root
@pytest.mark.integration
def test_down_json_lists_what_it_removed(fresh_lab: Lab) -> None:
    hosts = fresh_lab.up(nodes=2)
    code, out, _ = run_cli(["lab", "down", "--json", *lab_args(fresh_lab)])
    assert code == 0
    data = json.loads(out)
    assert sorted(data["deleted_netns"]) == sorted(h.netns for h in hosts)
    assert data["deleted_links"] == ["a-b"]
    assert data["left_alone"] == []
    assert len(data["stopped"]) == 2
    configs = [Path(f) for f in data["removed_files"] if f.endswith(".conf")]
    assert [c.parent.parent for c in configs] == [fresh_lab.run_dir / "hosts"] * 2


@needs_root
@pytest.mark.integration
def test_bare_up_accepts_the_lab_that_is_up(chain3: tuple[Lab, list[LabHost]]) -> None:
    lab, _ = chain3
    code, out, err = run_cli(["lab", "up", *lab_args(lab)])
    assert code == 0
    assert "lab is already up (3 hosts, chain); nothing to do" in err
    assert out.startswith("lab is up, healthy: 3 hosts, chain")
    code, _, err = run_cli(["lab", "up", "--topology", "star", *lab_args(lab)])
    assert code == 2
    assert "a lab with 3 hosts (chain" in err


@needs_root
@pytest.mark.integration
def test_two_concurrent_ups_make_one_lab(fresh_lab: Lab) -> None:
    argv = [sys.executable, "-m", "v6alt", "lab", "up", *lab_args(fresh_lab)]
    first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    errors = [p.communicate(timeout=120)[1] for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], errors
    # The lock serialises them: one built the lab, the other found it up.
    assert sorted("nothing to do" in e for e in errors) == [False, True]
    assert namespaces_with(fresh_lab.prefix) == {fresh_lab.prefix + "a", fresh_lab.prefix + "b"}
    assert fresh_lab.status().healthy
    # Whichever of the two built the lab, the directory a lab made goes with it.
    assert fresh_lab.down().clean
    assert not fresh_lab.run_dir.exists()
