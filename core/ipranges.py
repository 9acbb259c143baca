"""IPv6 range tables: the special-purpose ranges and a longest-prefix lookup.

The policy runs for every federation request and every DNS answer, so
membership is not tested with ``address in network`` over a list. Instead a
:class:`PrefixTable` keeps one dict per prefix length, keyed by the network's
leading bits; a lookup costs one shift and one dict probe per distinct prefix
length that has a network in the address's first byte, most specific first,
so the first hit is the longest match.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from typing import Final, Generic, TypeVar

__all__ = [
    "CJDNS",
    "GLOBAL_UNICAST",
    "KEY_ADDRESSED",
    "NEVER_DIAL_RANGES",
    "YGGDRASIL",
    "YGGDRASIL_NODES",
    "YGGDRASIL_SUBNETS",
    "PrefixTable",
    "SpecialRange",
    "embedded_ipv4_6to4",
    "embedded_ipv4_nat64",
    "never_dial_containing",
    "never_dial_rule",
    "range_name",
]

V = TypeVar("V")

_MASK32: Final = 0xFFFFFFFF


class PrefixTable(Generic[V]):
    """Longest-prefix match over IPv6 networks.

    When two entries have the same network the later one wins, which lets a
    caller add defaults first and explicit user entries after them.
    """

    __slots__ = ("_by_top", "_levels")

    def __init__(self, entries: Iterable[tuple[IPv6Network, V]] = ()) -> None:
        by_length: dict[int, dict[int, V]] = {}
        for network, value in entries:
            shift = 128 - network.prefixlen
            by_length.setdefault(shift, {})[int(network.network_address) >> shift] = value
        # Smallest shift = longest prefix, so the first hit is the most specific.
        self._levels: tuple[tuple[int, dict[int, V]], ...] = tuple(sorted(by_length.items()))
        # The levels with a network in each first byte of the address space: a lookup
        # probes only those (most addresses lie where few special ranges do).
        tops: dict[int, list[tuple[int, dict[int, V]]]] = {top: [] for top in range(256)}
        for shift, table in self._levels:
            touched: set[int] = set()
            for key in table:
                first = (key << shift) >> 120
                last = ((key << shift) | ((1 << shift) - 1)) >> 120
                touched.update(range(first, last + 1))
            for top in sorted(touched):
                tops[top].append((shift, table))
        self._by_top: dict[int, tuple[tuple[int, dict[int, V]], ...]] = {
            top: tuple(levels) for top, levels in tops.items()
        }

    def lookup(self, address: int) -> V | None:
        """The value of the most specific network containing ``address``."""
        for shift, table in self._by_top.get(address >> 120, self._levels):
            hit = table.get(address >> shift)
            if hit is not None:
                return hit
        return None

    def __len__(self) -> int:
        return sum(len(table) for _, table in self._levels)


def embedded_ipv4_nat64(address: int) -> IPv4Address:
    """The IPv4 address in the last 32 bits (64:ff9b::/96, RFC 6052)."""
    return IPv4Address(address & _MASK32)


def embedded_ipv4_6to4(address: int) -> IPv4Address:
    """The IPv4 address in bits 16-47 (2002::/16, RFC 3056)."""
    return IPv4Address((address >> 80) & _MASK32)


@dataclass(frozen=True)
class SpecialRange:
    """A range v6.alt names must never point to.

    ``name`` is short and goes into decision rules ("loopback"); ``reason``
    says why the range is refused. When ``embedded_ipv4`` is set the range is
    refused only for addresses whose embedded IPv4 is not globally reachable.
    """

    network: IPv6Network
    name: str
    reason: str
    embedded_ipv4: Callable[[int], IPv4Address] | None = None


def _r(cidr: str, name: str, reason: str) -> SpecialRange:
    return SpecialRange(IPv6Network(cidr), name, reason)


NEVER_DIAL_RANGES: Final[tuple[SpecialRange, ...]] = (
    _r("::/128", "unspecified", "the unspecified address is no host"),
    _r("::1/128", "loopback", "this host itself: a name would reach local services"),
    _r(
        "::/96",
        "IPv4-compatible",
        "deprecated IPv4-compatible form (RFC 4291); reaches IPv4 hosts, including private ones",
    ),
    _r(
        "::ffff:0:0/96",
        "IPv4-mapped",
        "IPv4 reached through the dual stack: 127.0.0.1, 10/8 and the like",
    ),
    SpecialRange(
        IPv6Network("64:ff9b::/96"),
        "NAT64",
        "well-known NAT64 prefix (RFC 6052): refused when the embedded IPv4 is not global",
        embedded_ipv4_nat64,
    ),
    _r("64:ff9b:1::/48", "local-use NAT64", "local-use NAT64 prefix (RFC 8215): site-internal"),
    _r("100::/64", "discard-only", "discard-only prefix (RFC 6666): traffic is dropped"),
    _r(
        "2001::/32",
        "Teredo",
        "Teredo (RFC 4380): embeds an IPv4 server and client address; deprecated",
    ),
    _r("2001:2::/48", "benchmarking", "benchmarking prefix (RFC 5180): not routed"),
    _r("2001:20::/28", "ORCHIDv2", "ORCHIDv2 identifiers (RFC 7343): not routable"),
    _r("2001:db8::/32", "documentation", "documentation prefix (RFC 3849)"),
    SpecialRange(
        IPv6Network("2002::/16"),
        "6to4",
        "6to4 (RFC 3056): refused when the embedded IPv4 is not global",
        embedded_ipv4_6to4,
    ),
    _r("3fff::/20", "documentation", "documentation prefix (RFC 9637)"),
    _r("fd00::/8", "ULA", "unique local addresses (RFC 4193): private networks"),
    _r("fe80::/10", "link-local", "link-local: only meaningful on one link, needs a zone"),
    _r("fec0::/10", "site-local", "deprecated site-local (RFC 3879): private networks"),
    _r("ff00::/8", "multicast", "multicast: not a single host"),
)

YGGDRASIL: Final = IPv6Network("200::/7")
#: Yggdrasil node addresses: most of the address is derived from the node's key.
YGGDRASIL_NODES: Final = IPv6Network("200::/8")
#: Yggdrasil routed subnets (``300:<node bits>::/64``, advertised to a LAN): fewer key
#: bits, and any host on that LAN can take any address in its /64.
YGGDRASIL_SUBNETS: Final = IPv6Network("300::/8")
GLOBAL_UNICAST: Final = IPv6Network("2000::/3")
CJDNS: Final = IPv6Network("fc00::/8")

#: Where an address names the node's key: whoever answers there holds that key.
KEY_ADDRESSED: Final = (YGGDRASIL_NODES, CJDNS)

_RANGE_NAMES: Final = {
    YGGDRASIL: "yggdrasil",
    YGGDRASIL_NODES: "yggdrasil node",
    YGGDRASIL_SUBNETS: "yggdrasil subnet",
    GLOBAL_UNICAST: "global unicast",
    CJDNS: "cjdns",
}


def range_name(network: IPv6Network) -> str | None:
    """The well-known name of an allow range ("yggdrasil"), if it has one."""
    return _RANGE_NAMES.get(network)


def never_dial_containing(network: IPv6Network) -> SpecialRange | None:
    """The most specific never-dial range that contains (or equals) ``network``."""
    best: SpecialRange | None = None
    for special in NEVER_DIAL_RANGES:
        if network.subnet_of(special.network) and (
            best is None or special.network.prefixlen > best.network.prefixlen
        ):
            best = special
    return best


def never_dial_rule(address: IPv6Address) -> str | None:
    """The built-in rule that refuses ``address`` (nothing lifted), in the
    policy's words (``never-dial: ULA (fd00::/8)``), or None.

    For callers that must not load the config (``v6alt whoami``); the
    policy's decision for the default config gives the same rule.
    """
    best: SpecialRange | None = None
    for special in NEVER_DIAL_RANGES:
        if address in special.network and (
            best is None or special.network.prefixlen > best.network.prefixlen
        ):
            best = special
    if best is None:
        return None
    if best.embedded_ipv4 is not None:
        ipv4 = best.embedded_ipv4(int(address))
        if ipv4.is_global:
            return None
        return f"never-dial: {best.name} of non-global IPv4 {ipv4} ({best.network})"
    return f"never-dial: {best.name} ({best.network})"
