"""The plan of a lab: host names, namespaces, veth links and underlay addresses.

Pure (no I/O): the same plan is computed for ``up``, and its parts are then
recorded in the state file as they are made, so ``down`` never has to guess.

Underlay: link ``k`` (0-based) is the ULA network ``fd00:1ab:0:<k+1>::/64``,
its left end ``::1`` and its right end ``::2``. Every link is a veth pair
whose two ends live in two lab namespaces, so the underlay never leaves them.
Inside a host the veth towards host ``b`` is called ``v6lab-b`` and the
Yggdrasil TUN interface ``ygg-<host>``; names only have to be unique inside one
namespace, and both stay within the 15 characters Linux allows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv6Interface, IPv6Network
from typing import Final, Literal, get_args

from .errors import LabUsageError

__all__ = [
    "DEFAULT_PREFIX",
    "HOST_NAMES",
    "MAX_NODES",
    "UNDERLAY_BASE",
    "YGGDRASIL_PORT",
    "HostPlan",
    "LabPlan",
    "LinkPlan",
    "Topology",
    "check_prefix",
    "count_hosts",
    "plan_lab",
]

Topology = Literal["chain", "star"]
TOPOLOGIES: Final[tuple[str, ...]] = get_args(Topology)

DEFAULT_PREFIX: Final = "v6lab-"
HOST_NAMES: Final = "abcdefghijklmnopqrstuvwxyz"
MAX_NODES: Final = len(HOST_NAMES)
# Yggdrasil listens on this port on every underlay address of a host; each
# namespace has its own port space, so one number serves all hosts.
YGGDRASIL_PORT: Final = 19001
UNDERLAY_BASE: Final = IPv6Network("fd00:1ab::/48")
VETH_PREFIX: Final = "v6lab-"

# Namespace names become file names under /run/netns and appear in logs:
# lowercase, digits and dashes, ending in a dash so "<prefix><host>" reads well.
_PREFIX_RE: Final = re.compile(r"[a-z][a-z0-9-]{0,30}-")


@dataclass(frozen=True)
class LinkPlan:
    """One veth pair between two hosts; ``left`` dials, ``right`` is dialled."""

    index: int
    left: str
    right: str
    network: IPv6Network

    @property
    def left_address(self) -> IPv6Interface:
        return IPv6Interface(f"{self.network.network_address + 1}/{self.network.prefixlen}")

    @property
    def right_address(self) -> IPv6Interface:
        return IPv6Interface(f"{self.network.network_address + 2}/{self.network.prefixlen}")

    def ifname_in(self, host: str) -> str:
        """Name of this link's veth end inside ``host`` (named after the other end)."""
        return VETH_PREFIX + self.other(host)

    def address_of(self, host: str) -> IPv6Interface:
        """Underlay address of ``host`` on this link."""
        if host == self.left:
            return self.left_address
        if host == self.right:
            return self.right_address
        raise ValueError(f"host {host!r} is not on link {self.left}-{self.right}")

    def other(self, host: str) -> str:
        if host == self.left:
            return self.right
        if host == self.right:
            return self.left
        raise ValueError(f"host {host!r} is not on link {self.left}-{self.right}")


@dataclass(frozen=True)
class HostPlan:
    """One host: a namespace running one Yggdrasil node."""

    host: str
    netns: str

    @property
    def tun_ifname(self) -> str:
        return f"ygg-{self.host}"


@dataclass(frozen=True)
class LabPlan:
    prefix: str
    topology: Topology
    hosts: tuple[HostPlan, ...]
    links: tuple[LinkPlan, ...]

    def links_of(self, host: str) -> tuple[LinkPlan, ...]:
        return tuple(link for link in self.links if host in (link.left, link.right))

    def neighbours(self, host: str) -> tuple[str, ...]:
        return tuple(link.other(host) for link in self.links_of(host))

    def listen_uris(self, host: str) -> list[str]:
        """Yggdrasil ``Listen``: every underlay address of ``host``."""
        return [
            f"tcp://[{link.address_of(host).ip}]:{YGGDRASIL_PORT}" for link in self.links_of(host)
        ]

    def peer_uris(self, host: str) -> list[str]:
        """Yggdrasil ``Peers``: the links ``host`` dials (one side per link dials)."""
        return [
            f"tcp://[{link.right_address.ip}]:{YGGDRASIL_PORT}"
            for link in self.links
            if link.left == host
        ]


def count_hosts(n: int) -> str:
    """``1 host``, ``3 hosts``: for messages."""
    return f"{n} host" if n == 1 else f"{n} hosts"


def check_prefix(prefix: str) -> str:
    """Validate a namespace-name prefix such as ``v6lab-``."""
    if not _PREFIX_RE.fullmatch(prefix):
        raise LabUsageError(
            f"namespace prefix {prefix!r} is not valid: use 2-32 characters of a-z, 0-9 and '-', "
            "starting with a letter and ending with '-' (like 'v6lab-')"
        )
    return prefix


def _link_pairs(nodes: int, topology: Topology) -> list[tuple[int, int]]:
    if topology == "chain":
        return [(i, i + 1) for i in range(nodes - 1)]
    return [(0, i) for i in range(1, nodes)]


def plan_lab(nodes: int, topology: str = "chain", prefix: str = DEFAULT_PREFIX) -> LabPlan:
    """The hosts and links of a lab with ``nodes`` hosts named a, b, c, ...

    ``chain``: a-b, b-c, ... (a reaches c only through b, routed by Yggdrasil).
    ``star``: a-b, a-c, ... (a is the hub).
    """
    if isinstance(nodes, bool) or not isinstance(nodes, int) or not 1 <= nodes <= MAX_NODES:
        raise LabUsageError(f"nodes: {nodes!r} is not a whole number from 1 to {MAX_NODES}")
    if topology not in TOPOLOGIES:
        raise LabUsageError(f"topology: {topology!r} is not one of {', '.join(TOPOLOGIES)}")
    check_prefix(prefix)
    topo: Topology = "chain" if topology == "chain" else "star"
    names = HOST_NAMES[:nodes]
    hosts = tuple(HostPlan(host=h, netns=prefix + h) for h in names)
    subnets = UNDERLAY_BASE.subnets(new_prefix=64)
    next(subnets)  # fd00:1ab::/64 stays unused so link k is fd00:1ab:0:<k+1>::/64
    links = tuple(
        LinkPlan(index=k, left=names[i], right=names[j], network=next(subnets))
        for k, (i, j) in enumerate(_link_pairs(nodes, topo))
    )
    return LabPlan(prefix=prefix, topology=topo, hosts=hosts, links=links)
