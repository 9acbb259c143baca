"""The lookup service's answers: one typed value per endpoint, each with its verdict.

An answer is built once, from the core's decision, and turned into the JSON
object on the wire by :meth:`LookupAnswer.to_json`. Every answer carries
``verdict``, the one word the sidecar's and mod_v6alt's metrics count it
under, decided here so that neither side re-derives it from the fields.

``verdict`` was added beside the fields an older mod_v6alt reads, which are
all kept: an older module ignores it and derives its own, a newer module
that meets an older sidecar (no ``verdict``) counts the answer as
``unknown`` (docs/prosody.md, "Lookup answers and versions").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from ipaddress import IPv4Address, IPv6Address

from v6alt.config import PinningMode
from v6alt.names import ServerName
from v6alt.policy import DialDecision

__all__ = [
    "HealthAnswer",
    "LookupAnswer",
    "NameAnswer",
    "PeerAnswer",
    "PinAnswer",
    "ResolveAnswer",
    "Verdict",
]

XMPP_SERVER_PORT = 5269


class Verdict(str, Enum):
    """What an answer says, as its metrics label (docs/metrics.md)."""

    OK = "ok"  # /v1/health, /v1/name
    NOT_V6ALT = "not_v6alt"  # /v1/resolve of another domain
    ALLOWED = "allowed"
    REFUSED = "refused"  # by the policy, or a pin check that failed
    MISMATCH = "mismatch"  # /v1/peer: a v6.alt name from another address
    ACCEPTED = "accepted"  # /v1/pin


class LookupAnswer(ABC):
    """One 200 answer of the lookup service."""

    @property
    @abstractmethod
    def verdict(self) -> Verdict: ...

    #: The policy rule's identifier, for the metrics' ``rule`` label ("" for none).
    rule_id: str = ""

    @abstractmethod
    def _fields(self) -> dict[str, object]:
        """The endpoint's own fields, in their wire order."""

    def to_json(self) -> dict[str, object]:
        """The JSON object sent on the wire: the endpoint's fields, then ``verdict``."""
        return {**self._fields(), "verdict": self.verdict.value}


@dataclass(frozen=True)
class HealthAnswer(LookupAnswer):
    version: str

    @property
    def verdict(self) -> Verdict:
        return Verdict.OK

    def _fields(self) -> dict[str, object]:
        return {"ok": True, "version": self.version}


@dataclass(frozen=True)
class NameAnswer(LookupAnswer):
    address: IPv6Address
    name: str

    @property
    def verdict(self) -> Verdict:
        return Verdict.OK

    def _fields(self) -> dict[str, object]:
        return {"address": str(self.address), "name": self.name}


@dataclass(frozen=True)
class ResolveAnswer(LookupAnswer):
    """Where to dial ``name`` (as the client spelt it) and whether the policy allows it."""

    name: str
    canonical: bool
    address: IPv6Address | None  # None: not a v6.alt name
    allowed: bool
    rule: str
    tls_required: bool
    trust: str
    pinning: PinningMode
    rule_id: str = ""

    @classmethod
    def not_v6alt(cls, text: str, name: ServerName) -> ResolveAnswer:
        """Another domain: left to Prosody's own resolver and checks."""
        return cls(text, name.canonical, None, True, "not a v6.alt name", True, "ca", "off")

    @classmethod
    def of_decision(cls, text: str, name: ServerName, decision: DialDecision) -> ResolveAnswer:
        return cls(
            text,
            name.canonical,
            decision.address,
            decision.allowed,
            decision.rule,
            decision.tls_required,
            decision.trust.value,
            decision.pinning,
            decision.rule_id,
        )

    @property
    def is_v6alt(self) -> bool:
        return self.address is not None

    @property
    def verdict(self) -> Verdict:
        if not self.is_v6alt:
            return Verdict.NOT_V6ALT
        return Verdict.ALLOWED if self.allowed else Verdict.REFUSED

    def _fields(self) -> dict[str, object]:
        return {
            "name": self.name,
            "is_v6alt": self.is_v6alt,
            "address": None if self.address is None else str(self.address),
            "port": None if self.address is None else XMPP_SERVER_PORT,
            "allowed": self.allowed,
            "rule": self.rule,
            "rule_id": self.rule_id,
            "canonical": self.canonical,
            "tls_required": self.tls_required,
            "trust": self.trust,
            "pinning": self.pinning,
        }


@dataclass(frozen=True)
class PeerAnswer(LookupAnswer):
    """The decision for one connection with a peer claiming ``name`` from ``address``."""

    name: str
    address: IPv6Address | IPv4Address
    is_v6alt: bool
    matches: bool  # a v6.alt name decoding to exactly this address
    allowed: bool
    rule: str
    tls_required: bool
    trust: str
    pinning: PinningMode
    rule_id: str = ""

    @classmethod
    def ipv4(cls, text: str, address: IPv4Address, is_v6alt: bool) -> PeerAnswer:
        """The policy judges IPv6 only; an IPv4 peer gets Prosody's normal checks."""
        rule = "IPv4 peer: outside the v6alt policy, normal certificate checks"
        return cls(text, address, is_v6alt, False, True, rule, True, "ca", "off")

    @classmethod
    def of_decision(
        cls, text: str, name: ServerName, address: IPv6Address, decision: DialDecision
    ) -> PeerAnswer:
        is_v6alt = name.is_v6alt
        return cls(
            text,
            address,
            is_v6alt,
            is_v6alt and name.address == address,
            decision.allowed,
            decision.rule,
            decision.tls_required,
            decision.trust.value,
            decision.pinning,
            decision.rule_id,
        )

    @property
    def verdict(self) -> Verdict:
        if not self.allowed:
            return Verdict.REFUSED
        if self.is_v6alt and not self.matches:
            return Verdict.MISMATCH
        return Verdict.ALLOWED

    def _fields(self) -> dict[str, object]:
        return {
            "name": self.name,
            "address": str(self.address),
            "is_v6alt": self.is_v6alt,
            "matches": self.matches,
            "allowed": self.allowed,
            "rule": self.rule,
            "rule_id": self.rule_id,
            "tls_required": self.tls_required,
            "trust": self.trust,
            "pinning": self.pinning,
        }


@dataclass(frozen=True)
class PinAnswer(LookupAnswer):
    """A TLS key judged against the peer's pin: ``accept`` says whether the stream goes on."""

    name: str
    address: IPv6Address
    mode: PinningMode
    accept: bool
    status: str  # new, match, mismatch, off, not_pinnable, error
    reason: str | None  # why it was refused
    message: str | None  # the line to log

    @property
    def verdict(self) -> Verdict:
        return Verdict.ACCEPTED if self.accept else Verdict.REFUSED

    def _fields(self) -> dict[str, object]:
        return {
            "name": self.name,
            "address": str(self.address),
            "mode": self.mode,
            "accept": self.accept,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
        }
