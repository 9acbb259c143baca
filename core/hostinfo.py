"""This host's mesh addresses and the source address the kernel picks.

Peers bind a v6.alt name to the source address of the connection they see, so
a host with several mesh addresses (a Yggdrasil node address and an address
from its routed 300::/8 subnet, say) must use as its server name the name of
the address the kernel actually picks as source, not the one it likes best.

The core stays pure: the only I/O is reading ``/proc/net/if_inet6`` and
running ``ip -6 -json route get`` (which sends no packet; it asks the kernel's
routing table). Both live in thin functions that :func:`survey` takes as
arguments, so everything that decides is unit-tested on fixture text.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from ipaddress import IPv6Address, IPv6Network
from typing import Final

from .codec import encode
from .errors import V6AltError
from .ipranges import YGGDRASIL, YGGDRASIL_NODES, YGGDRASIL_SUBNETS, never_dial_rule

__all__ = [
    "DEFAULT_PROBES",
    "IF_INET6_PATH",
    "MESH_RANGES",
    "HostInfoError",
    "HostReport",
    "LocalAddress",
    "MeshKind",
    "NoRouteError",
    "Route",
    "SourceCheck",
    "check_source",
    "ip_route_get",
    "mesh_kind",
    "parse_if_inet6",
    "parse_route_get",
    "read_if_inet6",
    "subnet_name_warning",
    "survey",
]

IF_INET6_PATH: Final = "/proc/net/if_inet6"


class HostInfoError(V6AltError):
    """The host's addresses or routes could not be read or parsed."""


class NoRouteError(HostInfoError):
    """The kernel has no usable route towards a destination."""


class MeshKind(str, Enum):
    YGGDRASIL = "yggdrasil"
    CJDNS = "cjdns"
    GLOBAL = "global"


MESH_RANGES: Final[dict[MeshKind, IPv6Network]] = {
    MeshKind.YGGDRASIL: IPv6Network("200::/7"),
    MeshKind.CJDNS: IPv6Network("fc00::/8"),
    MeshKind.GLOBAL: IPv6Network("2000::/3"),
}

# Destinations handed to `ip route get`; no packet is sent to them. The kernel
# picks the source by the route and by RFC 6724 rules, so any address inside
# the range stands for a peer there.
DEFAULT_PROBES: Final[dict[MeshKind, IPv6Address]] = {
    MeshKind.YGGDRASIL: IPv6Address("200::1"),
    MeshKind.CJDNS: IPv6Address("fc00::1"),
    MeshKind.GLOBAL: IPv6Address("2000::1"),
}

# ifa_flags bits as the kernel prints them (low byte) in /proc/net/if_inet6.
_FLAG_NAMES: Final = (
    (0x01, "temporary"),
    (0x02, "nodad"),
    (0x04, "optimistic"),
    (0x08, "dadfailed"),
    (0x10, "homeaddress"),
    (0x20, "deprecated"),
    (0x40, "tentative"),
    (0x80, "permanent"),
)
# An address with one of these is not (or no longer) chosen as a source for
# new connections, so it cannot be the address peers see.
_NOT_A_SOURCE: Final = 0x08 | 0x20
# Route types that answer a lookup without a way out.
_NO_WAY_OUT: Final = frozenset({"unreachable", "blackhole", "prohibit", "throw"})


_KIND_ORDER: Final = {kind: index for index, kind in enumerate(MeshKind)}


def mesh_kind(address: IPv6Address) -> MeshKind | None:
    """The mesh range an address belongs to, or None."""
    for kind, network in MESH_RANGES.items():
        if address in network:
            return kind
    return None


@dataclass(frozen=True)
class LocalAddress:
    """One line of ``/proc/net/if_inet6``."""

    address: IPv6Address
    interface: str
    prefix_length: int
    scope: int
    flags: int

    @property
    def kind(self) -> MeshKind | None:
        return mesh_kind(self.address)

    @property
    def name(self) -> str:
        return encode(self.address)

    @property
    def flag_names(self) -> tuple[str, ...]:
        return tuple(name for bit, name in _FLAG_NAMES if self.flags & bit)

    @property
    def usable_as_source(self) -> bool:
        return not self.flags & _NOT_A_SOURCE


