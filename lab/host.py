"""A running lab host as the Python API hands it out."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Interface
from pathlib import Path
from typing import Any

from v6alt.codec import encode

from .netns import netns_exec_argv
from .yggdrasil import AdminClient

__all__ = ["LabHost"]


@dataclass(frozen=True)
class LabHost:
    """One lab host: a network namespace with a Yggdrasil node in it.

    ``host`` is the short name (``a``, ``b``, ...), ``netns`` the namespace,
    ``ygg_address`` the node's 200::/7 address and ``name`` its canonical
    v6.alt name (``v6alt.encode(ygg_address)``). ``underlay`` maps each
    neighbour's host name to this host's underlay address on the link to it.
    """

    host: str
    netns: str
    ygg_address: IPv6Address
    tun_ifname: str
    underlay: dict[str, IPv6Interface]
    admin_socket: Path
    log_path: Path
    pid: int

    @property
    def name(self) -> str:
        """Canonical v6.alt name of the host, e.g. ``aiamvog6wthgaq3cisjokoiewu.v6.alt``."""
        return encode(self.ygg_address)

    @property
    def neighbours(self) -> tuple[str, ...]:
        """Hosts this one is directly peered with over a veth link."""
        return tuple(self.underlay)

    def argv(self, cmd: Sequence[str]) -> list[str]:
        """``cmd`` prefixed to run inside this host's namespace."""
        return netns_exec_argv(self.netns, cmd)

    def exec(
        self,
        cmd: Sequence[str],
        *,
        check: bool = True,
        timeout: float | None = 60.0,
        input: str | None = None,
        **kwargs: Any,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` inside the namespace and wait; text output is captured.

        ``check`` raises :class:`subprocess.CalledProcessError` on a non-zero
        exit; extra keyword arguments go to :func:`subprocess.run`.
        """
        kwargs.setdefault("capture_output", True)
        return subprocess.run(
            self.argv(cmd), check=check, timeout=timeout, input=input, text=True, **kwargs
        )

    def popen(self, cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``cmd`` inside the namespace without waiting (a server, a capture).

        Keyword arguments go to :class:`subprocess.Popen`; the caller owns the
        process and must stop it before ``down`` deletes the namespace.
        """
        return subprocess.Popen(self.argv(cmd), **kwargs)

    def python(self, code: str, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run Python ``code`` (this interpreter, so ``v6alt`` imports) inside the namespace."""
        return self.exec([sys.executable, "-c", code, *args], **kwargs)

    def admin(self) -> AdminClient:
        """The node's admin API (``getSelf``, ``getPeers``, ...)."""
        return AdminClient(self.admin_socket)

    def peers_up(self) -> list[IPv6Address]:
        """Yggdrasil addresses of the directly connected peers that are up."""
        return [
            IPv6Address(p["address"])
            for p in self.admin().get_peers()
            if p.get("up") and isinstance(p.get("address"), str)
        ]
