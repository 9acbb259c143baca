"""Helpers shared by the lab tests: ids, echo server/client run inside lab hosts."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from ipaddress import IPv6Address
from pathlib import Path

import pytest

from v6alt.lab import LabHost
from v6alt.lab.netns import list_netns

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="the lab needs root (network namespaces)")

ECHO_PORT = 19050  # inside lab namespaces; the lab's port range is 19000-19099

ECHO_SERVER = textwrap.dedent(
    """
    import socket, sys
    server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((sys.argv[1], int(sys.argv[2])))
    server.listen()
    print("ready", flush=True)
    while True:
        conn, peer = server.accept()
        with conn:
            data = conn.recv(4096)
            conn.sendall(peer[0].encode() + b" " + data)
    """
)

ECHO_CLIENT = textwrap.dedent(
    """
    import socket, sys
    target = (sys.argv[1], int(sys.argv[2]))
    with socket.create_connection(target, timeout=float(sys.argv[4])) as conn:
        conn.sendall(sys.argv[3].encode())
        print(conn.recv(4096).decode())
    """
)


def lab_ids(tag: str) -> tuple[Path, str]:
    """A run directory and a namespace prefix no other lab uses."""
    pid = os.getpid()
    return Path(f"/run/v6alt-labtest-{tag}-{pid}"), f"v6lab-{tag}{pid}-"


def namespaces_with(prefix: str) -> set[str]:
    return {name for name in list_netns() if name.startswith(prefix)}


def start_echo(host: LabHost, port: int = ECHO_PORT) -> subprocess.Popen[str]:
    """A TCP echo server on the host's Yggdrasil address; returns once it listens."""
    server = host.popen(
        [sys.executable, "-c", ECHO_SERVER, str(host.ygg_address), str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    if line.strip() != "ready":
        server.kill()
        _, err = server.communicate()
        raise AssertionError(f"echo server on {host.host} did not start: {err}")
    return server


def stop(server: subprocess.Popen[str]) -> None:
    server.kill()
    server.communicate()


def tcp_echo(
    client: LabHost,
    address: IPv6Address,
    payload: str,
    port: int = ECHO_PORT,
    timeout: float = 20.0,
) -> str:
    """Connect from inside ``client`` to ``address`` and return what the echo server said.

    Raises :class:`subprocess.CalledProcessError` when the connection fails.
    """
    result = client.python(ECHO_CLIENT, str(address), str(port), payload, f"{timeout:g}")
    return result.stdout.strip()
