"""An IPv6 link of several hosts made of network namespaces (iproute2, root).

Every address is in 200::/7 and given with ``nodad`` (usable at once, no
duplicate address detection delay). Deleting the namespaces removes the
veth pairs and the bridge with them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from ipaddress import IPv6Address
from pathlib import Path

PREFIX = "v6s-"


def run(*args: str) -> str:
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}"
        )
    return result.stdout


@dataclass
class Host:
    namespace: str
    interface: str
    addresses: list[IPv6Address] = field(default_factory=list)
    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def address(self) -> IPv6Address:
        return self.addresses[0]

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.namespace]

    def start_dns_recorder(
        self, log: Path, records: dict[str, str] | None = None
    ) -> subprocess.Popen[str]:
        """Answer this namespace's DNS on [::1]:53 (``records`` as AAAA, all else
        NXDOMAIN), recording every queried name in ``log``.

        ``ip netns exec`` bind-mounts /etc/netns/<namespace>/resolv.conf over
        /etc/resolv.conf, so processes started after this see only the recorder.
        """
        conf = Path("/etc/netns") / self.namespace
        conf.mkdir(parents=True, exist_ok=True)
        (conf / "resolv.conf").write_text("nameserver ::1\noptions timeout:1 attempts:1\n")
        log.parent.mkdir(parents=True, exist_ok=True)
        log.touch()
        script = Path(__file__).with_name("v6s_dns_recorder.py")
        process = subprocess.Popen(
            [
                *self.exec_prefix(),
                sys.executable,
                str(script),
                str(log),
                *(f"{name}={address}" for name, address in (records or {}).items()),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            process.wait(timeout=10)
        self.processes.clear()
        shutil.rmtree(Path("/etc/netns") / self.namespace, ignore_errors=True)

    def add_address(self, address: IPv6Address) -> None:
        run(
            "ip",
            "-n",
            self.namespace,
            "addr",
            "add",
            f"{address}/64",
            "dev",
            self.interface,
            "nodad",
        )
        self.addresses.append(address)


class Mesh:
    """Hosts on one IPv6 link: namespace ``v6s-<tag>-<name>`` per host, each joined
    by a veth pair to a bridge in the hub namespace ``v6s-<tag>-hub``.
    ``subnet`` is a /64 in 200::/7 written as text ending in '::'; host number
    i (from 1) gets ``<subnet><i>``."""

    def __init__(self, names: tuple[str, ...] = ("a", "b"), tag: str | None = None,
                 subnet: str = "202:6a1f:77::") -> None:  # fmt: skip
        self.tag = tag or f"{os.getpid() % 100000}"
        self.subnet = subnet
        self.hub = f"{PREFIX}{self.tag}-hub"
        self.hosts = {name: Host(f"{PREFIX}{self.tag}-{name}", "eth0") for name in names}
        self._created: list[str] = []

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def create(self) -> Mesh:
        run("ip", "netns", "add", self.hub)
        self._created.append(self.hub)
        run("ip", "-n", self.hub, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", self.hub, "link", "set", "br0", "up")
        for index, (name, host) in enumerate(self.hosts.items(), start=1):
            run("ip", "netns", "add", host.namespace)
            self._created.append(host.namespace)
            run("ip", "-n", host.namespace, "link", "set", "lo", "up")
            port = f"v6s{self.tag}{name}"[:15]
            run(
                "ip", "link", "add", port, "netns", self.hub, "type", "veth",
                "peer", "name", host.interface, "netns", host.namespace,
            )  # fmt: skip
            run("ip", "-n", self.hub, "link", "set", port, "master", "br0")
            run("ip", "-n", self.hub, "link", "set", port, "up")
            host.add_address(IPv6Address(f"{self.subnet}{index:x}"))
            run("ip", "-n", host.namespace, "link", "set", host.interface, "up")
        return self

    def destroy(self) -> None:
        for host in self.hosts.values():
            host.stop()
        for namespace in reversed(self._created):
            subprocess.run(["ip", "netns", "del", namespace], check=False, capture_output=True)
        self._created.clear()

    def __enter__(self) -> Mesh:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.destroy()
