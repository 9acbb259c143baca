"""One Yggdrasil node per lab host: its config, its process and its admin socket.

The config comes from ``yggdrasil -genconf -json`` (a fresh key per host, so
a fresh 200::/7 address per ``up``) with the fields a lab needs replaced:
listen and peer over the veth underlay only, no multicast discovery (it would
peer across links the topology does not have), the admin API on a unix socket
in the lab's run directory, and a TUN interface named after the host.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
from collections.abc import Sequence
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any, Final

from .errors import LabEnvironmentError, LabError
from .netns import find_tool, netns_exec_argv, run

__all__ = [
    "INSTALL_HINT",
    "MIN_VERSION",
    "AdminClient",
    "config_address",
    "find_yggdrasil",
    "make_config",
    "start_node",
]

MIN_VERSION: Final = (0, 5)
INSTALL_HINT: Final = "apt-get install -t bookworm-backports yggdrasil"
# sockaddr_un.sun_path is 108 bytes including the terminating NUL.
MAX_SOCKET_PATH: Final = 107


def find_yggdrasil() -> str:
    """Path of a ``yggdrasil`` binary of at least version 0.5, or an error (exit 2)."""
    path = find_tool("yggdrasil", "yggdrasil", INSTALL_HINT)
    out = run([path, "-version"]).stdout
    match = re.search(r"Build version:\s*v?(\d+)\.(\d+)", out)
    if match is None:
        raise LabEnvironmentError(f"cannot tell the version of {path} from: {out.strip()!r}")
    version = (int(match[1]), int(match[2]))
    if version < MIN_VERSION:
        raise LabEnvironmentError(
            f"{path} is yggdrasil {version[0]}.{version[1]}; the lab needs "
            f"{MIN_VERSION[0]}.{MIN_VERSION[1]} or newer: {INSTALL_HINT}"
        )
    return path


def make_config(
    yggdrasil: str,
    *,
    listen: Sequence[str],
    peers: Sequence[str],
    admin_socket: Path,
    ifname: str,
) -> dict[str, Any]:
    """A fresh node config (new private key) for one lab host."""
    if len(str(admin_socket)) > MAX_SOCKET_PATH:
        raise LabError(
            f"admin socket path {admin_socket} is longer than {MAX_SOCKET_PATH} bytes; "
            "use a shorter run directory"
        )
    config: dict[str, Any] = json.loads(run([yggdrasil, "-genconf", "-json"]).stdout)
    config.update(
        {
            "Listen": list(listen),
            "Peers": list(peers),
            "InterfacePeers": {},
            "MulticastInterfaces": [],
            "AdminListen": f"unix://{admin_socket}",
            "IfName": ifname,
            "NodeInfoPrivacy": True,
        }
    )
    return config


def config_address(yggdrasil: str, config_path: Path) -> IPv6Address:
    """The 200::/7 address a config's key gives, computed without starting a node."""
    out = run([yggdrasil, "-useconffile", str(config_path), "-address"]).stdout.strip()
    return IPv6Address(out)


def start_node(
    yggdrasil: str, netns: str, config_path: Path, log_path: Path
) -> subprocess.Popen[bytes]:
    """Start a node inside ``netns``; ``ip netns exec`` execs, so the pid is yggdrasil's.

    Its own session keeps a Ctrl-C on the terminal from killing it before the
    lab has recorded and can stop it in order.
    """
    argv = netns_exec_argv(
        netns, [yggdrasil, "-useconffile", str(config_path), "-logto", str(log_path)]
    )
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


class AdminClient:
    """The JSON admin API of one node over its unix socket (no ``yggdrasilctl`` needed)."""

    def __init__(self, socket_path: Path | str, timeout: float = 3.0) -> None:
        self.socket_path = str(socket_path)
        self.timeout = timeout

    def request(self, name: str, **arguments: Any) -> dict[str, Any]:
        """Send one request; return its ``response`` object or raise :class:`LabError`."""
        message = {"request": name, "arguments": arguments, "keepalive": False}
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(self.socket_path)
                sock.sendall(json.dumps(message).encode())
                reply = self._read_reply(sock)
        except OSError as exc:
            raise LabError(f"yggdrasil admin socket {self.socket_path}: {exc}") from exc
        if reply.get("status") != "success":
            raise LabError(f"yggdrasil admin {name}: {reply.get('error', 'no reason given')}")
        response = reply.get("response")
        return response if isinstance(response, dict) else {}

    @staticmethod
    def _read_reply(sock: socket.socket) -> dict[str, Any]:
        buf = b""
        while True:
            chunk = sock.recv(65536)
            if chunk:
                buf += chunk
            try:
                reply = json.loads(buf)
            except ValueError:
                if not chunk:
                    raise OSError(f"connection closed after {len(buf)} bytes of a reply") from None
                continue
            if not isinstance(reply, dict):
                raise OSError("reply is not a JSON object")
            return reply

    def get_self(self) -> dict[str, Any]:
        return self.request("getSelf")

    def get_peers(self) -> list[dict[str, Any]]:
        peers = self.request("getPeers").get("peers")
        return [p for p in peers if isinstance(p, dict)] if isinstance(peers, list) else []
