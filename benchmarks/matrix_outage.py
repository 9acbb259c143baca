"""Outages for benchmarks/e2e_matrix.py: the route probe, a stopped homeserver, dead peers.

- :func:`route_back`: from a lab host's namespace, TCP connects to a peer's
  federation port every 0.05 s (0.25 s timeout each) until one succeeds: the
  moment traffic crosses the mesh to the peer's server again.
- :class:`Restartable`: stop a lab homeserver (SIGTERM) and start it again on
  the same files and database.
- :func:`seed_dead_peers` and :func:`returning_listeners`: v6.alt
  destinations that Synapse backs off from, written into its
  ``destinations`` table: ``dead`` unrouted addresses inside 200::/7 (no
  Yggdrasil node has them) and ``returning`` addresses of a lab host's
  Yggdrasil subnet, on which a small listener starts listening at a random
  time; it records when the first connection (a probe) arrives.
- :func:`active_opens` and :func:`cpu_seconds`: connection attempts made from
  a namespace (``Tcp: ActiveOpens`` of its /proc/net/snmp) and a process's
  CPU time.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import Any

from v6alt.codec import encode
from v6alt.lab.host import LabHost
from v6alt.lab.matrix.homeserver import Homeserver
from v6alt.lab.matrix.mesh import LabSynapse

FEDERATION_PORT = 8448

_ROUTE_PROBE = r"""
import socket, sys, time
address, port, deadline = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
while time.monotonic() < deadline:
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.settimeout(0.25)
    try:
        s.connect((address, port))
    except OSError:
        s.close()
        time.sleep(0.05)
        continue
    print(time.monotonic(), flush=True)
    s.close()
    break
"""


class RouteProbe:
    """Started at the end of an outage; :meth:`wait` gives when a connect first succeeded."""

    def __init__(self, host: LabHost, address: IPv6Address, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self._process = host.popen(
            [sys.executable, "-c", _ROUTE_PROBE, str(address), str(FEDERATION_PORT), str(deadline)],
            stdout=subprocess.PIPE,
            text=True,
        )

    def wait(self) -> float | None:
        out, _ = self._process.communicate()
        return float(out.strip()) if out.strip() else None


class Restartable:
    """A lab homeserver that the benchmark stops and starts again on the same files."""

    def __init__(self, server: LabSynapse) -> None:
        self.server = server
        self._pid: int | None = server.pid
        self._homeserver = Homeserver(
            server.files.tree,
            server.host.ygg_address,
            server_name=server.server_name,
            netns=server.host.netns,
        )

    @property
    def pid(self) -> int | None:
        return self._pid

    def stop(self) -> None:
        if self._homeserver.process is not None:
            self._homeserver.stop()
        elif self._pid is not None:
            os.kill(self._pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while Path(f"/proc/{self._pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            if Path(f"/proc/{self._pid}").exists():
                os.kill(self._pid, signal.SIGKILL)
        self._pid = None

    def start(self) -> None:
        self._homeserver.spawn()
        assert self._homeserver.process is not None
        self._pid = self._homeserver.process.pid

    def wait_ready(self, timeout: float = 180) -> None:
        self._homeserver.wait_ready(time.monotonic() + timeout)

    def close(self) -> None:
        """Stop a process this object started (the lab stops the original one)."""
        if self._homeserver.process is not None:
            self._homeserver.stop()


def _random_address(network: IPv6Network, rng: random.Random) -> IPv6Address:
    host_bits = network.max_prefixlen - network.prefixlen
    return network[rng.getrandbits(host_bits) | 1]


def dead_addresses(count: int, rng: random.Random) -> list[IPv6Address]:
    """Addresses inside 200::/8 (Yggdrasil node addresses) that no lab node has."""
    return [_random_address(IPv6Network("200::/8"), rng) for _ in range(count)]


def subnet_addresses(host: LabHost, count: int, rng: random.Random) -> list[IPv6Address]:
    """Addresses in ``host``'s Yggdrasil subnet (300::/8), added to its namespace."""
    subnet = IPv6Network(str(host.admin().get_self()["subnet"]))
    addresses = [_random_address(subnet, rng) for _ in range(count)]
    for address in addresses:
        host.exec(["ip", "-6", "addr", "add", f"{address}/128", "dev", "lo"])
    return addresses


def seed_dead_peers(server: LabSynapse, addresses: list[IPv6Address]) -> list[str]:
    """Write the v6.alt names of ``addresses`` into the server's ``destinations`` as
    backed off (one day, as if they had failed for a long time); their names."""
    names = [encode(address) for address in addresses]
    now_ms = int(time.time() * 1000)
    db = sqlite3.connect(server.files.tree / "homeserver.db", timeout=60)
    try:
        with db:
            db.executemany(
                "INSERT OR REPLACE INTO destinations "
                "(destination, retry_last_ts, retry_interval, failure_ts) VALUES (?, ?, ?, ?)",
                [(name, now_ms, 86_400_000, now_ms) for name in names],
            )
    finally:
        db.close()
    return names


_LISTENERS = r"""
import json, random, selectors, socket, sys, time
addresses = sys.argv[1].split(",")
low, high, deadline = float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
rng = random.Random(int(sys.argv[5]))
start = time.monotonic()
at = {a: start + rng.uniform(low, high) for a in addresses}
listening, first = {}, {}
sel = selectors.DefaultSelector()
while time.monotonic() < deadline and len(first) < len(addresses):
    now = time.monotonic()
    for a, t in at.items():
        if a not in listening and now >= t:
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((a, 8448))
            s.listen(64)
            s.setblocking(False)
            listening[a] = time.monotonic()
            sel.register(s, selectors.EVENT_READ, a)
    for key, _ in sel.select(0.02):
        conn, _ = key.fileobj.accept()
        conn.close()
        first.setdefault(key.data, time.monotonic())
print(json.dumps({a: [listening.get(a), first.get(a)] for a in addresses}))
"""


def returning_listeners(
    host: LabHost, addresses: list[IPv6Address], low: float, high: float, seed: int
) -> subprocess.Popen[str]:
    """Listeners on ``addresses`` that start between ``low`` and ``high`` s from now."""
    deadline = time.monotonic() + high + 120
    argv = [sys.executable, "-c", _LISTENERS, ",".join(map(str, addresses))]
    argv += [str(low), str(high), str(deadline), str(seed)]
    return host.popen(argv, stdout=subprocess.PIPE, text=True)


def listener_delays(process: subprocess.Popen[str]) -> tuple[list[float], int]:
    """Seconds from listen to the first connection of each returning peer, and how
    many got none."""
    out, _ = process.communicate()
    data: dict[str, Any] = json.loads(out)
    delays = [first - listen for listen, first in data.values() if listen and first]
    return delays, sum(1 for _, first in data.values() if first is None)


def active_opens(host: LabHost) -> int:
    """TCP connection attempts made in ``host``'s namespace since it was made."""
    lines = [line.split() for line in host.exec(["cat", "/proc/net/snmp"]).stdout.splitlines()]
    tcp = [line for line in lines if line and line[0] == "Tcp:"]
    header, values = tcp[0], tcp[1]
    return int(values[header.index("ActiveOpens")])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
