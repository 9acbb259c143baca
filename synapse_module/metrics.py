"""Prometheus metrics of the Synapse module (docs/metrics.md).

Registered in prometheus_client's default registry, as Synapse registers its
own: Synapse serves that registry on its ``metrics`` listener in every process
(main and each worker), so the module's metrics appear there wherever the
module is loaded, with no Synapse internal involved. prometheus_client is a
dependency of Synapse itself.

The families are created once per process (the default registry refuses a
second family of the same name, and Synapse may load the module for several
homeservers in one process, as its tests do); each module instance uses the
children of its own ``server_name`` label, as Synapse 1.163's own metrics do.

Every other label takes values from a fixed set (verdicts, rule identifiers,
trust kinds, results): never a peer's name or address, so a hostile peer
cannot create series.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from typing import Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from v6alt.policy import DialDecision, Trust

__all__ = [
    "INBOUND_RESULTS",
    "NAME_RULES",
    "PIN_CHECKS",
    "PIN_RESULTS",
    "PIN_STATUSES",
    "PREFIX",
    "PROBE_RESULTS",
    "STAGES",
    "TRUST_KINDS",
    "ModuleMetrics",
    "trust_kind",
]

PREFIX: Final = "v6alt_synapse_"
SERVER_NAME_LABEL: Final = "server_name"

#: Where a v6.alt destination is judged: Synapse asking for TLS options (once
#: per new connection, before anything is sent) and its name resolver.
STAGES: Final = ("tls_options", "resolver")
#: Rule identifiers for refusals made before the policy is asked, and for
#: Synapse's own blocklist; the policy's own are :func:`v6alt.policy.rule_ids`.
NAME_RULES: Final = ("malformed_name", "non_canonical_name", "synapse_blocklist")
#: How an outbound v6.alt connection's peer was trusted (``pinned``: by its address
#: and the TLS key pinned for it).
TRUST_KINDS: Final = ("address_bound", "pinned", "any_certificate", "ca", "no_tls", "refused")
#: Pin checks: of the TLS key at the handshake, of the signing keys at key fetch;
#: their status (:class:`v6alt.pins.PinStatus`, ``error``: the pin file failed).
PIN_CHECKS: Final = ("tls", "keys")
PIN_STATUSES: Final = ("new", "match", "rotated", "mismatch", "error")
PIN_RESULTS: Final = ("accepted", "refused")
INBOUND_RESULTS: Final = (
    "match",
    "mismatch_logged",
    "mismatch_refused",
    "not_checked",
    "malformed_refused",
    "non_canonical_refused",
)
PROBE_RESULTS: Final = ("connected", "failed")

#: From a peer found reachable to its backoff cleared: a probe round lasts at
#: most a few seconds, so the buckets span 0.1 s to 10 min.
CLEAR_BUCKETS: Final = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)


def trust_kind(decision: DialDecision) -> str:
    """The trust kind label of an approved decision."""
    if not decision.tls_required:
        return "no_tls"
    if decision.trust is Trust.IP_BOUND:
        return "address_bound"
    if decision.trust is Trust.ANY:
        return "any_certificate"
    return "ca"


class _Families:
    """The metric families, one set per registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = (SERVER_NAME_LABEL,)
        self.resolutions = Counter(
            PREFIX + "resolutions",
            "v6.alt destinations judged, by stage (tls_options, resolver), verdict "
            "(allowed, refused) and rule identifier",
            (*labels, "stage", "verdict", "rule"),
            registry=registry,
        )
        self.tls_trust = Counter(
            PREFIX + "tls_trust_decisions",
            "Outbound v6.alt connections by how the peer was trusted: address_bound, "
            "any_certificate (secure range), ca (Synapse's check), no_tls (secure range "
            "with tls off), refused (the connected peer was not approved)",
            (*labels, "kind"),
            registry=registry,
        )
        self.inbound = Counter(
            PREFIX + "inbound_origins",
            "Inbound requests with a v6.alt X-Matrix origin, by result of the origin checks",
            (*labels, "result"),
            registry=registry,
        )
        self.probes = Counter(
            PREFIX + "recovery_probes",
            "TCP probes of unreachable v6.alt destinations (backed off, or a transaction "
            "in flight), by result",
            (*labels, "result"),
            registry=registry,
        )
        self.peers_back = Counter(
            PREFIX + "recovery_peers_back",
            "Unreachable v6.alt destinations found reachable again: backoff cleared, or "
            "a transaction in flight woken",
            labels,
            registry=registry,
        )
        self.clear_seconds = Histogram(
            PREFIX + "recovery_clear_seconds",
            "Seconds from a backed-off destination being reachable (at most: since its "
            "last failed probe, or the start of the probe that reached it) to its "
            "backoff cleared",
            labels,
            buckets=CLEAR_BUCKETS,
            registry=registry,
        )
        self.pin_checks = Counter(
            PREFIX + "pin_checks",
            "Pin checks of v6.alt peers (trust on first use), by what was checked (tls, "
            "keys), status (new, match, rotated, mismatch, error) and result",
            (*labels, "check", "status", "result"),
            registry=registry,
        )
        self.backed_off = Gauge(
            PREFIX + "recovery_backed_off_destinations",
            "v6.alt destinations Synapse was backing off from when the recovery last "
            "read them (every second)",
            labels,
            registry=registry,
        )


