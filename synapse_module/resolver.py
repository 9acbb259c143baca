"""A host name resolver that answers v6.alt names from the codec.

Installed with ``reactor.installNameResolver`` in front of the resolver
Synapse installed (a getaddrinfo thread pool). Every name outside
``.v6.alt`` goes to that previous resolver unchanged; a v6.alt name never
leaves the process: it resolves to its decoded address when the outbound
judge allows it, and to nothing otherwise (Twisted then reports a DNS lookup
failure). Synapse's ``_IPBlockingResolver`` still sits in front of this one
for the federation client and applies the federation blocklist again.
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.internet.address import IPv6Address as TwistedIPv6Address
from twisted.internet.interfaces import (
    IAddress,
    IHostnameResolver,
    IHostResolution,
    IResolutionReceiver,
)
from zope.interface import implementer

from v6alt.names import is_v6alt

from .outbound import OutboundJudge


@implementer(IHostResolution)
class _Answered:
    """The resolution of a v6.alt name: complete before it is returned."""

    def __init__(self, name: str) -> None:
        self.name = name

    def cancel(self) -> None:
        # Nothing to cancel: the answer was delivered synchronously.
        return None


@implementer(IHostnameResolver)
class V6AltNameResolver:
    def __init__(self, previous: IHostnameResolver, judge: OutboundJudge) -> None:
        self.previous = previous
        self._judge = judge

    def resolveHostName(
        self,
        resolutionReceiver: IResolutionReceiver,
        hostName: str,
        portNumber: int = 0,
        addressTypes: Sequence[type[IAddress]] | None = None,
        transportSemantics: str = "TCP",
    ) -> IHostResolution:
        name = hostName.decode("ascii", "replace") if isinstance(hostName, bytes) else hostName
        if not is_v6alt(name):
            return self.previous.resolveHostName(
                resolutionReceiver, hostName, portNumber, addressTypes, transportSemantics
            )
        resolution = _Answered(name)
        resolutionReceiver.resolutionBegan(resolution)
        verdict = self._judge.judge(name, where="resolver")
        wants_v6 = addressTypes is None or TwistedIPv6Address in addressTypes
        if verdict.allowed and verdict.address is not None and wants_v6:
            resolutionReceiver.addressResolved(
                TwistedIPv6Address(
                    "UDP" if transportSemantics == "UDP" else "TCP",
                    str(verdict.address),
                    portNumber,
                )
            )
        resolutionReceiver.resolutionComplete()
        return resolution


def install_resolver(reactor: object, judge: OutboundJudge) -> V6AltNameResolver:
    """Put a v6.alt resolver in front of the reactor's current one (idempotent)."""
    current = reactor.nameResolver  # type: ignore[attr-defined]
    previous = current.previous if isinstance(current, V6AltNameResolver) else current
    resolver = V6AltNameResolver(previous, judge)
    reactor.installNameResolver(resolver)  # type: ignore[attr-defined]
    return resolver
