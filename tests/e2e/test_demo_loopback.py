"""``v6alt demo`` without root: two real Synapses on [::1], a room across them, a message.

In-process with the euid faked to 1000: a real unprivileged user could not
import v6alt from tox's private (0700) virtualenv. Everything else is real:
two Synapse processes with the v6alt module federate over ``[::1]`` under the
server names ``a-e.v6.alt:18448`` and ``a-e.v6.alt:18449``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
from pathlib import Path

import pytest

from v6alt.cli import main
from v6alt.lab.matrix import synapse_installed
from v6alt.lab.procs import process_start_time

pytestmark = pytest.mark.skipif(
    not synapse_installed() or shutil.which("openssl") is None,
    reason="needs matrix-synapse in this interpreter and openssl",
)

A, B = "a-e.v6.alt:18448", "a-e.v6.alt:18449"


def test_demo_without_root_runs_the_matrix_half_on_loopback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    code = main(["demo"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("v6alt demo: not root, so no network namespaces or Yggdrasil")
    assert "needs root to start Prosody" in lines[0]
    assert f"{A}: ready in" in out and f"{B}: ready in" in out
    assert f"@alice:{A} on {A}, @bob:{B} on {B}" in out
    assert f"@bob:{B} joined !" in out
    assert f"@bob:{B} on {B} received it: delivered in" in out
    assert lines[-1].startswith("torn down: stopped 2 homeserver(s), removed ")
    assert not Path(lines[-1].rsplit(" ", 1)[1]).exists()


def test_keep_leaves_both_homeservers_up_and_says_how_to_connect(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    code = main(["demo", "--keep", "--json"])
    out, err = capsys.readouterr()
    stop = re.search(r"stop them with: kill ([0-9 ]+);", err)
    pids = [int(pid) for pid in stop.group(1).split()] if stop else []
    try:
        assert code == 0, err
        assert len(pids) == 2 and all(process_start_time(pid) is not None for pid in pids)
        summary = json.loads(out)
        assert summary["mode"] == "loopback" and summary["kept"] is True
        assert summary["servers"] == [A, B]
        assert summary["users"] == [f"@alice:{A}", f"@bob:{B}"]
        assert f"curl --unix-socket {summary['files']}/a/client.sock" in err
        assert Path(summary["files"], "b", "homeserver.yaml").exists()
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)  # the demo started them from this process
        kept = re.search(r"their files are in (\S+)", err)
        if kept:
            shutil.rmtree(kept.group(1), ignore_errors=True)
