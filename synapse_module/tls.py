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
Synapse's own creator, wrapped in :class:`.range_trust.RangeTrustCreator`
when secure ranges are configured: the same handshake-time peer check lifts
the certificate check for a peer inside a ``trust_any_certificate`` range,
and leaves Synapse's verification in place for every other peer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from OpenSSL import SSL, crypto
from twisted.internet.error import DNSLookupError
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.ssl import CertificateOptions, TLSVersion
from twisted.python.failure import Failure
from zope.interface import implementer

from v6alt.errors import V6AltNameError
from v6alt.names import ServerName, is_v6alt, parse_host
from v6alt.policy import DialDecision, Policy, Trust

from .outbound import OutboundJudge, host_text
from .range_trust import RangeTrustCreator, connected_ipv6_peer

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


class _PeerCheck:
    """Per-connection state: was the connected peer approved during the handshake?"""

    def __init__(self, server: ServerName, policy: Policy, tls_protocol: Any) -> None:
        self._server = server
        self._policy = policy
        self._tls_protocol = tls_protocol
        self.approved = False
        self._logged = False

    def verify(
        self, connection: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int
    ) -> bool:
        try:
            peer = connected_ipv6_peer(self._tls_protocol)
            if peer is None:
                return self._deny("no IPv6 peer address on the connection")
            decision = self._policy.decide(peer, self._server)
            if decision.allowed and decision.trust in (Trust.IP_BOUND, Trust.ANY):
                if not self.approved:
                    logger.debug(
                        "v6alt: TLS peer %s accepted for %s without CA check (%s: %s)",
                        peer,
                        self._server,
                        decision.trust.value,
                        decision.rule,
                    )
                self.approved = True
                return True
            return self._deny(
                f"connected peer {peer} is not {self._server.ipv6} and no secure range "
                f"trusts it ({decision.rule})"
            )
        except Exception as e:  # fail closed: an error must never accept a peer
            return self._deny(f"peer check failed: {e!r}")

    def _deny(self, reason: str) -> bool:
        self.approved = False
        if not self._logged:
            self._logged = True
            logger.warning("v6alt: TLS refused for %s: %s", self._server, reason)
        return False


def _info_callback(connection: SSL.Connection, where: int, ret: int) -> None:
    """At handshake end, fail any connection whose peer was never approved."""
    if not where & SSL.SSL_CB_HANDSHAKE_DONE:
        return
    tls_protocol = connection.get_app_data()
    check = getattr(tls_protocol, _CHECK_ATTRIBUTE, None)
    if check is None or not check.approved:
        logger.warning("v6alt: TLS handshake finished without an approved peer; closing")
        tls_protocol.failVerification(
            Failure(SSL.Error("v6alt: peer not approved"))  # type: ignore[no-untyped-call]
        )


@implementer(IOpenSSLClientConnectionCreator)
class PeerBoundCreator:
    """Creates client TLS connections whose certificate check is the peer address."""

    def __init__(
        self, host: bytes, server: ServerName, policy: Policy, context: SSL.Context
    ) -> None:
        self._host = host
        self._server = server
        self._policy = policy
        self._context = context

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        connection = SSL.Connection(self._context, None)
        connection.set_app_data(tlsProtocol)
        connection.set_tlsext_host_name(self._host)
        check = _PeerCheck(self._server, self._policy, tlsProtocol)
        setattr(tlsProtocol, _CHECK_ATTRIBUTE, check)
        connection.set_verify(SSL.VERIFY_PEER, check.verify)
        return connection


def peer_bound_context(minimum_tls_version: str) -> SSL.Context:
    """An SSL context without CA verification; every connection sets its own check."""
    minimum = _TLS_VERSIONS.get(minimum_tls_version, TLSVersion.TLSv1_2)
    context = CertificateOptions(insecurelyLowerMinimumTo=minimum).getContext()
    context.set_info_callback(_info_callback)
    return context


class FederationTls:
    """Chooses the connection creator for one outbound federation host."""

    def __init__(self, judge: OutboundJudge, context: SSL.Context) -> None:
        self._judge = judge
        self._context = context
        # Names resolved by Synapse need the handshake-time range check only
        # when some secure range exists; otherwise they stay exactly stock.
        self._ranges = bool(judge.policy.config.secure_ranges)

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
            return RangeTrustCreator(text, self._judge.policy, synapse_options())
        return synapse_options()

    def _transport(
        self,
        host: bytes,
        text: str,
        server: ServerName,
        decision: DialDecision,
        synapse_options: Callable[[], Any],
    ) -> Any:
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
        return PeerBoundCreator(host, server, self._judge.policy, self._context)


def _ipv6_literal(text: str) -> ServerName | None:
    if ":" not in text:
        return None
    try:
        return parse_host(f"[{text}]")
    except V6AltNameError:
        return None
