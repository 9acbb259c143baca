"""The lab's one network-namespace harness: iproute2 wrappers and a flat link of hosts.

The wrappers (namespaces, veth pairs, addresses) build both topologies: the
Yggdrasil mesh of :class:`~v6alt.lab.Lab`, and :class:`FlatNet`, hosts on
one bridge with the addresses they are given and no Yggdrasil, for tests and
benchmarks that need only addresses.

Every command runs in its own session so a Ctrl-C on the terminal reaches only
the lab, which then cleans up; a hung command is cut off by a timeout instead.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Interface
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from .errors import LabCommandError, LabEnvironmentError

__all__ = [
    "NETNS_DIR",
    "FlatHost",
    "FlatNet",
    "add_address",
    "add_netns",
    "add_veth",
    "delete_link",
    "delete_netns",
    "find_tool",
    "interface_addresses",
    "link_exists",
    "list_netns",
    "netns_exec_argv",
    "netns_inode",
    "netns_pids",
    "run",
    "set_link_up",
]

NETNS_DIR: Final = Path("/run/netns")
COMMAND_TIMEOUT: Final = 30.0
# Root's tools live in sbin, which a sudo'ed or minimal PATH may lack.
_SBIN: Final = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def find_tool(name: str, package: str, install: str) -> str:
    """Absolute path of ``name``, or an error saying how to install it (exit 2)."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN])
    path = shutil.which(name, path=search)
    if path is None:
        raise LabEnvironmentError(
            f"`{name}` (Debian package {package}) is not installed; install it with: {install}"
        )
    return path


def _ip() -> str:
    return find_tool("ip", "iproute2", "apt-get install iproute2")


