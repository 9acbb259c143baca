"""The Synapse module's metrics, counted by the real judge, gate and peer check.

A private prometheus_client registry stands for Synapse's default one; what
the module exports on a real Synapse's listener is in test_synapse_metrics.py.
"""

from __future__ import annotations

import gc
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("synapse.app.homeserver", reason="matrix-synapse is not installed")
from OpenSSL import crypto
from prometheus_client import CollectorRegistry, generate_latest

from tests.metrics_support import parse
from v6alt.codec import encode
from v6alt.names import parse_host
from v6alt.policy import Policy, Trust, rule_ids
from v6alt.synapse_module.inbound import InboundGate
from v6alt.synapse_module.metrics import (
    INBOUND_RESULTS,
    NAME_RULES,
    TRUST_KINDS,
    ModuleMetrics,
)
from v6alt.synapse_module.outbound import OutboundJudge, SynapseBlocklist
from v6alt.synapse_module.peer_check import Fallback, PeerCheck
from v6alt.synapse_module.pinning import PinGuard

YGG = IPv6Address("200:cab8:deb4:ce60:4362:4492:e539:4b5")
SERVER = "a-e.v6.alt:18448"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def metrics(clock: Clock | None = None) -> tuple[ModuleMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    return ModuleMetrics(SERVER, registry, clock or Clock()), registry


def scrape(registry: CollectorRegistry) -> Any:
    return parse(generate_latest(registry).decode())


def test_judge_counts_each_verdict_with_its_rule() -> None:
    m, registry = metrics()
    judge = OutboundJudge(Policy(), SynapseBlocklist(None, None), m)
    judge.judge(encode(YGG), where="federation client")
    judge.judge(encode(YGG), where="resolver")
    judge.judge("a-e.v6.alt", where="federation client")  # ::1
    judge.judge("AIAMVOG6WTHGAQ3CISJOKOIEWU.v6.alt", where="federation client")
    judge.judge("x!.v6.alt", where="resolver")
    got = scrape(registry)
    name = "v6alt_synapse_resolutions_total"
    assert got.value(name, stage="tls_options", verdict="allowed", rule="allow_yggdrasil") == 1
    assert got.value(name, stage="resolver", verdict="allowed", rule="allow_yggdrasil") == 1
    assert got.value(name, verdict="refused", rule="never_dial_loopback") == 1
    assert got.value(name, verdict="refused", rule="non_canonical_name") == 1
    assert got.value(name, stage="resolver", verdict="refused", rule="malformed_name") == 1
    assert got.value(name) == 5
    assert got.label_values(name, "server_name") == {SERVER}


def test_synapse_blocklist_refusals_have_their_own_rule() -> None:
    from netaddr import IPSet

    m, registry = metrics()
    judge = OutboundJudge(Policy(), SynapseBlocklist(IPSet(["200::/8"]), None), m)
    assert not judge.judge(encode(YGG), where="resolver").allowed
    got = scrape(registry)
    assert got.value("v6alt_synapse_resolutions_total", rule="synapse_blocklist") == 1


def test_labels_never_carry_a_peer_name_or_address() -> None:
    m, registry = metrics()
    judge = OutboundJudge(Policy(), SynapseBlocklist(None, None), m)
    for value in range(1, 300):  # many peers, in many ranges
        for address in (IPv6Address(value << 100), IPv6Address((0x200 << 112) + value)):
            judge.judge(encode(address), where="resolver")
    got = scrape(registry)
    rules = got.label_values("v6alt_synapse_resolutions_total", "rule")
    assert rules <= rule_ids() | set(NAME_RULES)
    assert len(got.series("v6alt_synapse_resolutions_total")) <= 2 * len(rules)


class Transport:
    def __init__(self, host: str) -> None:
        self.host = host
        self.port = 8448

    def getPeer(self) -> Any:
        return self


class TlsProtocol:
    def __init__(self, peer: IPv6Address) -> None:
        self.transport = Transport(str(peer))


def test_peer_check_reports_once_per_connection() -> None:
    m, registry = metrics()
    server = parse_host(encode(YGG))
    good = PeerCheck(
        str(server),
        Policy(),
        TlsProtocol(YGG),
        server=server,
        trusts=("ip_bound", "any"),  # type: ignore[arg-type]
        fallback=Fallback.DENY,
        observe=m.trust,
    )
    for depth in (2, 1, 0):  # the verify callback runs once per certificate
        assert good.verify(None, None, 0, depth, 0)  # type: ignore[arg-type]
    good.handshake_done()
    wrong = PeerCheck(
        str(server),
        Policy(),
        TlsProtocol(IPv6Address("200::99")),
        server=server,
        trusts=("ip_bound", "any"),  # type: ignore[arg-type]
        fallback=Fallback.DENY,
        observe=m.trust,
    )
    assert not wrong.verify(None, None, 0, 0, 0)  # type: ignore[arg-type]
    got = scrape(registry)
    name = "v6alt_synapse_tls_trust_decisions_total"
    assert got.value(name, kind="address_bound") == 1
    assert got.value(name, kind="refused") == 1
    assert got.label_values(name, "kind") == set(TRUST_KINDS)  # every kind starts at zero


class Request:
    def __init__(self, source: str) -> None:
        self._source = source

    def getClientAddress(self) -> Any:
        return Transport(self._source)


@pytest.mark.parametrize(
    ("binding", "source", "result"),
    [
        ("log", str(YGG), "match"),
        ("log", "200::99", "mismatch_logged"),
        ("enforce", "200::99", "mismatch_refused"),
        ("off", "200::99", "not_checked"),
    ],
)
def test_inbound_binding_results(binding: Any, source: str, result: str) -> None:
    m, registry = metrics()
    gate = InboundGate(binding, m)
    origin = encode(YGG)
    gate.check(origin, Request(source), authenticated=False)  # claimed: not counted
    try:
        gate.check(origin, Request(source), authenticated=True)
    except Exception:
        assert result == "mismatch_refused"
    got = scrape(registry)
    name = "v6alt_synapse_inbound_origins_total"
    assert got.value(name, result=result) == 1
    assert got.value(name) == 1
    assert got.label_values(name, "result") == set(INBOUND_RESULTS)


def test_inbound_name_refusals() -> None:
    m, registry = metrics()
    gate = InboundGate("log", m)
    for origin in ("x!.v6.alt", "AIAMVOG6WTHGAQ3CISJOKOIEWU.v6.alt"):
        with pytest.raises(Exception, match=r"v6\.alt origin"):
            gate.check(origin, Request(str(YGG)), authenticated=False)
    got = scrape(registry)
    name = "v6alt_synapse_inbound_origins_total"
    assert got.value(name, result="malformed_refused") == 1
    assert got.value(name, result="non_canonical_refused") == 1


def test_two_homeservers_in_one_process_share_the_families() -> None:
    registry = CollectorRegistry()
    one = ModuleMetrics("one.example", registry)
    two = ModuleMetrics("two.example", registry)  # a second family would raise here
    one.probe(True)
    two.probe(False)
    two.probe(False)
    got = scrape(registry)
    name = "v6alt_synapse_recovery_probes_total"
    assert got.value(name, server_name="one.example", result="connected") == 1
    assert got.value(name, server_name="two.example", result="failed") == 2


def test_an_approval_is_reported_when_the_handshake_ends() -> None:
    m, registry = metrics()
    server = parse_host(encode(YGG))
    check = PeerCheck(
        str(server),
        Policy(),
        TlsProtocol(YGG),
        server=server,
        trusts=("ip_bound", "any"),  # type: ignore[arg-type]
        fallback=Fallback.DENY,
        observe=m.trust,
    )
    assert check.verify(None, None, 0, 0, 0)  # type: ignore[arg-type]
    name = "v6alt_synapse_tls_trust_decisions_total"
    assert scrape(registry).value(name) == 0  # a later check may still refuse it
    check.approved = False  # e.g. the pin check refused the key
    check.handshake_done()
    assert scrape(registry).value(name, kind="refused") == 1
    assert scrape(registry).value(name) == 1


def _certificate() -> crypto.X509:
    """A self-signed certificate with a fresh key."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pin.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    return crypto.X509.from_cryptography(cert)


def test_pin_checks_and_the_pinned_trust_kind(tmp_path: Path) -> None:
    """A v6.alt peer in 2000::/3 (pinning: enforce by default): its key pinned on
    first contact, matched after, another key refused."""
    m, registry = metrics()
    policy = Policy()
    guard = PinGuard(policy, str(tmp_path / "pins.json"), m)
    peer = IPv6Address("2a00:1098:3a0::1")
    server = parse_host(encode(peer))
    first, other = _certificate(), _certificate()
    kinds = []
    for cert in (first, first, other):
        protocol = TlsProtocol(peer)
        check = PeerCheck(
            str(server),
            policy,
            protocol,
            server=server,
            trusts=(Trust.IP_BOUND, Trust.ANY),
            fallback=Fallback.DENY,
            observe=m.trust,
        )
        verify = guard.verifier(check, protocol, server)
        kinds.append(verify(None, cert, 0, 0, 1))  # type: ignore[arg-type]
        check.handshake_done()
    assert kinds == [True, True, False]
    got = scrape(registry)
    pins = "v6alt_synapse_pin_checks_total"
    assert got.value(pins, check="tls", status="new", result="accepted") == 1
    assert got.value(pins, check="tls", status="match", result="accepted") == 1
    assert got.value(pins, check="tls", status="mismatch", result="refused") == 1
    assert got.value(pins) == 3
    trust = "v6alt_synapse_tls_trust_decisions_total"
    assert got.value(trust, kind="pinned") == 2
    assert got.value(trust, kind="refused") == 1
    assert got.value(trust, kind="address_bound") == 0


def test_every_registry_gets_its_own_families() -> None:
    """A registry made after another was collected (same id(), perhaps) is served too."""
    for _ in range(20):
        m, registry = metrics()
        m.probe(True)
        assert scrape(registry).value("v6alt_synapse_recovery_probes_total") == 1
        del m, registry
        gc.collect()


def test_clear_time_is_measured_on_the_metrics_clock() -> None:
    clock = Clock()
    m, registry = metrics(clock)
    since = clock.now
    clock.now += 7.5
    m.peer_back(since)
    got = scrape(registry)
    assert got.value("v6alt_synapse_recovery_peers_back_total") == 1
    assert got.value("v6alt_synapse_recovery_clear_seconds_sum") == 7.5
    assert got.value("v6alt_synapse_recovery_clear_seconds_bucket", le="5.0") == 0
    assert got.value("v6alt_synapse_recovery_clear_seconds_bucket", le="10.0") == 1
