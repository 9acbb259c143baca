"""Fixtures for the Matrix end-to-end tests: a lab with a Synapse per host, captures on.

A test asks for ``matrix_mesh`` and calls it: ``matrix_mesh(nodes=3)`` brings
up a lab (run directory ``/run/v6alt-e2em-<pid>``, namespaces
``v6m-<pid>-a``, ...), starts a packet capture in every namespace, then a
homeserver with the v6alt module on every host (``v6alt.lab.matrix.mesh``).
At the end the captures stop, the lab goes down and no namespace of it may be
left. Test modules import the fixture from here (``from .matrix_support
import matrix_mesh``) so pytest finds it.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv6Address
from pathlib import Path

import pytest

from tests.orphaned_labs import take_down_orphaned_labs
from v6alt.lab import Lab, LabEnvironmentError, LabHost
from v6alt.lab.matrix.client import MatrixUser
from v6alt.lab.matrix.homeserver import check_synapse_tools
from v6alt.lab.matrix.mesh import LabSynapse, start_homeservers
from v6alt.lab.netns import list_netns

from .capture import Capture, capture_tool, find_leaks

__all__ = ["MatrixMesh", "MatrixMeshFactory", "matrix_mesh", "missing_for_matrix"]

RUN_DIR_PATTERN = "v6alt-e2em-{pid}"
_names = itertools.count()


def missing_for_matrix() -> str | None:
    """Why the Matrix end-to-end tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if capture_tool() is None:
        return "needs tcpdump or dumpcap (apt-get install tcpdump)"
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    for tool in ("ip", "openssl", "yggdrasil"):
        if shutil.which(tool, path=path) is None:
            return f"{tool} not installed"
    try:
        check_synapse_tools()
    except LabEnvironmentError as missing:
        return str(missing)
    return None


@dataclass
class MatrixMesh:
    """A lab with a homeserver on every host and a capture in every namespace."""

    lab: Lab
    hosts: list[LabHost]
    servers: list[LabSynapse]
    captures: list[Capture]
    _stopped: bool = field(default=False)

    def user(self, server: LabSynapse) -> MatrixUser:
        """A new user on ``server`` with a fresh local part."""
        localpart = f"user{next(_names)}"
        return server.register(localpart, f"pw-{localpart}")

    def allowed_addresses(self) -> set[IPv6Address]:
        addresses = {h.ygg_address for h in self.hosts}
        for host in self.hosts:
            addresses |= {i.ip for i in host.underlay.values()}
        return addresses

    def leaks(self) -> list[str]:
        """Stop the captures; every packet that breaks the leak rules, per host."""
        allowed = self.allowed_addresses()
        problems: list[str] = []
        for capture in self.captures:
            problems += [
                f"{capture.host.host}: {leak}" for leak in find_leaks(capture.stop(), allowed)
            ]
        self._stopped = True
        return problems

    def stop_captures(self) -> None:
        if not self._stopped:
            for capture in self.captures:
                capture.stop()
            self._stopped = True


MatrixMeshFactory = Callable[..., MatrixMesh]


@pytest.fixture
def matrix_mesh() -> Iterator[MatrixMeshFactory]:
    """``matrix_mesh(nodes=2, topology="chain")``: lab, captures, then a Synapse per host."""
    reason = missing_for_matrix()
    if reason:
        pytest.skip(reason)
    take_down_orphaned_labs("v6alt-e2em-*", r"v6alt-e2em-(?P<pid>\d+)", "v6m-{pid}-")
    pid = os.getpid()
    lab = Lab(run_dir=Path("/run") / RUN_DIR_PATTERN.format(pid=pid), prefix=f"v6m-{pid}-")
    made: list[MatrixMesh] = []

    def build(nodes: int = 2, topology: str = "chain") -> MatrixMesh:
        assert not made, "one Matrix mesh per test"
        hosts = lab.up(nodes=nodes, topology=topology)
        capture_dir = lab.run_dir / "captures"
        capture_dir.mkdir()
        captures = [Capture(host, capture_dir) for host in hosts]
        mesh = MatrixMesh(lab, hosts, [], captures)
        made.append(mesh)
        mesh.servers = start_homeservers(lab, hosts, lambda line: None)
        return mesh

    try:
        yield build
    finally:
        for mesh in made:
            mesh.stop_captures()
        capture_dir = lab.run_dir / "captures"
        if os.environ.get("V6E_KEEP") and capture_dir.exists():
            shutil.copytree(capture_dir, Path(f"/tmp/v6m-captures-{pid}"), dirs_exist_ok=True)
        shutil.rmtree(capture_dir, ignore_errors=True)
        lab.down()
        leftovers = {n for n in list_netns() if n.startswith(lab.prefix)}
        assert not leftovers, f"namespaces left behind: {leftovers}"
