"""Where a v6.alt name may point, and how the peer there is to be trusted.

A v6.alt name is effectively an IP literal that anyone can choose (user IDs,
room ``via`` lists), so every address is judged before it is dialled:

1. Never-dial ranges (loopback, ULA, link-local, IPv4 forms, ...) are refused
   unless ``ranges.unsafe_allow`` lifts them. Longest prefix wins; on an equal
   prefix the user's unsafe_allow entry beats the built-in range.
2. Otherwise the address must lie in ``ranges.allow`` (plus fc00::/8 when
   ``ranges.cjdns`` is true). ``ranges.allow`` never lifts a never-dial range.

Trust: a v6.alt name dialled at the address it encodes is trusted without a
CA (``ip_bound_trust``); every other name needs a CA-signed certificate. A
secure range may turn TLS off (for v6.alt names and IPv6 literals, whose
address is known before dialling), accept any certificate
(``trust_any_certificate: true``) or demand a CA even for a v6.alt name
(``false``); a range that says neither lifts no certificate check.

Pinning (trust on first use) applies to v6.alt names trusted without a CA:
``off`` for Yggdrasil node addresses (200::/8) and cjdns (fc00::/8), where the
address is derived from the node's key, ``pinning.default`` (enforce)
elsewhere, Yggdrasil's routed subnets (300::/8) included: any host on the LAN
a subnet is advertised to can take any address in it. A secure range's
``pinning`` overrides both, whatever its prefix length
(:func:`range_pinning_defaults` lists the built-in part). The pin decisions
themselves are in :mod:`v6alt.pins`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from enum import Enum
from ipaddress import IPv6Address, IPv6Network
from typing import Final

from .codec import AddressLike, to_address
from .config import Config, PinningMode, PinningSettings, SecureRange, check_unsafe_allow
from .errors import V6AltNameError
from .ipranges import (
    CJDNS,
    GLOBAL_UNICAST,
    NEVER_DIAL_RANGES,
    YGGDRASIL,
    YGGDRASIL_NODES,
    YGGDRASIL_SUBNETS,
    PrefixTable,
    SpecialRange,
    never_dial_containing,
    range_name,
)
from .names import HostKind, ServerName, parse_matrix_server_name

__all__ = [
    "NEVER_DIAL",
    "DialDecision",
    "Policy",
    "RangePinning",
    "Trust",
    "range_pinning_defaults",
    "rule_ids",
]

_log = logging.getLogger(__name__)

NEVER_DIAL: Final[tuple[tuple[IPv6Network, str], ...]] = tuple(
    (special.network, special.name) for special in NEVER_DIAL_RANGES
)
"""The built-in never-dial ranges with the name used in rules; reasons and the
conditional NAT64/6to4 handling are in :data:`v6alt.ipranges.NEVER_DIAL_RANGES`."""


class Trust(str, Enum):
    """How the peer's TLS certificate is judged."""

    CA = "ca"  # a certificate for the name, signed by a trusted CA
    IP_BOUND = "ip_bound"  # the address is the identity: any certificate
    ANY = "any"  # a secure range says any certificate will do


@dataclass(frozen=True)
class DialDecision:
    address: IPv6Address
    allowed: bool
    rule: str  # why, for logs: "never-dial: loopback (::1/128)"
    tls_required: bool
    trust: Trust
    secure_range: SecureRange | None
    # The rule as a short identifier from a fixed set ("never_dial_loopback",
    # "allow_yggdrasil", "outside_allow"): no address, no configured CIDR, so
    # it can label a metric (see :func:`rule_ids`). Not part of equality: it
    # is derived from ``rule``.
    rule_id: str = field(default="", compare=False)
    # Trust on first use for this peer: "off" unless the name is a v6.alt
    # name trusted without a CA (trust ip_bound or any).
    pinning: PinningMode = "off"


@dataclass(frozen=True)
class RangePinning:
    """The built-in pinning mode of one named range (before secure ranges)."""

    network: IPv6Network
    name: str  # "yggdrasil subnet"
    mode: PinningMode
    why: str

    @property
    def rule(self) -> str:
        """The rule :meth:`Policy.pinning_for` gives for an address in this range."""
        return f"pinning {self.mode}: {self.name} ({self.network}) {self.why}"