_lock = threading.Lock()
# By the registry itself, weakly: an id() could be reused by a later registry.
_families: weakref.WeakKeyDictionary[CollectorRegistry, _Families] = weakref.WeakKeyDictionary()


def _families_for(registry: CollectorRegistry) -> _Families:
    with _lock:
        families = _families.get(registry)
        if families is None:
            families = _Families(registry)
            _families[registry] = families
        return families


class ModuleMetrics:
    """The metrics of one module instance (one homeserver)."""

    def __init__(
        self,
        server_name: str,
        registry: CollectorRegistry = REGISTRY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._families = f = _families_for(registry)
        self._server = server_name
        self._clock = clock
        # Children made now export a zero, so rates and alerts work from the start.
        self._trust = {k: f.tls_trust.labels(server_name, k) for k in TRUST_KINDS}
        self._inbound = {r: f.inbound.labels(server_name, r) for r in INBOUND_RESULTS}
        self._probes = {r: f.probes.labels(server_name, r) for r in PROBE_RESULTS}
        self._peers_back = f.peers_back.labels(server_name)
        self._clear = f.clear_seconds.labels(server_name)
        self._backed_off = f.backed_off.labels(server_name)
        self._backed_off.set(0)
        self._pins = {
            (c, s, r): f.pin_checks.labels(server_name, c, s, r)
            for c in PIN_CHECKS
            for s in PIN_STATUSES
            for r in PIN_RESULTS
        }

    def resolution(self, stage: str, allowed: bool, rule: str) -> None:
        self._families.resolutions.labels(
            self._server, stage, "allowed" if allowed else "refused", rule
        ).inc()

    def trust(self, kind: str) -> None:
        self._trust[kind].inc()

    def inbound(self, result: str) -> None:
        self._inbound[result].inc()

    def pin_check(self, check: str, status: str, accepted: bool) -> None:
        self._pins[(check, status, "accepted" if accepted else "refused")].inc()

    def probe(self, connected: bool) -> None:
        self._probes["connected" if connected else "failed"].inc()

    def backed_off(self, count: int) -> None:
        self._backed_off.set(count)

    def peer_back(self, reachable_since: float) -> None:
        """A destination's backoff was cleared; it was reachable since ``reachable_since``."""
        self._peers_back.inc()
        self._clear.observe(max(0.0, self._clock() - reachable_since))

    def now(self) -> float:
        return self._clock()
