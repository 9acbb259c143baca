"""Secure ranges for server names whose address is known only after connecting.

A DNS name (or an IPv6 literal outside every secure range) is resolved by
Synapse after it has asked for the TLS options, and DNS answers are not
authenticated: the name says nothing trustworthy about where the connection
goes. So the secure-range decision is taken during the handshake, from the
address the TCP connection is really connected to, exactly like IP-bound
trust:

- the connected peer is inside a secure range with
  ``trust_any_certificate: true`` (and the core policy allows it): the
  certificate is accepted unchecked, and Synapse's host name check is
  skipped for this connection only;
- anything else (a peer outside every such range, an IPv4 peer, a proxy,
  no transport, an error): Synapse's own verification runs unchanged.

Fail closed here means falling back to stock verification: nothing but a
positive range decision for the connected address lifts a check.

``tls: off`` cannot apply to these names: Synapse chooses between TLS and
plain HTTP before it resolves the name, so the connection is TLS whatever
the address turns out to be. The module logs it when such a connection
reaches a ``tls: off`` range (see docs/synapse.md).
"""

from __future__ import annotations

import logging
from ipaddress import IPv6Address, ip_address
from typing import Any

from OpenSSL import SSL, crypto
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from zope.interface import implementer

from v6alt.policy import DialDecision, Policy, Trust

logger = logging.getLogger("v6alt.synapse_module")

# Synapse's SSLClientConnectionCreator hangs its host name verifier on the TLS
# protocol under this name; its context's info callback calls it (1.100-1.163).
_SYNAPSE_VERIFIER = "_synapse_tls_verifier"


def connected_ipv6_peer(tls_protocol: Any) -> IPv6Address | None:
    """The IPv6 address the TLS protocol's TCP transport is connected to, if any."""
    transport = getattr(tls_protocol, "transport", None)
    if transport is None:
        return None
    host = str(transport.getPeer().host).split("%", 1)[0]
    address = ip_address(host)
    return address if isinstance(address, IPv6Address) else None


class _RangeCheck:
    """Per-connection state: is the connected peer in a trust-any secure range?"""

    def __init__(self, host: str, policy: Policy, tls_protocol: Any) -> None:
        self._host = host
        self._policy = policy
        self._tls_protocol = tls_protocol
        self.trusted = False
        self._logged = False

    def decision(self) -> DialDecision | None:
        peer = connected_ipv6_peer(self._tls_protocol)
        return None if peer is None else self._policy.decide(peer)

    def verify(
        self, connection: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int
    ) -> bool:
        try:
            decision = self.decision()
        except Exception as e:  # fall back to stock verification, never to trust
            logger.warning("v6alt: %s: secure range check failed (%r); CA check applies",
                           self._host, e)  # fmt: skip
            decision = None
        if decision is not None and decision.allowed and decision.trust is Trust.ANY:
            if not self._logged:
                self._logged = True
                logger.debug(
                    "v6alt: TLS peer %s accepted for %s without CA check (any: secure range %s)",
                    decision.address,
                    self._host,
                    decision.secure_range.network if decision.secure_range else "?",
                )
            self.trusted = True
            return True
        self.trusted = False
        return bool(ok)  # what Synapse's own context would answer


class _RangeVerifier:
    """Stands in for Synapse's ConnectionVerifier: skips only its host name check,
    and only on a connection whose peer the range check trusted."""

    def __init__(self, stock: Any, check: _RangeCheck, host: str) -> None:
        self._stock = stock
        self._check = check
        self._host = host
        self._warned = False

    def verify_context_info_cb(self, ssl_connection: SSL.Connection, where: int) -> None:
        if where & SSL.SSL_CB_HANDSHAKE_START and not self._warned:
            self._warned = True
            self._warn_if_plain_range()
        if where & SSL.SSL_CB_HANDSHAKE_DONE and self._check.trusted:
            return
        self._stock.verify_context_info_cb(ssl_connection, where)

    def _warn_if_plain_range(self) -> None:
        try:
            decision = self._check.decision()
        except Exception:
            return  # only a diagnostic; the verify callback decides
        if decision is not None and not decision.tls_required:
            logger.warning(
                "v6alt: %s: peer %s is in secure range %s (tls: off), but %s is not a v6.alt "
                "name or an IPv6 literal in that range: TLS is used",
                self._host,
                decision.address,
                decision.secure_range.network if decision.secure_range else "?",
                self._host,
            )


@implementer(IOpenSSLClientConnectionCreator)
class RangeTrustCreator:
    """Synapse's connection creator, with the secure-range decision at handshake time."""

    def __init__(self, host: str, policy: Policy, stock: Any) -> None:
        self._host = host
        self._policy = policy
        self._stock = stock

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        connection: SSL.Connection = self._stock.clientConnectionForTLS(tlsProtocol)
        mode = connection.get_context().get_verify_mode()
        verifier = getattr(tlsProtocol, _SYNAPSE_VERIFIER, None)
        if mode == SSL.VERIFY_NONE or verifier is None:
            # Synapse checks nothing for this host (federation_verify_certificates
            # off, or its whitelist), or a Synapse this module does not know:
            # leave its connection exactly as it made it.
            return connection
        check = _RangeCheck(self._host, self._policy, tlsProtocol)
        connection.set_verify(mode, check.verify)
        setattr(tlsProtocol, _SYNAPSE_VERIFIER, _RangeVerifier(verifier, check, self._host))
        return connection


__all__ = ["RangeTrustCreator", "connected_ipv6_peer"]
