"""TLS for v6.alt destinations: trust bound to the connected peer address.

Synapse asks ``FederationPolicyForHTTPS.get_options(host)`` for a connection
creator before every outbound federation request. For a v6.alt host the
module answers instead of Synapse:

- a refused destination raises :class:`DialRefused` (a ``DNSLookupError``,
  so Synapse fails the request at once without sending a packet);
- a destination in a secure range with ``tls: off`` gets ``None``: Synapse's
  endpoint then speaks plain HTTP (v6.alt names and IPv6 literals: the
  address is known before the connection);
- policy trust ``ca`` gets Synapse's own creator (normal verification);
- policy trust ``ip_bound``/``any`` gets :class:`PeerBoundCreator`, which
  decides during the handshake, from the address the TCP connection is
  really connected to, whether the certificate may go unchecked. Any other
  peer fails the handshake (fail closed: a missing transport, an unparsable
  peer or an exception all refuse).

Every other host (DNS names, IPv6 literals outside the secure ranges) gets
Synapse's own creator, wrapped in :class:`RangeTrustCreator` when secure
ranges with ``trust_any_certificate: true`` are configured: the same
handshake-time peer check (:mod:`.peer_check`) lifts the certificate check
for a peer inside such a range, and leaves Synapse's verification in place
for every other peer. ``tls: off`` cannot apply to such names and never
relaxes their check: Synapse chooses between TLS and plain HTTP before it
resolves the name, so the connection is TLS whatever the address turns out
to be, verified as usual; the module logs it when such a connection reaches
a ``tls: off`` range (see docs/synapse.md). Pinning wraps the IP-bound
creator (:mod:`.pinning`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from OpenSSL import SSL
from twisted.internet.error import DNSLookupError
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.ssl import CertificateOptions, TLSVersion
from twisted.python.failure import Failure
from zope.interface import implementer

from v6alt.errors import V6AltNameError
from v6alt.names import ServerName, is_v6alt, parse_host
from v6alt.policy import DialDecision, Policy, Trust

from .metrics import ModuleMetrics, trust_kind
from .outbound import OutboundJudge, host_text
from .peer_check import Fallback, PeerCheck
from .synapse_seam import replace_synapse_tls_verifier, synapse_tls_verifier

logger = logging.getLogger("v6alt.synapse_module")

_TLS_VERSIONS = {
    "1": TLSVersion.TLSv1_0,
    "1.1": TLSVersion.TLSv1_1,
    "1.2": TLSVersion.TLSv1_2,
    "1.3": TLSVersion.TLSv1_3,
}
_CHECK_ATTRIBUTE = "_v6alt_peer_check"


class DialRefused(DNSLookupError):
    """A v6.alt destination the module refuses to dial (logged where raised)."""


def _info_callback(connection: SSL.Connection, where: int, ret: int) -> None:
    """At handshake end, fail any connection whose peer was never approved."""
    if not where & SSL.SSL_CB_HANDSHAKE_DONE:
        return
    tls_protocol = connection.get_app_data()
    check = getattr(tls_protocol, _CHECK_ATTRIBUTE, None)
    if check is not None:
        check.handshake_done()
    if check is None or not check.approved:
        logger.warning("v6alt: TLS handshake finished without an approved peer; closing")
        tls_protocol.failVerification(
            Failure(SSL.Error("v6alt: peer not approved"))  # type: ignore[no-untyped-call]
        )


@implementer(IOpenSSLClientConnectionCreator)
class PeerBoundCreator:
    """Creates client TLS connections whose certificate check is the peer address."""

    def __init__(
        self,
        host: bytes,
        server: ServerName,
        policy: Policy,
        context: SSL.Context,
        observe: Callable[[str], None] | None = None,
    ) -> None:
        self._host = host
        self._server = server
        self._policy = policy
        self._context = context
        self._observe = observe

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        connection = SSL.Connection(self._context, None)
        connection.set_app_data(tlsProtocol)
        connection.set_tlsext_host_name(self._host)
        check = PeerCheck(
            str(self._server),
            self._policy,
            tlsProtocol,
            server=self._server,
            trusts=(Trust.IP_BOUND, Trust.ANY),
            fallback=Fallback.DENY,
            observe=self._observe,
        )
        setattr(tlsProtocol, _CHECK_ATTRIBUTE, check)
        connection.set_verify(SSL.VERIFY_PEER, check.verify)
        return connection


class _RangeVerifier:
    """Stands in for Synapse's ConnectionVerifier: skips only its host name check,
    and only on a connection whose peer the range check approved."""

    def __init__(self, stock: Any, check: PeerCheck, host: str) -> None:
        self._stock = stock
        self._check = check
        self._host = host
        self._warned = False

    def verify_context_info_cb(self, ssl_connection: SSL.Connection, where: int) -> None:
        if where & SSL.SSL_CB_HANDSHAKE_START and not self._warned:
            self._warned = True
            self._warn_if_plain_range()
        if where & SSL.SSL_CB_HANDSHAKE_DONE and self._check.approved:
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

    _seam_warned = False

    def __init__(
        self,
        host: str,
        policy: Policy,
        stock: Any,
        observe: Callable[[str], None] | None = None,
    ) -> None:
        self._host = host
        self._policy = policy
        self._stock = stock
        self._observe = observe

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        connection: SSL.Connection = self._stock.clientConnectionForTLS(tlsProtocol)
        mode = connection.get_context().get_verify_mode()
        if mode == SSL.VERIFY_NONE:
            # Synapse checks nothing for this host (federation_verify_certificates
            # off, or its whitelist): leave its connection exactly as it made it.
            return connection
        verifier = synapse_tls_verifier(tlsProtocol)
        if verifier is None:
            # Checked at start-up; reaching this means a creator the seam does
            # not know. Synapse's verification stays, the range trust is lost.
            if not RangeTrustCreator._seam_warned:
                RangeTrustCreator._seam_warned = True
                logger.error(
                    "v6alt: %s: Synapse's TLS verifier is not where the module expects it; "
                    "secure ranges do not apply to DNS names on this connection",
                    self._host,
                )
            return connection
        check = PeerCheck(
            self._host,
            self._policy,
            tlsProtocol,
            server=None,
            trusts=(Trust.ANY,),
            fallback=Fallback.STOCK,
            observe=self._observe,
        )
        connection.set_verify(mode, check.verify)
        replace_synapse_tls_verifier(tlsProtocol, _RangeVerifier(verifier, check, self._host))
        return connection


def peer_bound_context(minimum_tls_version: str) -> SSL.Context:
    """An SSL context without CA verification; every connection sets its own check."""
    minimum = _TLS_VERSIONS.get(minimum_tls_version, TLSVersion.TLSv1_2)
    context = CertificateOptions(insecurelyLowerMinimumTo=minimum).getContext()
    context.set_info_callback(_info_callback)
    return context


class FederationTls:
    """Chooses the connection creator for one outbound federation host."""

    def __init__(
        self,
        judge: OutboundJudge,
        context: SSL.Context,
        metrics: ModuleMetrics | None = None,
    ) -> None:
        self._judge = judge
        self._context = context
        self._observe = metrics.trust if metrics is not None else None
        # Names resolved by Synapse need the handshake-time range check only
        # when some secure range accepts any certificate; otherwise they stay
        # exactly stock.
        self._ranges = any(r.trust_any_certificate for r in judge.policy.config.secure_ranges)

    def options_for(self, host: bytes, synapse_options: Callable[[], Any]) -> Any:
        text = host_text(host)
        if is_v6alt(text):
            verdict = self._judge.judge(text, where="federation client")
            if not verdict.allowed or verdict.decision is None or verdict.server is None:
                raise DialRefused(f"v6alt refused {text}: {verdict.refusal}")
            return self._transport(host, text, verdict.server, verdict.decision, synapse_options)
        literal = _ipv6_literal(text)
        if literal is not None and literal.ipv6 is not None:
            # An IPv6 literal server name is judged only for secure ranges; refusing
            # it is Synapse's own blocklist's job, as in stock Synapse.
            decision = self._judge.policy.decide(literal.ipv6, literal)
            if decision.secure_range is not None and decision.allowed:
                return self._transport(host, text, literal, decision, synapse_options)
        if self._ranges:
            # A DNS name (or a literal outside the ranges): the address is known
            # only once connected, so the range decision binds to the peer then.
            return RangeTrustCreator(text, self._judge.policy, synapse_options(), self._observe)
        return synapse_options()

    def _transport(
        self,
        host: bytes,
        text: str,
        server: ServerName,
        decision: DialDecision,
        synapse_options: Callable[[], Any],
    ) -> Any:
        if self._observe is not None and (not decision.tls_required or decision.trust is Trust.CA):
            # Decided now; the address-bound and range trusts decide at the handshake.
            self._observe(trust_kind(decision))
        if not decision.tls_required:
            logger.info(
                "v6alt: %s: plain HTTP to %s (secure range %s, tls: off)",
                text,
                decision.address,
                decision.secure_range.network if decision.secure_range else "?",
            )
            return None
        if decision.trust is Trust.CA:
            logger.debug("v6alt: %s: certificate checked by Synapse (%s)", text, decision.rule)
            return synapse_options()
        return PeerBoundCreator(host, server, self._judge.policy, self._context, self._observe)


def _ipv6_literal(text: str) -> ServerName | None:
    if ":" not in text:
        return None
    try:
        return parse_host(f"[{text}]")
    except V6AltNameError:
        return None