def run(
    argv: Sequence[str], *, timeout: float = COMMAND_TIMEOUT, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output; a non-zero exit raises :class:`LabCommandError`."""
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise LabCommandError(argv, -1, f"timed out after {timeout:g} s") from exc
    if check and proc.returncode != 0:
        raise LabCommandError(argv, proc.returncode, proc.stderr)
    return proc


def list_netns() -> set[str]:
    """Names of all named network namespaces on this machine."""
    out = run([_ip(), "-json", "netns", "list"]).stdout.strip()
    if not out:
        return set()
    return {entry["name"] for entry in json.loads(out)}


def netns_inode(name: str) -> int | None:
    """Inode of the namespace bound at ``/run/netns/<name>``, or None if there is none.

    The inode identifies the namespace itself, so a namespace deleted and
    re-created under the same name by someone else is recognised as foreign.
    """
    try:
        return (NETNS_DIR / name).stat().st_ino
    except FileNotFoundError:
        return None


def add_netns(name: str) -> int:
    """Create a namespace with its loopback up; return its inode."""
    run([_ip(), "netns", "add", name])
    inode = netns_inode(name)
    if inode is None:
        raise LabCommandError(["ip", "netns", "add", name], 0, f"{NETNS_DIR / name} is missing")
    return inode


def delete_netns(name: str) -> None:
    run([_ip(), "netns", "delete", name])


def add_veth(netns_a: str, ifname_a: str, netns_b: str, ifname_b: str) -> None:
    """A veth pair created directly inside the two namespaces (never in the root one)."""
    run(
        [_ip(), "link", "add", ifname_a, "netns", netns_a, "type", "veth",
         "peer", "name", ifname_b, "netns", netns_b]
    )  # fmt: skip


def link_exists(netns: str, ifname: str) -> bool:
    return run([_ip(), "-n", netns, "link", "show", "dev", ifname], check=False).returncode == 0


def delete_link(netns: str, ifname: str) -> None:
    run([_ip(), "-n", netns, "link", "delete", "dev", ifname])


def set_link_up(netns: str, ifname: str, up: bool = True) -> None:
    run([_ip(), "-n", netns, "link", "set", "dev", ifname, "up" if up else "down"])


def add_address(netns: str, ifname: str, address: IPv6Interface) -> None:
    """Add an IPv6 address without duplicate address detection (usable at once)."""
    run([_ip(), "-n", netns, "-6", "address", "add", str(address), "dev", ifname, "nodad"])


def interface_addresses(netns: str, ifname: str) -> list[IPv6Interface]:
    """IPv6 addresses on ``ifname`` inside ``netns`` (empty if the interface is missing)."""
    proc = run([_ip(), "-json", "-n", netns, "-6", "address", "show", "dev", ifname], check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        return []
    found: list[IPv6Interface] = []
    for link in json.loads(proc.stdout):
        for info in link.get("addr_info", []):
            if info.get("family") == "inet6":
                found.append(IPv6Interface(f"{info['local']}/{info['prefixlen']}"))
    return found


def netns_exec_argv(netns: str, argv: Sequence[str]) -> list[str]:
    """``argv`` prefixed so it runs inside ``netns``."""
    return [_ip(), "netns", "exec", netns, *argv]


def netns_pids(netns: str) -> list[int]:
    """The processes running inside ``netns`` (empty if it is gone)."""
    proc = run([_ip(), "netns", "pids", netns], check=False)
    return [int(pid) for pid in proc.stdout.split()] if proc.returncode == 0 else []


# Per-namespace files ``ip netns exec`` bind-mounts over /etc (resolv.conf, ...).
ETC_NETNS: Final = Path("/etc/netns")


@dataclass
class FlatHost:
    """One host of a :class:`FlatNet`: a namespace with ``eth0`` on the link."""

    name: str
    netns: str
    ifname: str = "eth0"
    addresses: list[IPv6Address] = field(default_factory=list)
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)

    @property
    def address(self) -> IPv6Address:
        """The first address given to the host."""
        return self.addresses[0]

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` prefixed so it runs inside this host's namespace."""
        return netns_exec_argv(self.netns, argv)

    def run(
        self, argv: Sequence[str], *, check: bool = True, timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the host, wait for it (see :func:`run`)."""
        return run(self.argv(argv), check=check, timeout=timeout)

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside the host (text mode unless told); :meth:`stop` ends it."""
        kwargs.setdefault("text", True)
        process: subprocess.Popen[Any] = subprocess.Popen(self.argv(argv), **kwargs)
        self.processes.append(process)
        return process

    def add_address(self, address: IPv6Address | str, prefixlen: int = 64) -> IPv6Address:
        address = IPv6Address(address)
        add_address(self.netns, self.ifname, IPv6Interface(f"{address}/{prefixlen}"))
        self.addresses.append(address)
        return address

    def add_route(self, destination: str) -> None:
        """An on-link route to ``destination`` (a CIDR) through ``eth0``."""
        run([_ip(), "-n", self.netns, "-6", "route", "add", destination, "dev", self.ifname])

    def set_resolv_conf(self, text: str) -> None:
        """The resolv.conf that commands started in this host from now on see."""
        conf = ETC_NETNS / self.netns
        conf.mkdir(parents=True, exist_ok=True)
        (conf / "resolv.conf").write_text(text)

    def stop(self) -> None:
        """Stop what :meth:`popen` started (SIGTERM, then SIGKILL) and forget the resolv.conf."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()
        shutil.rmtree(ETC_NETNS / self.netns, ignore_errors=True)


class FlatNet:
    """Hosts on one IPv6 link and nothing else: no Yggdrasil, no router.

    A bridge ``br0`` in the hub namespace ``<prefix>hub``; each host is the
    namespace ``<prefix><name>`` whose ``eth0`` is a veth plugged into the
    bridge, with the addresses it is given (``nodad``: usable at once).
    ``prefix`` names the namespaces, so it must be unique on the machine
    (tests key it by their pid). :meth:`close` stops every process still
    running in the namespaces and deletes them, which removes the veth pairs
    and the bridge with them::

        with FlatNet("v6f-123-") as net:
            a = net.add_host("a", "200:1::1")
            b = net.add_host("b", "200:1::2")
            a.run(["ping", "-c1", str(b.address)])
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.hub = f"{prefix}hub"
        self.hosts: dict[str, FlatHost] = {}
        self._ports: dict[str, str] = {}
        self._made: list[str] = []
        try:
            self._add_netns(self.hub)
            run([_ip(), "-n", self.hub, "link", "add", "br0", "type", "bridge"])
            set_link_up(self.hub, "br0")
        except BaseException:
            self.close()
            raise

    def _add_netns(self, name: str) -> None:
        add_netns(name)
        self._made.append(name)
        set_link_up(name, "lo")

    def __getitem__(self, name: str) -> FlatHost:
        return self.hosts[name]

    def add_host(
        self, name: str, *addresses: IPv6Address | str, prefixlen: int = 64, ifname: str = "eth0"
    ) -> FlatHost:
        """A new host on the link, its end named ``ifname``, with ``addresses`` (each
        ``/prefixlen``)."""
        host = FlatHost(name, f"{self.prefix}{name}", ifname)
        port = f"p{len(self.hosts)}"
        self._add_netns(host.netns)
        add_veth(self.hub, port, host.netns, host.ifname)
        run([_ip(), "-n", self.hub, "link", "set", port, "master", "br0"])
        set_link_up(self.hub, port)
        for address in addresses:
            host.add_address(address, prefixlen)
        set_link_up(host.netns, host.ifname)
        self.hosts[name] = host
        self._ports[name] = port
        return host

    def set_link(self, host: FlatHost, up: bool) -> None:
        """Plug ``host`` into the bridge or pull it out (its own link loses its carrier)."""
        set_link_up(self.hub, self._ports[host.name], up)

    def close(self) -> None:
        """Stop every host's processes, kill what is left in the namespaces, delete them."""
        for host in self.hosts.values():
            host.stop()
        for netns in reversed(self._made):
            for pid in netns_pids(netns):
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            run([_ip(), "netns", "delete", netns], check=False)
        self._made.clear()

    def __enter__(self) -> FlatNet:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
