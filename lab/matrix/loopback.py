"""The Matrix half of ``v6alt demo`` on loopback, for when the demo is not run as root.

Without root there are no network namespaces and no Yggdrasil, so two
homeservers run side by side on ``[::1]``, told apart by their federation
ports: server names ``a-e.v6.alt:18448`` and ``a-e.v6.alt:18449`` (``a-e.v6.alt``
is the v6.alt name of ``::1``). ``::1`` is on the never-dial list, so each
config lifts it for the module (``ranges.unsafe_allow``) and for Synapse's
own blocklist (``ip_range_whitelist``). Files live in a temporary directory,
removed at the end unless ``keep``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any, Final

from ..errors import LabEnvironmentError, LabError
from .client import MatrixApiError, MatrixUser
from .homeserver import STARTUP_TIMEOUT, Homeserver, check_synapse_tools

__all__ = [
    "LOOPBACK_PORTS",
    "NOT_ROOT_REASON",
    "LoopbackResult",
    "result_dict",
    "run_loopback_demo",
]

LOOPBACK: Final = IPv6Address("::1")
LOOPBACK_PORTS: Final = (18448, 18449)
DELIVERY_TIMEOUT: Final = 60.0
STEPS: Final = 5
NOT_ROOT_REASON: Final = (
    "not root, so no network namespaces or Yggdrasil: running the Matrix half on loopback "
    "([::1], two ports); the XMPP half is skipped because it needs root to start Prosody "
    "as its own user"
)
_KEPT: list[subprocess.Popen[bytes]] = []

Say = Callable[[str], None]


@dataclass
class LoopbackResult:
    """What the loopback demo did (``--json`` prints it)."""

    servers: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    room: str = ""
    delivered_seconds: float = 0.0
    kept: bool = False
    files: str = ""


def _check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
        # As Synapse binds: connections of an earlier run left in TIME_WAIT do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((str(LOOPBACK), port))
        except OSError as error:
            raise LabEnvironmentError(
                f"port {port} on [::1] is not free ({error.strerror}); "
                "stop what uses it and run the demo again"
            ) from error


def _spawn(tree: Path, port: int) -> Homeserver:
    server = Homeserver(tree, LOOPBACK, port=port, unsafe_allow=[f"{LOOPBACK}/128"])
    server.prepare()
    server.spawn()
    return server


def _exchange(say: Say, servers: Sequence[Homeserver], result: LoopbackResult) -> None:
    a, b = servers
    say(f"[3/{STEPS}] users: registering with each server's shared secret")
    alice: MatrixUser = a.register("alice", "demo-password")
    bob: MatrixUser = b.register("bob", "demo-password")
    result.users = [alice.user_id, bob.user_id]
    say(f"  {alice.user_id} on {a.files.server_name}, {bob.user_id} on {b.files.server_name}")
    say(f"[4/{STEPS}] room: {alice.user_id} creates a room on {a.files.server_name}, "
        f"invites {bob.user_id}")  # fmt: skip
    room = alice.create_room(invite=[bob.user_id])
    result.room = room
    say(f"  room {room}; the invite goes to {b.files.server_name} over federation")
    bob.join(room, timeout=DELIVERY_TIMEOUT)
    say(f"  {bob.user_id} joined {room} through {a.files.server_name}")
    body = f"hello from {a.files.server_name} to {b.files.server_name}"
    say(f"[5/{STEPS}] message: {alice.user_id} sends {body!r}")
    started = time.monotonic()
    alice.send_text(room, body)
    bob.wait_text(room, body, timeout=DELIVERY_TIMEOUT)
    result.delivered_seconds = round(time.monotonic() - started, 2)
    say(f"  {bob.user_id} on {b.files.server_name} received it: delivered in "
        f"{result.delivered_seconds:.2f} s")  # fmt: skip


def _how_to_connect(say: Say, servers: Sequence[Homeserver], top: Path) -> None:
    say(f"kept: the homeservers run on; their files are in {top}")
    for server in servers:
        say(f"  {server.files.server_name}: federation on [::1]:{server.port}, client API on "
            f"the unix socket {server.files.client_socket}, e.g.")  # fmt: skip
        say(f"    curl --unix-socket {server.files.client_socket} "
            "http://localhost/_matrix/client/versions")  # fmt: skip
    pids = " ".join(str(s.pid) for s in servers)
    say(f"  stop them with: kill {pids}; then rm -r {top}")


def run_loopback_demo(
    say: Say,
    keep: bool = False,
    ports: Sequence[int] = LOOPBACK_PORTS,
    timeout: float = STARTUP_TIMEOUT,
) -> LoopbackResult:
    """Two homeservers on ``[::1]``, a room across them and a message; torn down unless ``keep``.

    Raises :class:`LabEnvironmentError` (exit 2) when matrix-synapse or openssl is
    missing or a port is taken, :class:`LabError` (exit 1) when a step fails.
    """
    say(f"[1/{STEPS}] checking matrix-synapse and openssl for {sys.executable}")
    check_synapse_tools()
    for port in ports:
        _check_port_free(port)
    top = Path(tempfile.mkdtemp(prefix="v6alt-demo-loopback-"))
    result = LoopbackResult(kept=keep, files=str(top))
    servers: list[Homeserver] = []
    try:
        say(f"[2/{STEPS}] homeservers: two Synapses with the v6alt module on [::1]")
        started = time.monotonic()
        for label, port in zip("ab", ports, strict=True):
            server = _spawn(top / label, port)
            servers.append(server)
            result.servers.append(server.files.server_name)
            say(f"  {server.files.server_name}: starting (pid {server.pid}), "
                f"federation on [::1]:{port}")  # fmt: skip
        for server in servers:
            server.wait_ready(started + timeout)
            say(f"  {server.files.server_name}: ready in {time.monotonic() - started:.1f} s")
        try:
            _exchange(say, servers, result)
        except MatrixApiError as error:
            raise LabError(f"Matrix on loopback: {error}") from error
    finally:
        if keep:
            _KEPT.extend(s.process for s in servers if s.process is not None)
            _how_to_connect(say, servers, top)
        else:
            for server in servers:
                server.stop()
            shutil.rmtree(top, ignore_errors=True)
            say(f"torn down: stopped {len(servers)} homeserver(s), removed {top}")
    return result


def result_dict(result: LoopbackResult) -> dict[str, Any]:
    """The ``--json`` form."""
    return {"mode": "loopback", "reason": NOT_ROOT_REASON, **result.__dict__}
