"""Stock Synapse on lab hosts: the baseline the module's benchmarks are measured against.

::

    lab = Lab(); hosts = lab.up(nodes=2)
    a, b = start_stock_homeservers(lab, hosts, print)   # a.lab.example, b.lab.example
    alice = a.register("alice", "pw")                  # as with the module's homeservers
    stop_lab_homeservers(lab)                          # or lab.down(), which stops them too

Per host an unbound serving the lab's DNS names on ``[::1]:53`` and a
Synapse without the v6alt module whose server name is the host's DNS name,
with a certificate from a test CA both trust (:mod:`.stock_files`). The CA
lives in a temporary directory only while the certificates are issued; each
homeserver keeps a copy of its certificate. Like the module's homeservers,
every process is recorded in the lab's state file (a ``ServiceRecord``, its
config path as the marker, its directory as the tree) the moment it is made,
so ``v6alt lab down`` stops it and removes its files.

Synapse resolves names with the system resolver (getaddrinfo, and Twisted's
DNS client for SRV), which reads ``/etc/resolv.conf``. ``ip netns exec``
runs a command in a mount namespace of its own (a slave of the machine's),
so the homeserver's command first bind-mounts the DNS directory's
resolv.conf over ``/etc/resolv.conf`` there and then execs Synapse: only
that process sees the lab's DNS server, and nothing is written outside the
lab's run directory.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from ipaddress import IPv6Address
from pathlib import Path
from typing import Final

from ..errors import LabError, LabTimeoutError
from ..host import LabHost
from ..lab import Lab
from ..netns import find_tool
from ..procs import process_start_time
from ..service_control import Prepare, service_spawner, stop_service_kinds
from ..teardown import TeardownReport
from .files import HomeserverFiles
from .homeserver import STARTUP_TIMEOUT, Homeserver, check_synapse_tools
from .mesh import SERVICE_KIND, LabSynapse
from .stock_files import (
    DnsFiles,
    make_lab_ca,
    stock_server_name,
    write_dns_files,
)

__all__ = [
    "DNS_KIND",
    "HOMESERVER_KINDS",
    "STOCK_KIND",
    "check_stock_tools",
    "start_stock_homeservers",
    "stop_lab_homeservers",
    "with_resolv_conf",
]

STOCK_KIND: Final = "synapse-stock"
DNS_KIND: Final = "unbound"
#: Every kind of ServiceRecord the module's and the stock homeservers make.
HOMESERVER_KINDS: Final = (SERVICE_KIND, STOCK_KIND, DNS_KIND)
DNS_TIMEOUT: Final = 15.0

Progress = Callable[[str], None]


def check_stock_tools() -> None:
    """What the module's homeservers need, plus unbound and mount."""
    check_synapse_tools()
    find_tool("unbound", "unbound", "apt-get install unbound")
    find_tool("mount", "mount", "apt-get install mount")


def with_resolv_conf(resolv_conf: Path, argv: Sequence[str]) -> list[str]:
    """``argv`` run with ``resolv_conf`` over /etc/resolv.conf (inside ``ip netns exec``).

    The shell execs ``argv``, so the process keeps the pid it started with.
    """
    script = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
    return ["sh", "-c", script, str(resolv_conf), *argv]


def _spawn(
    lab: Lab, host: LabHost, kind: str, tree_name: str, prepare: Prepare
) -> tuple[Path, int]:
    """Record a server of ``kind`` on ``host`` (one at most), make its tree, start it."""
    with service_spawner(lab) as spawner:
        if any(s.host == host.host and s.kind == kind for s in spawner.state.services):
            raise LabError(f"{host.host}: a {kind} is already recorded; stop it first")
        return spawner.start(host, kind, tree_name, prepare)


def _resolves(host: LabHost, files: DnsFiles, name: str, address: IPv6Address) -> bool:
    """``name`` resolves to ``address`` through the system resolver, as Synapse will ask."""
    argv = with_resolv_conf(files.resolv_conf, ["getent", "ahostsv6", name])
    proc = host.exec(argv, check=False, timeout=10)
    return proc.returncode == 0 and str(address) in proc.stdout.split()


def _start_dns(
    lab: Lab,
    host: LabHost,
    records: Mapping[str, IPv6Address],
    deadline: float,
    progress: Progress,
) -> DnsFiles:
    def prepare(tree: Path) -> tuple[list[str], Path]:
        files = DnsFiles(tree)
        write_dns_files(files, records)
        unbound = find_tool("unbound", "unbound", "apt-get install unbound")
        return [unbound, "-d", "-c", str(files.config)], files.config

    tree, pid = _spawn(lab, host, DNS_KIND, "dns", prepare)
    files = DnsFiles(tree)
    pending = dict(records)
    while pending:
        if process_start_time(pid) is None:
            raise LabError(f"{host.host}: unbound exited at start-up{files.output_tail(8)}")
        for name, address in list(pending.items()):
            if _resolves(host, files, name, address):
                del pending[name]
        if pending and time.monotonic() > deadline:
            raise LabTimeoutError(
                f"{host.host}: {', '.join(pending)} did not resolve through unbound"
                f"{files.output_tail(8)}"
            )
        time.sleep(0.1)
    progress(f"{host.host}: unbound ready (pid {pid}) on [::1]:53: {', '.join(records)}")
    return files


def start_stock_homeservers(
    lab: Lab, hosts: Sequence[LabHost], progress: Progress, timeout: float = STARTUP_TIMEOUT
) -> list[LabSynapse]:
    """A DNS server and a stock Synapse on each of ``hosts``; wait until all are ready.

    Every host's DNS server knows the names of all of ``hosts``. On failure
    what was started stays recorded: ``lab.down()`` (or
    :func:`stop_lab_homeservers`) removes it.
    """
    lab.require_root()
    check_stock_tools()
    started = time.monotonic()
    records = {stock_server_name(h.host): h.ygg_address for h in hosts}
    dns = {h.host: _start_dns(lab, h, records, started + DNS_TIMEOUT, progress) for h in hosts}
    servers = []
    with tempfile.TemporaryDirectory(prefix="v6alt-lab-ca-") as scratch:
        ca = make_lab_ca(Path(scratch) / "ca")
        for host in hosts:
            name = stock_server_name(host.host)

            def prepare(
                tree: Path, host: LabHost = host, name: str = name
            ) -> tuple[list[str], Path]:
                server = Homeserver(tree, host.ygg_address, server_name=name, ca=ca)
                server.prepare()
                command = with_resolv_conf(dns[host.host].resolv_conf, server.command())
                return command, server.files.config

            tree, pid = _spawn(lab, host, STOCK_KIND, "matrix-stock", prepare)
            servers.append(LabSynapse(host, HomeserverFiles(tree, name), pid))
            progress(f"{host.host}: stock synapse starting (pid {pid}), server name {name}")
    for server in servers:
        server.wait_ready(started + timeout)
        progress(
            f"{server.host.host}: stock synapse ready in {time.monotonic() - started:.1f} s "
            f"({server.server_name})"
        )
    return servers


def stop_lab_homeservers(lab: Lab) -> TeardownReport:
    """Stop every homeserver (module or stock) and DNS server and remove their files.

    The lab and its other services (XMPP) stay up.
    """
    return stop_service_kinds(lab, HOMESERVER_KINDS)
