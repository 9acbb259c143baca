"""The sidecar's lookup service: HTTP/1.1 + JSON on loopback, for the Prosody module.

Every answer is a pure core call (codec and policy), so requests are served
synchronously without any I/O behind them. The protocol is documented in
docs/dns.md (section "Lookup service"). ``/metrics`` on the same listener
serves the sidecar's metrics in the Prometheus text format (docs/metrics.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from twisted.web import resource, server

from v6alt import __version__
from v6alt.codec import encode, to_address
from v6alt.errors import V6AltError
from v6alt.names import HostKind, ServerName, parse_xmpp_domain
from v6alt.policy import Policy

from .metrics import CONTENT_TYPE, SidecarMetrics
from .pin_service import PinService, valid_spki

__all__ = ["XMPP_SERVER_PORT", "LookupResource", "lookup_site"]

XMPP_SERVER_PORT = 5269
MAX_PARAM_LENGTH = 1024


class _BadRequest(Exception):
    """Malformed input: answered with 400 and the reason."""


def _param(request: Any, name: str) -> str:
    values = request.args.get(name.encode())
    if not values:
        raise _BadRequest(f"missing query parameter {name!r}")
    if len(values) > 1:
        raise _BadRequest(f"query parameter {name!r} given {len(values)} times")
    raw: bytes = values[0]
    if len(raw) > MAX_PARAM_LENGTH:
        raise _BadRequest(f"query parameter {name!r} is longer than {MAX_PARAM_LENGTH} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _BadRequest(f"query parameter {name!r} is not UTF-8") from None


def _domain(text: str) -> ServerName:
    try:
        return parse_xmpp_domain(text)
    except V6AltError as exc:
        raise _BadRequest(str(exc)) from None


def _peer_address(text: str) -> IPv6Address | IPv4Address:
    try:
        parsed = ip_address(text.strip("[]"))
    except ValueError:
        raise _BadRequest(f"not an IPv6 or IPv4 address: {text!r}") from None
    if isinstance(parsed, IPv6Address):
        if parsed.scope_id is not None:
            raise _BadRequest(f"zone index not allowed in {text!r}")
        # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
        if parsed.ipv4_mapped is not None:
            return parsed.ipv4_mapped
    return parsed


class LookupResource(resource.Resource):
    """The whole ``/v1/...`` tree; ``policy`` may be swapped on config reload."""

    isLeaf = True
    #: The sidecar's pins (set by the sidecar); without it every pin check is refused.
    pins: PinService | None = None

    def __init__(self, policy: Policy, metrics: SidecarMetrics | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.policy = policy
        self.metrics = metrics
        self._routes: dict[bytes, Callable[[Any], dict[str, object]]] = {
            b"/v1/health": self._health,
            b"/v1/resolve": self._resolve,
            b"/v1/peer": self._peer,
            b"/v1/name": self._name,
            b"/v1/pin": self._pin,
        }

    def render(self, request: Any) -> bytes:
        request.setHeader(b"Cache-Control", b"no-store")
        if request.path == b"/metrics" and self.metrics is not None:
            return self._metrics(request)
        request.setHeader(b"Content-Type", b"application/json")
        route = self._routes.get(request.path)
        endpoint = request.path.decode("latin-1").rpartition("/")[2]
        if route is None:
            self._count("unknown", "not_found")
            return self._error(request, 404, f"no such endpoint: {request.path.decode('latin-1')}")
        if request.method not in (b"GET", b"HEAD"):
            self._count(endpoint, "bad_method")
            request.setHeader(b"Allow", b"GET")
            return self._error(request, 405, "only GET is supported")
        try:
            body = route(request)
        except _BadRequest as exc:
            self._count(endpoint, "bad_request")
            return self._error(request, 400, str(exc))
        self._count(endpoint, _verdict(body), str(body.get("rule_id", "")))
        return json.dumps(body).encode()

    def _metrics(self, request: Any) -> bytes:
        assert self.metrics is not None
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"Allow", b"GET")
            return self._error(request, 405, "only GET is supported")
        self._count("metrics", "ok")
        request.setHeader(b"Content-Type", CONTENT_TYPE.encode())
        return self.metrics.render()

    def _count(self, endpoint: str, verdict: str, rule: str = "") -> None:
        if self.metrics is not None:
            self.metrics.lookup(endpoint, verdict, rule)

    @staticmethod
    def _error(request: Any, code: int, reason: str) -> bytes:
        request.setResponseCode(code)
        return json.dumps({"error": reason}).encode()

    def _health(self, request: Any) -> dict[str, object]:
        return {"ok": True, "version": __version__}

    def _resolve(self, request: Any) -> dict[str, object]:
        text = _param(request, "name")
        name = _domain(text)
        if name.kind is not HostKind.V6ALT:
            return {
                "name": text,
                "is_v6alt": False,
                "address": None,
                "port": None,
                "allowed": True,
                "rule": "not a v6.alt name",
                "rule_id": "",
                "canonical": name.canonical,
                "tls_required": True,
                "trust": "ca",
                "pinning": "off",
            }
        decision = self.policy.decide_name(name)
        return {
            "name": text,
            "is_v6alt": True,
            "address": str(decision.address),
            "port": XMPP_SERVER_PORT,
            "allowed": decision.allowed,
            "rule": decision.rule,
            "rule_id": decision.rule_id,
            "canonical": name.canonical,
            "tls_required": decision.tls_required,
            "trust": decision.trust.value,
            "pinning": decision.pinning,
        }

    def _peer(self, request: Any) -> dict[str, object]:
        text = _param(request, "name")
        address = _peer_address(_param(request, "address"))
        name = _domain(text)
        is_v6alt = name.kind is HostKind.V6ALT
        if isinstance(address, IPv4Address):
            # The policy judges IPv6 only; an IPv4 peer gets Prosody's normal checks.
            return {
                "name": text,
                "address": str(address),
                "is_v6alt": is_v6alt,
                "matches": False,
                "allowed": True,
                "rule": "IPv4 peer: outside the v6alt policy, normal certificate checks",
                "rule_id": "",
                "tls_required": True,
                "trust": "ca",
                "pinning": "off",
            }
        decision = self.policy.decide(address, name)
        return {
            "name": text,
            "address": str(address),
            "is_v6alt": is_v6alt,
            "matches": is_v6alt and name.address == address,
            "allowed": decision.allowed,
            "rule": decision.rule,
            "rule_id": decision.rule_id,
            "tls_required": decision.tls_required,
            "trust": decision.trust.value,
            "pinning": decision.pinning,
        }

    def _pin(self, request: Any) -> dict[str, object]:
        text = _param(request, "name")
        address = _peer_address(_param(request, "address"))
        spki = _param(request, "spki")
        if not valid_spki(spki):
            raise _BadRequest("spki must be 64 lowercase hex digits (SHA-256 of the DER SPKI)")
        name = _domain(text)
        if not isinstance(address, IPv6Address):
            raise _BadRequest("pins are kept for IPv6 peers only")
        if self.pins is None:
            return {
                "name": text,
                "address": str(address),
                "accept": False,
                "status": "error",
                "reason": "the sidecar keeps no pins",
                "message": None,
            }
        return self.pins.answer(self.policy, name, text, address, spki)

    def _name(self, request: Any) -> dict[str, object]:
        text = _param(request, "address")
        try:
            address = to_address(text)
        except V6AltError as exc:
            raise _BadRequest(str(exc)) from None
        return {"address": str(address), "name": encode(address)}


def _verdict(body: dict[str, object]) -> str:
    """The metrics verdict of an answer: ok (health, name), not_v6alt, refused,
    mismatch (a v6.alt name from another address), allowed."""
    if "allowed" not in body:
        return "ok"
    if body.get("is_v6alt") is False and "matches" not in body:
        return "not_v6alt"
    if not body["allowed"]:
        return "refused"
    if body.get("is_v6alt") and body.get("matches") is False:
        return "mismatch"
    return "allowed"


def lookup_site(policy: Policy, metrics: SidecarMetrics | None = None) -> server.Site:
    """A Site serving :class:`LookupResource` with request logging off (it is a hot path)."""
    site = server.Site(LookupResource(policy, metrics))  # type: ignore[no-untyped-call]
    site.displayTracebacks = False
    site.log = lambda request: None  # type: ignore[method-assign]
    return site
