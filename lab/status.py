"""What ``v6alt lab status`` reports: the recorded lab checked against reality."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from ipaddress import IPv6Address
from typing import Any

from v6alt.codec import encode

from .errors import LabError
from .netns import netns_inode
from .procs import is_our_process
from .service_status import ServiceStatus, service_status
from .state import HostRecord, LabState, ServiceRecord
from .topology import plan_lab
from .yggdrasil import AdminClient

__all__ = ["HostStatus", "LabStatus", "ServiceStatus", "lab_status"]


@dataclass(frozen=True)
class HostStatus:
    host: str
    netns: str
    netns_present: bool
    pid: int | None
    running: bool
    ygg_address: str | None
    name: str | None
    peers_expected: list[str]
    peers_up: list[str]
    problems: list[str] = field(default_factory=list)
    services: list[ServiceStatus] = field(default_factory=list)  # in the order they were started


@dataclass(frozen=True)
class LabStatus:
    """``up``: a complete bring-up is recorded; ``healthy``: and every check passes.

    ``mesh_healthy`` leaves out the servers on the hosts: a dead XMPP server or
    homeserver makes the lab unhealthy but is no reason to rebuild the mesh.
    """

    up: bool
    healthy: bool
    mesh_healthy: bool
    prefix: str
    topology: str | None
    nodes: int
    run_dir: str
    hosts: list[HostStatus]
    problems: list[str]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _host_status(
    record: HostRecord,
    expected: list[str],
    by_address: dict[IPv6Address, str],
    services: list[ServiceRecord],
) -> HostStatus:
    """The mesh checks of one host (``problems``), and its servers (``services``)."""
    problems: list[str] = []
    present = record.netns_inode is not None and netns_inode(record.netns) == record.netns_inode
    if not present:
        problems.append(f"namespace {record.netns} is missing or not the one the lab made")
    running = (
        record.pid is not None
        and record.pid_start is not None
        and record.config is not None
        and is_our_process(record.pid, record.pid_start, record.config)
    )
    if not running:
        problems.append(f"yggdrasil (pid {record.pid}) is not running")
    address = record.ygg_address
    peers_up: list[str] = []
    if running and record.admin_socket is not None:
        admin = AdminClient(record.admin_socket)
        try:
            live = admin.get_self().get("address")
            if live != address:
                problems.append(f"node reports address {live}, the lab recorded {address}")
            for peer in admin.get_peers():
                if peer.get("up") and isinstance(peer.get("address"), str):
                    peer_address = IPv6Address(peer["address"])
                    peers_up.append(by_address.get(peer_address, str(peer_address)))
        except LabError as exc:
            problems.append(str(exc))
    missing = sorted(set(expected) - set(peers_up))
    if running and missing:
        problems.append(f"peer link to {', '.join(missing)} is not up")
    return HostStatus(
        host=record.host,
        netns=record.netns,
        netns_present=present,
        pid=record.pid,
        running=running,
        ygg_address=address,
        name=encode(address) if address else None,
        peers_expected=expected,
        peers_up=sorted(peers_up),
        problems=problems,
        services=[service_status(s, address) for s in services],
    )


def lab_status(state: LabState | None, prefix: str, run_dir: str) -> LabStatus:
    """Check every recorded host and server; a missing state means the lab is down."""
    if state is None:
        return LabStatus(False, False, False, prefix, None, 0, run_dir, [], [])
    plan = plan_lab(state.nodes, state.topology, state.prefix)
    by_address = {IPv6Address(r.ygg_address): r.host for r in state.hosts if r.ygg_address}
    hosts = [
        _host_status(
            r,
            list(plan.neighbours(r.host)),
            by_address,
            [s for s in state.services if s.host == r.host],
        )
        for r in state.hosts
    ]
    problems = [f"{h.host}: {p}" for h in hosts for p in h.problems]
    if not state.complete:
        problems.insert(0, "bring-up did not finish (run `v6alt lab down`, then `up`)")
    mesh_healthy = state.complete and not problems
    recorded_hosts = {h.host for h in hosts}
    for service in state.services:
        if service.host not in recorded_hosts:
            problems.append(f"{service.kind} is recorded for host {service.host!r}, not in the lab")
    problems += [
        f"{h.host}: {s.problem}" for h in hosts for s in h.services if s.problem is not None
    ]
    return LabStatus(
        up=state.complete,
        healthy=mesh_healthy and not problems,
        mesh_healthy=mesh_healthy,
        prefix=state.prefix,
        topology=state.topology,
        nodes=state.nodes,
        run_dir=run_dir,
        hosts=hosts,
        problems=problems,
    )
