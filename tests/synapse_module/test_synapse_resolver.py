"""The v6.alt name resolver the module installs on Synapse's reactor.

Twisted only, no Synapse: the resolver answers v6.alt names from the codec
(or not at all when refused) and passes every other name to the resolver it
replaced.
"""

from __future__ import annotations

from ipaddress import IPv6Address
from typing import Any

import pytest

pytest.importorskip("twisted", reason="Twisted is not installed")
from twisted.internet.address import IPv6Address as TwistedIPv6Address
from twisted.internet.interfaces import IHostnameResolver, IResolutionReceiver
from zope.interface import implementer

from v6alt.codec import encode
from v6alt.policy import Policy
from v6alt.synapse_module.outbound import OutboundJudge, SynapseBlocklist
from v6alt.synapse_module.resolver import V6AltNameResolver

YGGDRASIL = IPv6Address("200:cab8:deb4:ce60:4362:4492:e539:4b5")


@implementer(IResolutionReceiver)
class Receiver:
    def __init__(self) -> None:
        self.began = False
        self.addresses: list[Any] = []
        self.complete = False

    def resolutionBegan(self, resolution: object) -> None:
        self.began = True

    def addressResolved(self, address: object) -> None:
        self.addresses.append(address)

    def resolutionComplete(self) -> None:
        self.complete = True


@implementer(IHostnameResolver)
class PreviousResolver:
    """Stands for Synapse's getaddrinfo resolver: records what reaches it."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def resolveHostName(self, receiver: Any, hostName: str, *args: Any) -> Any:
        self.names.append(hostName)
        return "previous"


def resolve(name: str, port: int = 8448) -> tuple[Receiver, PreviousResolver]:
    previous = PreviousResolver()
    resolver = V6AltNameResolver(previous, OutboundJudge(Policy(), SynapseBlocklist(None, None)))
    receiver = Receiver()
    resolver.resolveHostName(receiver, name, port)
    return receiver, previous


def test_v6alt_name_resolves_to_its_address_without_dns() -> None:
    receiver, previous = resolve(encode(YGGDRASIL), 8449)
    assert previous.names == []
    assert receiver.began and receiver.complete
    assert receiver.addresses == [TwistedIPv6Address("TCP", str(YGGDRASIL), 8449)]


def test_subdomain_resolves_to_the_label_address() -> None:
    receiver, _ = resolve("groups." + encode(YGGDRASIL))
    assert [a.host for a in receiver.addresses] == [str(YGGDRASIL)]


@pytest.mark.parametrize(
    "name",
    [encode("::1"), encode("fd00::1"), encode("::ffff:10.0.0.1"), encode(YGGDRASIL).upper()],
)
def test_refused_names_resolve_to_nothing(name: str) -> None:
    receiver, previous = resolve(name)
    assert previous.names == []
    assert receiver.began and receiver.complete
    assert receiver.addresses == []


def test_other_names_go_to_the_previous_resolver() -> None:
    receiver, previous = resolve("matrix.example.org")
    assert previous.names == ["matrix.example.org"]
    assert not receiver.began