@dataclass(frozen=True)
class Route:
    """What ``ip -6 route get`` says about one destination."""

    destination: IPv6Address
    source: IPv6Address | None
    interface: str | None
    type: str


@dataclass(frozen=True)
class SourceCheck:
    """The kernel's source address towards one mesh range, judged.

    ``candidates`` are this host's addresses in the range that could be a
    source; ``warning`` is set when peers would see another address than one
    of them (so the server name must follow the kernel's choice).
    ``never_dial`` is the policy's rule when the source itself is an address
    peers never dial (a ULA, say): no server name can work from it.
    """

    kind: MeshKind
    probe: IPv6Address
    route: Route | None
    no_route_reason: str | None
    candidates: tuple[LocalAddress, ...]
    warning: str | None
    never_dial: str | None = None

    @property
    def network(self) -> IPv6Network:
        return MESH_RANGES[self.kind]

    @property
    def source(self) -> IPv6Address | None:
        return self.route.source if self.route is not None else None


@dataclass(frozen=True)
class HostReport:
    """Mesh addresses of this host and the source checks towards each range."""

    addresses: tuple[LocalAddress, ...]
    sources: tuple[SourceCheck, ...]
    server_address: IPv6Address | None = None

    @property
    def warnings(self) -> tuple[str, ...]:
        found = [check.warning for check in self.sources if check.warning is not None]
        if self.server_address is not None and self.server_address not in {
            a.address for a in self.addresses
        }:
            found.insert(
                0,
                f"{encode(self.server_address)} is {self.server_address}, "
                "which is not a mesh address of this host",
            )
        return tuple(found)

    @property
    def ok(self) -> bool:
        """No mesh address, or a warning about the source: the check fails. The
        :attr:`trust_warnings` do not count: the name works, it is just weaker."""
        return bool(self.addresses) and not self.warnings

    @property
    def own_address(self) -> IPv6Address | None:
        """The address this server is named by: the server name's, or else the
        kernel's source towards Yggdrasil (what peers would see)."""
        if self.server_address is not None:
            return self.server_address
        for check in self.sources:
            if check.kind is MeshKind.YGGDRASIL and check.source is not None:
                return check.source
        return None

    @property
    def trust_warnings(self) -> tuple[str, ...]:
        """Warnings about how far peers can trust this server's name."""
        warning = subnet_name_warning(
            self.own_address, self.addresses, named=self.server_address is not None
        )
        return () if warning is None else (warning,)


def parse_if_inet6(text: str) -> tuple[LocalAddress, ...]:
    """Parse ``/proc/net/if_inet6``: ``addr ifindex prefixlen scope flags name``.

    Every field but the name is hex. Raises :class:`HostInfoError` naming the
    line that does not fit, since a silently skipped line could hide the very
    address the check is about.
    """
    result = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 6 or len(fields[0]) != 32:
            raise HostInfoError(f"if_inet6 line {number}: expected 6 fields, got {line!r}")
        try:
            address = IPv6Address(int(fields[0], 16))
            prefix_length, scope, flags = (int(f, 16) for f in fields[2:5])
        except ValueError:
            raise HostInfoError(f"if_inet6 line {number}: not hex: {line!r}") from None
        if prefix_length > 128:
            raise HostInfoError(f"if_inet6 line {number}: prefix length {prefix_length} > 128")
        result.append(LocalAddress(address, fields[5], prefix_length, scope, flags))
    return tuple(result)


