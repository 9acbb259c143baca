"""Lab homeservers are recorded in the lab's state: found again, reused, restarted, stopped.

``v6alt lab down`` (the command, another process) must stop the homeservers
and remove their directories, as it does for every other lab service.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest

from v6alt.lab.matrix.mesh import lab_homeservers, start_homeserver
from v6alt.lab.procs import process_start_time

from .matrix_support import MatrixMeshFactory, matrix_mesh

__all__ = ["matrix_mesh"]

pytestmark = pytest.mark.integration


def test_recorded_reused_restarted_and_stopped_by_lab_down(
    matrix_mesh: MatrixMeshFactory,
) -> None:
    mesh = matrix_mesh(nodes=2)
    a, b = mesh.servers
    lines: list[str] = []
    assert {(s.host.host, s.pid) for s in lab_homeservers(mesh.lab)} == {
        ("a", a.pid),
        ("b", b.pid),
    }
    again = start_homeserver(mesh.lab, mesh.hosts[0], lines.append)
    assert again.pid == a.pid and any("already running" in line for line in lines)

    os.kill(b.pid, signal.SIGKILL)
    while process_start_time(b.pid) is not None:
        os.waitpid(b.pid, os.WNOHANG)
    # `lab status` reads the records: a's homeserver and where to reach it, b's as down.
    status = mesh.lab.status()
    (shown_a,), (shown_b,) = (h.services for h in status.hosts)
    assert (shown_a.kind, shown_a.pid, shown_a.running) == ("synapse", a.pid, True)
    assert shown_a.endpoints == {
        "server_name": a.server_name,
        "client_socket": str(a.files.client_socket),
        "federation": a.federation_endpoint,
    }
    assert (shown_b.kind, shown_b.pid, shown_b.running) == ("synapse", b.pid, False)
    assert status.mesh_healthy and not status.healthy
    assert status.problems == [f"b: synapse (pid {b.pid}) is not running"]
    restarted = start_homeserver(mesh.lab, mesh.hosts[1], lines.append)
    assert restarted.pid != b.pid and restarted.server_name == b.server_name
    alice, bob = mesh.user(a), mesh.user(restarted)
    room = alice.create_room(invite=[bob.user_id])
    bob.join(room, timeout=120)

    mesh.stop_captures()
    shutil.rmtree(mesh.lab.run_dir / "captures")
    down = subprocess.run(
        [sys.executable, "-m", "v6alt", "lab", "down", "--run-dir", str(mesh.lab.run_dir),
         "--prefix", mesh.lab.prefix],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert down.returncode == 0, down.stderr
    assert process_start_time(a.pid) is None and process_start_time(restarted.pid) is None
    assert not a.files.tree.exists() and not restarted.files.tree.exists()
    assert not mesh.lab.run_dir.exists()
