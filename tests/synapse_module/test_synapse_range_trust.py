"""The handshake-time secure-range check for names Synapse resolves itself.

Synapse's own connection creator (its real class, a real OpenSSL context)
wrapped by the module's; only the TCP transport is a stand-in, to choose the
connected peer address. The end-to-end cases are in test_synapse_secure_ranges.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("synapse.crypto.context_factory", reason="matrix-synapse is not installed")
from OpenSSL import SSL
from synapse.crypto.context_factory import SSLClientConnectionCreator
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.ssl import CertificateOptions, platformTrust

from v6alt.config import parse_config
from v6alt.policy import Policy
from v6alt.synapse_module.tls import RangeTrustCreator

IN_RANGE = "202:6a1f:77::10"
PLAIN_RANGE = "202:6a1f:77::20"
CA_RANGE = "202:6a1f:77::30"
UNSET_RANGE = "202:6a1f:77::40"  # tls: off, trust_any_certificate not written
OUTSIDE = "202:6a1f:77::99"
POLICY = Policy(
    parse_config(
        {
            "secure_ranges": [
                {"cidr": f"{IN_RANGE}/128", "trust_any_certificate": True},
                {"cidr": f"{PLAIN_RANGE}/128", "tls": "off", "trust_any_certificate": True},
                {"cidr": f"{CA_RANGE}/128", "trust_any_certificate": False},
                {"cidr": f"{UNSET_RANGE}/128", "tls": "off"},
            ]
        }
    )
)


class Transport:
    def __init__(self, peer: Any) -> None:
        self._peer = peer

    def getPeer(self) -> Any:
        if isinstance(self._peer, Exception):
            raise self._peer
        return self._peer


class TlsProtocol:
    """Stands in for Twisted's TLSMemoryBIOProtocol: app data and a transport."""

    def __init__(self, peer: Any = None) -> None:
        self.transport = None if peer is None else Transport(peer)
        self.failures: list[Any] = []

    def failVerification(self, reason: Any) -> None:
        self.failures.append(reason)


class StockVerifier:
    """Records what reaches Synapse's host name verifier."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def verify_context_info_cb(self, connection: SSL.Connection, where: int) -> None:
        self.calls.append(where)


def _connect(peer: Any, verify: bool = True) -> tuple[SSL.Connection, TlsProtocol, Any]:
    options = CertificateOptions(trustRoot=platformTrust()) if verify else CertificateOptions()
    stock = SSLClientConnectionCreator(b"hs.example.test", options.getContext(), verify)
    protocol = TlsProtocol(peer)
    connection = RangeTrustCreator("hs.example.test", POLICY, stock).clientConnectionForTLS(
        protocol
    )
    return connection, protocol, protocol._synapse_tls_verifier  # type: ignore[attr-defined]


def _v6(address: str) -> IPv6Address:
    return IPv6Address("TCP", address, 8448)


def _verify(connection: SSL.Connection, verifier: Any, ok: int) -> bool:
    """The certificate callback the module set on the connection, called as OpenSSL
    would for a self-signed leaf (error 18) whose chain check gave ``ok``."""
    return bool(verifier._check.verify(connection, None, 18, 0, ok))


@pytest.mark.parametrize("ok", [0, 1])
def test_peer_in_trust_any_range_is_accepted_and_skips_the_name_check(ok: int) -> None:
    connection, _, verifier = _connect(_v6(IN_RANGE))
    assert _verify(connection, verifier, ok) is True
    stock = StockVerifier()
    verifier._stock = stock
    verifier.verify_context_info_cb(connection, SSL.SSL_CB_HANDSHAKE_DONE)
    assert stock.calls == []


@pytest.mark.parametrize(
    "peer",
    [
        _v6(OUTSIDE),
        _v6(CA_RANGE),
        _v6(UNSET_RANGE),  # tls: off alone never relaxes a connection that keeps TLS
        IPv4Address("TCP", "192.0.2.1", 8448),
        None,  # no transport
        RuntimeError("broken transport"),
    ],
    ids=["outside", "trust_any_false", "tls_off_alone", "ipv4", "no-transport", "error"],
)
@pytest.mark.parametrize("ok", [0, 1])
def test_any_other_peer_gets_synapse_verification(peer: Any, ok: int) -> None:
    connection, _, verifier = _connect(peer)
    assert _verify(connection, verifier, ok) is bool(ok)
    stock = StockVerifier()
    verifier._stock = stock
    verifier.verify_context_info_cb(connection, SSL.SSL_CB_HANDSHAKE_DONE)
    assert stock.calls == [SSL.SSL_CB_HANDSHAKE_DONE]


def test_a_later_peer_outside_revokes_an_earlier_approval() -> None:
    connection, protocol, verifier = _connect(_v6(IN_RANGE))
    assert _verify(connection, verifier, 0) is True
    protocol.transport = Transport(_v6(OUTSIDE))  # type: ignore[assignment]
    assert _verify(connection, verifier, 0) is False
    stock = StockVerifier()
    verifier._stock = stock
    verifier.verify_context_info_cb(connection, SSL.SSL_CB_HANDSHAKE_DONE)
    assert stock.calls == [SSL.SSL_CB_HANDSHAKE_DONE]


def test_synapse_without_verification_is_left_alone() -> None:
    connection, _, verifier = _connect(_v6(IN_RANGE), verify=False)
    assert connection.get_context().get_verify_mode() == SSL.VERIFY_NONE
    assert type(verifier).__name__ == "ConnectionVerifier"  # Synapse's own


def test_peer_in_a_tls_off_range_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    connection, _, verifier = _connect(_v6(PLAIN_RANGE))
    verifier._stock = StockVerifier()
    with caplog.at_level("WARNING", logger="v6alt.synapse_module"):
        verifier.verify_context_info_cb(connection, SSL.SSL_CB_HANDSHAKE_START)
        verifier.verify_context_info_cb(connection, SSL.SSL_CB_HANDSHAKE_START)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert f"peer {PLAIN_RANGE} is in secure range {PLAIN_RANGE}/128 (tls: off)" in warnings[0]