def range_pinning_defaults(pinning: PinningSettings) -> tuple[RangePinning, ...]:
    """The pinning mode of each named range under ``pinning`` (``pinning.default``
    applies to every other address)."""
    key_derived = "addresses are keys"
    return (
        RangePinning(YGGDRASIL_NODES, _name(YGGDRASIL_NODES), "off", key_derived),
        RangePinning(
            YGGDRASIL_SUBNETS,
            _name(YGGDRASIL_SUBNETS),
            pinning.default,
            "addresses are not keys: pinning.default",
        ),
        RangePinning(CJDNS, _name(CJDNS), "off", key_derived),
    )


def _name(network: IPv6Network) -> str:
    name = range_name(network)
    assert name is not None  # only named ranges are listed
    return name


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _never_dial_id(special: SpecialRange) -> str:
    return f"never_dial_{_slug(special.name)}"


def _allow_id(network: IPv6Network) -> str:
    name = range_name(network)
    return f"allow_{_slug(name)}" if name else "allow_configured_range"


UNSAFE_ALLOW_ID: Final = "unsafe_allow"
OUTSIDE_ALLOW_ID: Final = "outside_allow"
CJDNS_OFF_ID: Final = "cjdns_off"


def rule_ids() -> frozenset[str]:
    """Every value :attr:`DialDecision.rule_id` can take: a fixed, small set."""
    ids = {_never_dial_id(s) for s in NEVER_DIAL_RANGES}
    named = (YGGDRASIL, YGGDRASIL_NODES, YGGDRASIL_SUBNETS, GLOBAL_UNICAST, CJDNS)
    ids |= {_allow_id(n) for n in named}
    ids |= {"allow_configured_range", UNSAFE_ALLOW_ID, OUTSIDE_ALLOW_ID, CJDNS_OFF_ID}
    return frozenset(ids)


@dataclass(frozen=True)
class _Guard:
    """An entry of the never-dial table: a built-in range or a user's lift."""

    special: SpecialRange
    rule: str
    lifted: bool
    rule_id: str


def _to_name(server_name: str | ServerName) -> ServerName:
    if isinstance(server_name, ServerName):
        return server_name
    return parse_matrix_server_name(server_name)


