"""Thin wrappers over iproute2 for namespaces, veth pairs and addresses.

Every command runs in its own session so a Ctrl-C on the terminal reaches only
the lab, which then cleans up; a hung command is cut off by a timeout instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from ipaddress import IPv6Interface
from pathlib import Path
from typing import Final

from .errors import LabCommandError, LabEnvironmentError

__all__ = [
    "NETNS_DIR",
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
