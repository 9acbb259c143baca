"""The core's dial policy as the checker reports it, plus Synapse's own blocklist.

The v6alt policy (:mod:`v6alt.policy`) decides; this module only adds what a
Synapse peer does on top: its default ``ip_range_blacklist`` refuses some
ranges the v6alt config may allow (``fc00::/7`` holds cjdns, which
``ranges.cjdns: true`` allows), so such a name works only where the peer's
``ip_range_whitelist`` lists the range.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Final

from v6alt.ipranges import CJDNS
from v6alt.names import ServerName
from v6alt.policy import Policy, Trust

from . import hints
from .report import Report, Status
from .resolve import Target

__all__ = ["SYNAPSE_DEFAULT_BLOCKLIST", "AddressVerdict", "judge_address", "synapse_blocklisted"]

# Synapse's DEFAULT_IP_RANGE_BLOCKLIST (synapse/config/server.py, 1.100-1.163).
SYNAPSE_DEFAULT_BLOCKLIST: Final[tuple[IPv4Network | IPv6Network, ...]] = tuple(
    IPv6Network(n) if ":" in n else IPv4Network(n)
    for n in (
        "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
        "192.0.0.0/24", "169.254.0.0/16", "192.88.99.0/24", "198.18.0.0/15", "192.0.2.0/24",
        "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4",
        "::1/128", "fe80::/10", "fc00::/7", "2001:db8::/32", "ff00::/8", "fec0::/10",
    )
)  # fmt: skip


def synapse_blocklisted(address: IPv4Address | IPv6Address) -> IPv4Network | IPv6Network | None:
    """The range of Synapse's default blocklist holding ``address``, if any."""
    for network in SYNAPSE_DEFAULT_BLOCKLIST:
        if network.version == address.version and address in network:
            return network
    return None


@dataclass(frozen=True)
class AddressVerdict:
    """May the checker dial this address, and how would a peer trust it."""

    allowed: bool
    rule: str
    tls_required: bool
    trust: str  # Trust value, or "ca" for IPv4
    secure_range: str | None
    synapse_blocklist: str | None
    # The policy's rule identifier (v6alt.policy.rule_ids), "" for IPv4.
    rule_id: str = ""
    # What Synapse peers must list in ip_range_whitelist: the narrower of the
    # blocklist range and the v6alt range that allows the address.
    synapse_allowlist_entry: str | None = None

    def as_json(self) -> dict[str, object]:
        return dict(self.__dict__)


def judge_address(
    policy: Policy, address: IPv4Address | IPv6Address, name: ServerName | None
) -> AddressVerdict:
    """The verdict for dialling ``address`` for ``name`` (a v6.alt name or None).

    IPv4 (only ever reached through DNS) is dialled only when globally
    routable: the core judges IPv6 alone, and a private IPv4 target from a
    DNS answer is the SSRF case Synapse's blocklist is there for.
    """
    blocked = synapse_blocklisted(address)
    if isinstance(address, IPv4Address):
        allowed = address.is_global
        rule = "allowed: global IPv4" if allowed else f"never-dial: non-global IPv4 {address}"
        return AddressVerdict(allowed, rule, True, Trust.CA.value, None, _text(blocked))
    decision = policy.decide(address, name if name is not None and name.is_v6alt else None)
    secure = decision.secure_range
    return AddressVerdict(
        decision.allowed,
        decision.rule,
        decision.tls_required,
        decision.trust.value,
        str(secure.network) if secure is not None else None,
        _text(blocked),
        decision.rule_id,
        _allowlist_entry(policy, address, blocked),
    )


def _allowlist_entry(
    policy: Policy, address: IPv6Address, blocked: IPv4Network | IPv6Network | None
) -> str | None:
    """The narrowest range to put on Synapse's allowlist for ``address``: the v6alt
    range that allows it when that lies inside the blocklist range (fc00::/8 inside
    fc00::/7, which also holds ULA), else the blocklist range."""
    if not isinstance(blocked, IPv6Network):
        return _text(blocked)
    ranges = policy.config.ranges
    allowing = [*ranges.allow, *ranges.unsafe_allow, *([CJDNS] if ranges.cjdns else [])]
    inside = [n for n in allowing if address in n and n.subnet_of(blocked)]
    return str(max(inside, key=lambda n: n.prefixlen)) if inside else str(blocked)


def _text(network: IPv4Network | IPv6Network | None) -> str | None:
    return None if network is None else str(network)


def report_refused(report: Report, target: Target, verdict: AddressVerdict, name: str) -> bool:
    """Report ``target`` as not dialled when the policy refuses its address; True if so."""
    if verdict.allowed:
        return False
    report.add_new(
        "policy",
        Status.FAIL,
        f"{target.address}: {verdict.rule}; not dialled",
        hints.never_dial(name, target.address, verdict.rule, verdict.rule_id or None),
        target=target.label,
    )
    return True