class Policy:
    """The dial and trust policy of one :class:`Config`; cheap to query."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config if config is not None else Config()
        ranges = self.config.ranges
        guards = [
            (
                s.network,
                _Guard(s, f"never-dial: {s.name} ({s.network})", False, _never_dial_id(s)),
            )
            for s in NEVER_DIAL_RANGES
        ]
        for i, network in enumerate(ranges.unsafe_allow):
            check_unsafe_allow(network, ("ranges", "unsafe_allow", i))
            special = never_dial_containing(network)
            assert special is not None  # checked just above
            lift = f"never-dial {special.name} ({special.network})"
            rule = f"allowed: ranges.unsafe_allow ({network}) lifts {lift}"
            _log.warning(
                "ranges.unsafe_allow: %s will be dialled although it lies in %s", network, lift
            )
            guards.append((network, _Guard(special, rule, True, UNSAFE_ALLOW_ID)))
        self._guards: PrefixTable[_Guard] = PrefixTable(guards)

        allow = list(ranges.allow)
        if ranges.cjdns and CJDNS not in allow:
            allow.append(CJDNS)
        self._allow: PrefixTable[tuple[str, str]] = PrefixTable(
            (n, (f"allowed: {range_name(n) or 'ranges.allow'} ({n})", _allow_id(n))) for n in allow
        )
        listed = ", ".join(str(n) for n in allow) or "empty"
        self._outside = (f"not allowed: outside ranges.allow ({listed})", OUTSIDE_ALLOW_ID)
        self._cjdns_off = (
            None
            if any(CJDNS.subnet_of(n) for n in allow)
            else (f"not allowed: cjdns ({CJDNS}) needs ranges.cjdns: true", CJDNS_OFF_ID)
        )
        self._secure: PrefixTable[SecureRange] = PrefixTable(
            (r.network, r) for r in self.config.secure_ranges
        )
        self._ip_bound_trust = self.config.ip_bound_trust
        default = self.config.pinning.default
        # Two tables, so that a secure range's pinning beats the built-in mode of a
        # named range even when the secure range is the wider one (200::/7 over 200::/8).
        self._secure_pinning: PrefixTable[tuple[PinningMode, str]] = PrefixTable(
            (r.network, (r.pinning, f"pinning {r.pinning}: secure range {r.network}"))
            for r in self.config.secure_ranges
            if r.pinning is not None
        )
        self._range_pinning: PrefixTable[tuple[PinningMode, str]] = PrefixTable(
            (r.network, (r.mode, r.rule)) for r in range_pinning_defaults(self.config.pinning)
        )
        self._pinning_default = (default, f"pinning {default}: pinning.default")

    def _judge(self, value: int) -> tuple[bool, str, str]:
        """(allowed, rule, rule_id) for an address."""
        guard = self._guards.lookup(value)
        if guard is not None:
            if guard.lifted:
                return True, guard.rule, guard.rule_id
            embedded = guard.special.embedded_ipv4
            if embedded is None:
                return False, guard.rule, guard.rule_id
            ipv4 = embedded(value)
            if not ipv4.is_global:
                special = guard.special
                return (
                    False,
                    f"never-dial: {special.name} of non-global IPv4 {ipv4} ({special.network})",
                    guard.rule_id,
                )
            # A global embedded IPv4: the range is an ordinary one, ask ranges.allow.
        allowed = self._allow.lookup(value)
        if allowed is not None:
            return True, allowed[0], allowed[1]
        if self._cjdns_off is not None and value >> 120 == 0xFC:
            return False, *self._cjdns_off
        return False, *self._outside

    def check_address(self, address: AddressLike) -> tuple[bool, str]:
        """May this address ever be dialled, and the rule that says so."""
        if type(address) is not IPv6Address:
            address = to_address(address)
        allowed, rule, _ = self._judge(int(address))
        return allowed, rule

    def check_value(self, value: int) -> tuple[bool, str]:
        """:meth:`check_address` of an address given as its 128-bit integer (the DNS path)."""
        allowed, rule, _ = self._judge(value)
        return allowed, rule

    def secure_range_for(self, address: AddressLike) -> SecureRange | None:
        """The most specific secure range containing the address, if any."""
        if type(address) is not IPv6Address:
            address = to_address(address)
        return self._secure.lookup(int(address))

    def decide(
        self, address: AddressLike, server_name: str | ServerName | None = None
    ) -> DialDecision:
        """Judge dialling ``address``, for ``server_name`` when one is known.

        Raises :class:`V6AltNameError` when the address or the server name is
        malformed.
        """
        if type(address) is not IPv6Address:
            address = to_address(address)
        name = _to_name(server_name) if server_name is not None else None
        value = int(address)
        allowed, rule, rule_id = self._judge(value)
        secure = self._secure.lookup(value)
        v6alt = name is not None and name.kind is HostKind.V6ALT
        tls_required = secure is None or secure.tls == "required"
        lifted = None if secure is None else secure.trust_any_certificate
        if lifted is True:
            trust = Trust.ANY
        elif (
            lifted is None
            and self._ip_bound_trust
            and name is not None
            and v6alt
            and name.address == address
        ):
            trust = Trust.IP_BOUND
        else:
            trust = Trust.CA
        pinning: PinningMode = "off"
        if v6alt and trust is not Trust.CA:
            pinning = self.pinning_for(address)[0]
        if not allowed:
            _log.debug("refusing to dial %s (%s): %s", address, name, rule)
        return DialDecision(address, allowed, rule, tls_required, trust, secure, rule_id, pinning)

    def pinning_for(self, address: AddressLike) -> tuple[PinningMode, str]:
        """The pinning mode of an address and the rule that sets it."""
        if type(address) is not IPv6Address:
            address = to_address(address)
        value = int(address)
        hit = self._secure_pinning.lookup(value) or self._range_pinning.lookup(value)
        return hit if hit is not None else self._pinning_default

    def decide_name(self, server_name: str | ServerName) -> DialDecision:
        """Judge a v6.alt name (decoded leniently) or an IPv6 literal.

        DNS names and IPv4 literals raise :class:`V6AltNameError`: there is no
        IPv6 address in them to judge.
        """
        name = _to_name(server_name)
        if isinstance(name.address, IPv6Address):
            return self.decide(name.address, name)
        if name.kind is HostKind.IPV4:
            raise V6AltNameError(
                f"{name.host!r} is an IPv4 literal, not a v6.alt name or IPv6 literal; "
                "the policy judges IPv6 addresses only"
            )
        raise V6AltNameError(f"{name.host!r} is not a v6.alt name or IP literal")
