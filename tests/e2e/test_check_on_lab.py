"""``v6alt check`` run from inside the mesh against the lab's real servers.

The federation tester's own tests use purpose-built broken setups; these run
it the way an operator would: from one Yggdrasil host towards another, by
v6.alt name only.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from .conftest import MeshFactory
from .matrix_support import MatrixMeshFactory, matrix_mesh

__all__ = ["matrix_mesh"]


def run_check(host: Any, *args: str) -> tuple[int, dict[str, Any], str]:
    result = host.exec(
        [sys.executable, "-m", "v6alt", "check", *args, "--json", "--timeout", "10"],
        check=False,
        timeout=120,
    )
    return result.returncode, json.loads(result.stdout), result.stderr


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {check["id"]: check["status"] for check in report["checks"]}


def test_check_xmpp_passes_across_the_mesh(mesh: MeshFactory) -> None:
    lab = mesh(nodes=2)
    a, b = lab.sites
    code, report, stderr = run_check(a.host, "xmpp", b.domain)
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    assert code == 0, (failed, stderr)
    assert report["ok"] is True and report["target"] == b.domain
    assert "fail" not in statuses(report).values()
    # The stream went to b's Yggdrasil address, named by the name alone.
    assert str(b.host.ygg_address) in json.dumps(report)
    assert lab.leaks() == []


def test_check_matrix_reports_the_closed_port_with_a_hint(mesh: MeshFactory) -> None:
    # The XMPP lab runs no homeserver: b answers 8448 with a reset.
    lab = mesh(nodes=2)
    a, b = lab.sites
    code, report, _ = run_check(a.host, "matrix", b.domain)
    assert code == 1
    assert report["ok"] is False
    tcp = [c for c in report["checks"] if c["status"] == "fail"]
    assert tcp, report["checks"]
    assert any(c["hint"] for c in tcp), "every failure must say what to change"
    assert any(str(b.host.ygg_address) in json.dumps(c) for c in tcp)


def test_check_matrix_passes_against_a_lab_homeserver(matrix_mesh: MatrixMeshFactory) -> None:
    mesh = matrix_mesh(nodes=2)
    target = mesh.servers[1]
    code, report, stderr = run_check(mesh.hosts[0], "matrix", target.server_name)
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    assert code == 0, (failed, stderr)
    assert report["ok"] is True
    connection = report["connections"][f"[{mesh.hosts[1].ygg_address}]:8448"]
    assert connection["tls"]["trust"] == "ip_bound"