def parse_route_get(text: str, destination: IPv6Address) -> Route:
    """Parse ``ip -6 -json route get DEST`` output (a one-element list).

    Raises :class:`NoRouteError` for unreachable/blackhole/prohibit/throw
    routes and :class:`HostInfoError` for output that is not that JSON.
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise HostInfoError(f"ip route get {destination}: output is not JSON: {exc}") from None
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        raise HostInfoError(f"ip route get {destination}: expected a list of routes: {text!r}")
    entry = data[0]
    route_type = entry.get("type", "unicast")
    if not isinstance(route_type, str):
        raise HostInfoError(f"ip route get {destination}: 'type' is not text: {route_type!r}")
    if route_type in _NO_WAY_OUT:
        raise NoRouteError(f"{route_type} route")
    source: IPv6Address | None = None
    prefsrc = entry.get("prefsrc")
    if prefsrc is not None:
        try:
            source = IPv6Address(prefsrc)
        except ValueError:
            raise HostInfoError(
                f"ip route get {destination}: prefsrc is not an IPv6 address: {prefsrc!r}"
            ) from None
    dev = entry.get("dev")
    interface = dev if isinstance(dev, str) else None
    return Route(destination, source, interface, route_type)


def check_source(
    kind: MeshKind,
    probe: IPv6Address,
    addresses: Iterable[LocalAddress],
    route: Route | None,
    no_route_reason: str | None = None,
    expected: IPv6Address | None = None,
) -> SourceCheck:
    """Judge the kernel's source towards ``probe`` against the local addresses.

    Without ``expected`` the warning fires when the range holds another
    usable local address than the kernel's choice (the name could follow the
    wrong one). With ``expected`` (the address of the server name in use,
    inside this range) it fires exactly when the kernel does not pick it.
    """
    network = MESH_RANGES[kind]
    candidates = tuple(a for a in addresses if a.address in network and a.usable_as_source)
    source = route.source if route is not None else None
    warning = None
    if expected is not None:
        warning = _expected_source_warning(network, source, no_route_reason, expected)
    elif source is not None:
        others = ", ".join(str(a.address) for a in candidates if a.address != source)
        if source not in network and candidates:
            warning = (
                f"peers bind your name to the source address; towards {network} the kernel "
                f"picks {source}, which is outside {network} (this host has {others} there), "
                f"so peers there see {encode(source)}"
            )
        elif others:
            warning = (
                f"peers bind your name to the source address; the kernel picks {source} "
                f"towards {network} (this host also has {others}), "
                f"so your server name must be {encode(source)}"
            )
    never_dial = never_dial_rule(source) if source is not None else None
    if source is not None and never_dial is not None:
        usable = [a for a in candidates if never_dial_rule(a.address) is None]
        pin = (
            f"ip -6 route change {network} dev {usable[0].interface} src {usable[0].address}"
            if usable
            else f"give this host an address in {network} and pin it on the route"
        )
        warning = (
            f"towards {network} the kernel picks {source} as source, an address peers "
            f"never dial ({never_dial}), so no server name works from it: {pin}"
        )
    return SourceCheck(kind, probe, route, no_route_reason, candidates, warning, never_dial)


def _expected_source_warning(
    network: IPv6Network,
    source: IPv6Address | None,
    no_route_reason: str | None,
    expected: IPv6Address,
) -> str | None:
    if source == expected:
        return None
    if source is None:
        why = no_route_reason or "the route has no source address"
        return (
            f"towards {network} the kernel has no source address ({why}), "
            f"so peers there cannot reach {encode(expected)}"
        )
    return (
        f"peers bind your name to the source address; the kernel picks {source} towards "
        f"{network}, so your server name must be {encode(source)}, not {encode(expected)}"
    )


def subnet_name_warning(
    own: IPv6Address | None, addresses: Iterable[LocalAddress], *, named: bool
) -> str | None:
    """A warning when this server is named by an address of a routed Yggdrasil
    subnet (300::/8), naming the node's 200::/8 address to use instead.

    Any host on the LAN a subnet is advertised to can take any address in it,
    so the address proves little: peers pin the server's keys (docs/security.md).
    ``named``: ``own`` is the server name's address, not the kernel's source.
    """
    if own is None or own not in YGGDRASIL_SUBNETS:
        return None
    subject = (
        f"your server name {encode(own)} ({own})"
        if named
        else f"the name of the kernel's source towards {YGGDRASIL}, {encode(own)} ({own}),"
    )
    problem = (
        f"{subject} is in a routed Yggdrasil subnet ({YGGDRASIL_SUBNETS}): any host on the "
        "subnet's LAN can take that address, so it proves no identity and peers pin this "
        "server's keys instead (docs/security.md)"
    )
    nodes = [a for a in addresses if a.address in YGGDRASIL_NODES and a.usable_as_source]
    if not nodes:
        return (
            f"{problem}; this host has no Yggdrasil node address ({YGGDRASIL_NODES}): run the "
            "server on the Yggdrasil node itself and name it by the node's address "
            "(yggdrasilctl getSelf)"
        )
    node = nodes[0]
    return (
        f"{problem}; name it by this node's address {node.address} ({node.name}) instead, "
        f"and make the kernel send from it: ip -6 route change {YGGDRASIL} dev "
        f"{node.interface} src {node.address}"
    )


RouteGet = Callable[[IPv6Address], str]


def survey(
    if_inet6_text: str,
    route_get: RouteGet,
    probes: Sequence[IPv6Address] | None = None,
    server_address: IPv6Address | None = None,
) -> HostReport:
    """Build the report from if_inet6 text and a ``route get`` callable.

    ``route_get`` returns the JSON text of ``ip -6 -json route get`` and raises
    :class:`NoRouteError` when there is no route. Without ``probes`` the
    Yggdrasil and global ranges are always probed, cjdns only when this host
    has a cjdns address. ``server_address`` is the address of the server name
    in use, if known: its range is then judged against it (and probed).
    """
    server_kind = None
    if server_address is not None:
        server_kind = mesh_kind(server_address)
        if server_kind is None:
            raise HostInfoError(f"{server_address} is in none of the mesh ranges {_range_list()}")
    everything = parse_if_inet6(if_inet6_text)
    mesh = tuple(
        sorted(
            (a for a in everything if a.kind is not None),
            key=lambda a: (_KIND_ORDER[a.kind or MeshKind.GLOBAL], a.address),
        )
    )
    if probes is None:
        kinds_present = {a.kind for a in mesh}
        probes = [
            DEFAULT_PROBES[kind]
            for kind in MeshKind
            if kind is not MeshKind.CJDNS or kind in kinds_present or kind is server_kind
        ]
    elif server_kind is not None and all(mesh_kind(p) is not server_kind for p in probes):
        probes = [*probes, DEFAULT_PROBES[server_kind]]
    checks = []
    for probe in probes:
        kind = mesh_kind(probe)
        if kind is None:
            raise HostInfoError(f"{probe} is in none of the mesh ranges {_range_list()}")
        try:
            route: Route | None = parse_route_get(route_get(probe), probe)
            reason = None
        except NoRouteError as exc:
            route, reason = None, str(exc)
        expected = server_address if kind is server_kind else None
        checks.append(check_source(kind, probe, mesh, route, reason, expected))
    return HostReport(mesh, tuple(checks), server_address)


def _range_list() -> str:
    return ", ".join(str(n) for n in MESH_RANGES.values())


# --- the thin I/O -----------------------------------------------------------


def read_if_inet6(path: str = IF_INET6_PATH) -> str:
    """Read the kernel's address table; empty when IPv6 is disabled."""
    try:
        with open(path, encoding="ascii") as table:
            return table.read()
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as exc:
        raise HostInfoError(f"cannot read {path}: {exc}") from None


Runner = Callable[..., "subprocess.CompletedProcess[str]"]


def ip_route_get(
    destination: IPv6Address, *, ip: str = "ip", runner: Runner = subprocess.run
) -> str:
    """Run ``ip -6 -json route get DEST`` and return its JSON text.

    Raises :class:`NoRouteError` with iproute2's message when the kernel has
    no route, :class:`HostInfoError` when ``ip`` cannot be run.
    """
    command = [ip, "-6", "-json", "route", "get", str(destination)]
    try:
        done = runner(command, capture_output=True, text=True, timeout=10, check=False)
    except FileNotFoundError:
        raise HostInfoError(f"cannot run {ip!r}: iproute2 is not installed") from None
    except (OSError, subprocess.SubprocessError) as exc:
        raise HostInfoError(f"cannot run {' '.join(command)}: {exc}") from None
    if done.returncode != 0:
        message = done.stderr.strip().splitlines()
        reason = message[-1] if message else f"exit status {done.returncode}"
        raise NoRouteError(reason.removeprefix("RTNETLINK answers: "))
    return done.stdout
