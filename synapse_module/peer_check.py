"""The handshake-time peer check: may this connection's certificate go unchecked?

Trust is bound to the address the TCP connection is really connected to,
read from the transport during the TLS handshake, so it holds whatever the
name resolved to. One check serves both kinds of outbound connection, and
differs only in what happens when the peer is not approved:

- ``Fallback.DENY`` (v6.alt names and IPv6 literals in a secure range): the
  handshake fails. A missing transport, an unparsable peer or an exception
  refuse too: fail closed.
- ``Fallback.STOCK`` (names Synapse resolves itself): Synapse's own
  verification answers, unchanged. Nothing but a positive decision for the
  connected address lifts a check.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Collection
from ipaddress import IPv6Address, ip_address
from typing import Any

from OpenSSL import SSL, crypto

from v6alt.names import ServerName
from v6alt.policy import DialDecision, Policy, Trust

from .metrics import trust_kind

logger = logging.getLogger("v6alt.synapse_module")


class Fallback(enum.Enum):
    DENY = "deny"
    STOCK = "stock"


def connected_ipv6_peer(tls_protocol: Any) -> IPv6Address | None:
    """The IPv6 address the TLS protocol's TCP transport is connected to, if any."""
    transport = getattr(tls_protocol, "transport", None)
    if transport is None:
        return None
    host = str(transport.getPeer().host).split("%", 1)[0]
    address = ip_address(host)
    return address if isinstance(address, IPv6Address) else None


def _trust_reason(decision: DialDecision) -> str:
    # A certificate accepted unchecked is owed to a secure range: name it.
    if decision.trust is Trust.ANY and decision.secure_range is not None:
        return f"secure range {decision.secure_range.network}"
    return decision.rule


class PeerCheck:
    """Per-connection state: was the connected peer approved during the handshake?

    ``server`` is the v6.alt name (or literal) dialled, None for a DNS name;
    ``trusts`` the policy trusts that approve a peer without a CA check;
    ``observe`` hears the connection's outcome once: the trust kind of an
    approval (:func:`.metrics.trust_kind`; ``pinned`` when the pin check set
    :attr:`kind` so), or "refused" when a ``DENY`` check refuses the peer. A
    ``DENY`` check reports an approval when the handshake ends
    (:meth:`handshake_done`), so that a later check of the same handshake (the
    pin) can still refuse it; a ``STOCK`` check reports it at once.
    """

    def __init__(
        self,
        host: str,
        policy: Policy,
        tls_protocol: Any,
        *,
        server: ServerName | None,
        trusts: Collection[Trust],
        fallback: Fallback,
        observe: Callable[[str], None] | None = None,
    ) -> None:
        self._host = host
        self._policy = policy
        self._tls_protocol = tls_protocol
        self._server = server
        self._trusts = frozenset(trusts)
        self._fallback = fallback
        self.approved = False
        self._logged = False
        self._observe = observe
        self._observed = False
        #: The trust kind of the approval, reported when the handshake is done.
        self.kind = "refused"

    def _report(self, kind: str) -> None:
        if self._observe is not None and not self._observed:
            self._observed = True
            self._observe(kind)

    def decision(self) -> DialDecision | None:
        """The policy's decision for the connected peer (None: no IPv6 peer)."""
        peer = connected_ipv6_peer(self._tls_protocol)
        if peer is None:
            return None
        if self._server is None:
            return self._policy.decide(peer)
        return self._policy.decide(peer, self._server)

    def verify(
        self, connection: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int
    ) -> bool:
        """OpenSSL's verify callback."""
        try:
            decision = self.decision()
        except Exception as e:  # an error never approves a peer
            if self._fallback is Fallback.STOCK:
                logger.warning(
                    "v6alt: %s: secure range check failed (%r); CA check applies", self._host, e
                )
            return self._refuse(f"peer check failed: {e!r}", ok)
        if decision is None:
            return self._refuse("no IPv6 peer address on the connection", ok)
        if decision.allowed and decision.trust in self._trusts:
            if not self.approved:
                logger.debug(
                    "v6alt: TLS peer %s accepted for %s without CA check (%s: %s)",
                    decision.address,
                    self._host,
                    decision.trust.value,
                    _trust_reason(decision),
                )
            self.approved = True
            if self.kind == "refused":
                self.kind = trust_kind(decision)
            if self._fallback is Fallback.STOCK:
                self._report(self.kind)
            return True
        expected = f"is not {self._server.ipv6} and " if self._server is not None else ""
        return self._refuse(
            f"connected peer {decision.address} {expected}no secure range trusts it "
            f"({decision.rule})",
            ok,
        )

    def _refuse(self, reason: str, ok: int) -> bool:
        self.approved = False
        if self._fallback is Fallback.STOCK:
            return bool(ok)  # what Synapse's own context would answer
        if not self._logged:
            self._logged = True
            logger.warning("v6alt: TLS refused for %s: %s", self._host, reason)
        self._report("refused")
        return False

    def handshake_done(self) -> None:
        """The handshake ended: report the approval's kind, or a refusal."""
        self._report(self.kind if self.approved else "refused")


__all__ = ["Fallback", "PeerCheck", "connected_ipv6_peer"]
