"""Outbound verdicts: may Synapse dial this v6.alt server name, and how.

One place combines the three things that decide about a destination: the
name must be canonical (one identity per address), the core policy must
allow the decoded address (never-dial list, allowed ranges), and Synapse's
own federation IP blocklist must not contain it (its allowlist honoured).
Every refusal is logged with the server name and the rule, once per attempt:
Synapse asks again for each of its retries of one request (an invite is
tried five times in a few seconds), so a destination refused for one rule
gets one warning a minute and its repeats go to debug (:class:`DialRefusalLog`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network
from typing import Final

from v6alt.errors import V6AltNameError
from v6alt.ipranges import PrefixTable
from v6alt.names import ServerName, parse_host
from v6alt.policy import DialDecision, Policy

from .metrics import ModuleMetrics

logger = logging.getLogger("v6alt.synapse_module")


@dataclass(frozen=True)
class Verdict:
    """The outcome for one destination host.

    ``decision`` is None when the name was refused before the policy was
    asked (malformed or non-canonical). ``refusal`` is None when the
    destination may be dialled.
    """

    host: str
    server: ServerName | None
    decision: DialDecision | None
    refusal: str | None

    @property
    def allowed(self) -> bool:
        return self.refusal is None

    @property
    def address(self) -> IPv6Address | None:
        return None if self.server is None else self.server.ipv6


class SynapseBlocklist:
    """Synapse's federation IP blocklist and allowlist, for IPv6 addresses.

    Synapse keeps them as netaddr IPSets, whose membership test walks every
    prefix length; they are copied once into prefix tables (IPv6 CIDRs only:
    a v6.alt name always decodes to an IPv6 address).
    """

    def __init__(self, blocklist: object | None, allowlist: object | None) -> None:
        self._blocked: PrefixTable[str] = PrefixTable(_ipv6_cidrs(blocklist))
        self._allowed: PrefixTable[str] = PrefixTable(_ipv6_cidrs(allowlist))

    def blocking_rule(self, address: IPv6Address) -> str | None:
        """The blocklist CIDR that refuses ``address``, or None if it may be dialled."""
        value = int(address)
        cidr = self._blocked.lookup(value)
        if cidr is None or self._allowed.lookup(value) is not None:
            return None
        return f"synapse federation IP blocklist ({cidr})"


def _ipv6_cidrs(ip_set: object | None) -> list[tuple[IPv6Network, str]]:
    if ip_set is None:
        return []
    cidrs = []
    for cidr in ip_set.iter_cidrs():  # type: ignore[attr-defined]
        if cidr.version == 6:
            network = IPv6Network(str(cidr))
            cidrs.append((network, str(network)))
    return cidrs


#: The metrics' stage label for each place that asks the judge.
STAGE_OF: Final = {"federation client": "tls_options", "resolver": "resolver"}


class DialRefusalLog:
    """Logs refusals to dial a destination: one warning per destination and rule per :attr:`WINDOW`
    seconds, the repeats inside it at debug, counted in the next warning.

    Bounded: at most :attr:`MAX_KEYS` destinations are remembered; beyond
    that, entries older than the window are dropped (or all of them), so a
    flood of distinct names costs memory for 1,024 and is logged name by name.
    """

    WINDOW = 60.0
    MAX_KEYS = 1024

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # (host, rule) -> [time of the last warning, repeats since]
        self._seen: dict[tuple[str, str], list[float]] = {}

    def refused(self, host: str, address: str, where: str, rule: str) -> None:
        now = self._clock()
        key = (host, rule)
        entry = self._seen.get(key)
        if entry is not None and now - entry[0] < self.WINDOW:
            entry[1] += 1
            logger.debug(
                "v6alt: refused to dial %s%s [%s]: %s (again: one warning a minute "
                "per destination and rule)",
                host,
                address,
                where,
                rule,
            )
            return
        repeats = int(entry[1]) if entry is not None else 0
        if entry is None and len(self._seen) >= self.MAX_KEYS:
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.WINDOW}
            if len(self._seen) >= self.MAX_KEYS:
                self._seen.clear()
        self._seen[key] = [now, 0]
        suffix = f" ({repeats} more since the last warning)" if repeats else ""
        logger.warning("v6alt: refused to dial %s%s [%s]: %s%s", host, address, where, rule, suffix)


class OutboundJudge:
    """Judges v6.alt destinations; the adapters only act on its verdicts."""

    def __init__(
        self,
        policy: Policy,
        blocklist: SynapseBlocklist,
        metrics: ModuleMetrics | None = None,
    ) -> None:
        self.policy = policy
        self._blocklist = blocklist
        self._metrics = metrics
        self._refusals = DialRefusalLog()

    def quiet_decision(self, host: str) -> DialDecision | None:
        """The decision for a canonical, allowed v6.alt host, else None; never logs.

        For background work (probes) that must not repeat refusals every round.
        """
        try:
            server = parse_host(host)
        except V6AltNameError:
            return None
        if not server.canonical:
            return None
        decision = self.policy.decide_name(server)
        if not decision.allowed or self._blocklist.blocking_rule(decision.address) is not None:
            return None
        return decision

    def judge(self, host: str, *, where: str) -> Verdict:
        """Judge a bare v6.alt host (no port). ``where`` names the seam for the log
        (and the metrics' stage: :data:`STAGE_OF`)."""
        try:
            server = parse_host(host)
        except V6AltNameError as e:
            return self._refuse(
                host, None, None, f"malformed v6.alt name: {e}", where, "malformed_name"
            )
        if not server.canonical:
            return self._refuse(
                host,
                server,
                None,
                "non-canonical v6.alt name (one identity per address: "
                f"the canonical name is {_canonical(server)})",
                where,
                "non_canonical_name",
            )
        decision = self.policy.decide_name(server)
        if not decision.allowed:
            return self._refuse(host, server, decision, decision.rule, where, decision.rule_id)
        blocked = self._blocklist.blocking_rule(decision.address)
        if blocked is not None:
            return self._refuse(host, server, decision, blocked, where, "synapse_blocklist")
        if self._metrics is not None:
            self._metrics.resolution(STAGE_OF.get(where, where), True, decision.rule_id)
        return Verdict(host, server, decision, None)

    def _refuse(
        self,
        host: str,
        server: ServerName | None,
        decision: DialDecision | None,
        rule: str,
        where: str,
        rule_id: str,
    ) -> Verdict:
        address = "" if server is None or server.ipv6 is None else f" (address {server.ipv6})"
        self._refusals.refused(host, address, where, rule)
        if self._metrics is not None:
            self._metrics.resolution(STAGE_OF.get(where, where), False, rule_id)
        return Verdict(host, server, decision, rule)


def _canonical(server: ServerName) -> str:
    from v6alt.codec import encode

    assert server.ipv6 is not None
    parts = [*(s.lower() for s in server.subdomains), encode(server.ipv6)]
    return ".".join(parts)


def host_text(host: bytes | str) -> str:
    """A host as Twisted/Synapse hand it over, as text without IPv6 brackets."""
    text = host.decode("ascii", "replace") if isinstance(host, bytes) else host
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return text


__all__ = ["DialRefusalLog", "OutboundJudge", "SynapseBlocklist", "Verdict", "host_text"]
