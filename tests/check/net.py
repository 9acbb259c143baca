"""Two hosts on one link, for the checker's tests (the lab's :class:`FlatNet`).

``v6c-<tag>-srv`` holds the servers under test (each on its own 200::/7
address, so the default policy dials them), ``v6c-<tag>-cli`` runs the
checker, as a peer on the mesh would. Both are deleted on close, with every
process still running in them.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any

from v6alt.lab.certificates import self_signed_certificate
from v6alt.lab.netns import FlatNet, run

__all__ = ["CLIENT_ADDRESS", "CheckRun", "Pair", "run", "self_signed"]

PREFIX = "v6c-"
CLIENT_ADDRESS = IPv6Address("200:c::2")
HERE = Path(__file__).parent
_counter = itertools.count(os.getpid() % 1000)


@dataclass
class CheckRun:
    """What one ``v6alt check`` run printed and returned."""

    code: int
    report: dict[str, Any]
    stderr: str

    def checks(self, id: str) -> list[dict[str, Any]]:
        return [c for c in self.report["checks"] if c["id"] == id]

    def one(self, id: str) -> dict[str, Any]:
        found = self.checks(id)
        assert len(found) == 1, (id, self.report["checks"])
        return found[0]

    def failed_ids(self) -> list[str]:
        return [c["id"] for c in self.report["checks"] if c["status"] == "fail"]


class Pair:
    """The server and client hosts; servers get addresses with :meth:`add_address`."""

    def __init__(self) -> None:
        self.tag = f"{next(_counter):03d}"
        self.root = Path(tempfile.mkdtemp(prefix=PREFIX))
        os.chmod(self.root, 0o755)  # Prosody (its own user) reads its files below
        self.processes: list[subprocess.Popen[str]] = []
        self.net = FlatNet(f"{PREFIX}{self.tag}-")
        self.hosts = {"srv": self.net.add_host("srv"), "cli": self.net.add_host("cli")}
        self.server = self.hosts["srv"].netns
        self.client = self.hosts["cli"].netns
        self.add_address(CLIENT_ADDRESS, self.client)

    def add_address(self, address: IPv6Address | str, namespace: str | None = None) -> IPv6Address:
        """Put ``address`` on eth0 (the server side unless told) and a route to it."""
        host, other = self.hosts["srv"], self.hosts["cli"]
        if namespace == self.client:
            host, other = other, host
        address = host.add_address(address, prefixlen=128)
        other.add_route(f"{address}/128")
        return address

    def exec(self, namespace: str, args: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", namespace, *args]

    def start(self, namespace: str, args: Sequence[str], ready: str = "ready") -> None:
        """A helper process in ``namespace`` that prints ``ready`` once serving."""
        process = subprocess.Popen(
            self.exec(namespace, args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.processes.append(process)
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if line != ready:
            process.kill()
            raise AssertionError(f"{args[1:2]} did not start: {line} {process.stderr.read()}")

    def fake_matrix(self, address: IPv6Address, port: int, cert: Path, key: Path,
                    server_name: str, *extra: str) -> None:  # fmt: skip
        script = HERE / "fake_matrix.py"
        self.start(self.server, [sys.executable, str(script), str(address), str(port),
                                 str(cert), str(key), server_name, *extra])  # fmt: skip

    def fake_dns(self, address: IPv6Address, port: int, zone: dict[str, Any]) -> None:
        script = HERE / "fake_dns.py"
        self.start(self.server, [sys.executable, str(script), str(address), str(port),
                                 json.dumps(zone)])  # fmt: skip

    def check(self, *args: str, namespace: str | None = None, timeout: float = 2.0) -> CheckRun:
        """``v6alt check ARGS --json`` in the client namespace (or ``namespace``)."""
        command = [sys.executable, "-m", "v6alt", "check", *args, "--json",
                   "--timeout", str(timeout)]  # fmt: skip
        done = subprocess.run(
            self.exec(namespace or self.client, command), capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert done.returncode in (0, 1), f"exit {done.returncode}: {done.stderr}"
        return CheckRun(done.returncode, json.loads(done.stdout), done.stderr)

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        self.net.close()
        shutil.rmtree(self.root, ignore_errors=True)


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` (any certificate will do for IP-bound trust)."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    self_signed_certificate(name, key, cert)
    return cert, key
