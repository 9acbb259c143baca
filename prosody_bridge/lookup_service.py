"""The sidecar's lookup service: HTTP/1.1 + JSON on loopback, for the Prosody module.

Every answer is a pure core call (codec and policy), so requests are served
synchronously without any I/O behind them. Each answer is a typed value
(:mod:`.lookup_answer`) that carries the verdict its metrics count. The
protocol is documented in docs/dns.md (section "Lookup service").
``/metrics`` on the same listener serves the sidecar's metrics in the
Prometheus text format (docs/metrics.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any, Final

from twisted.web import http, resource, server

from v6alt import __version__
from v6alt.codec import encode, to_address
from v6alt.config import SidecarLimits
from v6alt.errors import V6AltError
from v6alt.names import ServerName, parse_xmpp_domain
from v6alt.policy import Policy

from .lookup_answer import (
    XMPP_SERVER_PORT,
    HealthAnswer,
    LookupAnswer,
    NameAnswer,
    PeerAnswer,
    PinAnswer,
    ResolveAnswer,
)
from .metrics import CONTENT_TYPE, SidecarMetrics
from .pin_service import PinService, valid_spki
from .slots import Slots

__all__ = ["XMPP_SERVER_PORT", "LookupChannel", "LookupResource", "LookupSite", "lookup_site"]

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
        self._routes: dict[bytes, Callable[[Any], LookupAnswer]] = {
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
            self.count("unknown", "not_found")
            return self._error(request, 404, f"no such endpoint: {request.path.decode('latin-1')}")
        if request.method not in (b"GET", b"HEAD"):
            self.count(endpoint, "bad_method")
            request.setHeader(b"Allow", b"GET")
            return self._error(request, 405, "only GET is supported")
        try:
            answer = route(request)
        except _BadRequest as exc:
            self.count(endpoint, "bad_request")
            return self._error(request, 400, str(exc))
        self.count(endpoint, answer.verdict.value, answer.rule_id)
        return json.dumps(answer.to_json()).encode()

    def _metrics(self, request: Any) -> bytes:
        assert self.metrics is not None
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"Allow", b"GET")
            return self._error(request, 405, "only GET is supported")
        self.count("metrics", "ok")
        request.setHeader(b"Content-Type", CONTENT_TYPE.encode())
        return self.metrics.render()

    def count(self, endpoint: str, verdict: str, rule: str = "") -> None:
        if self.metrics is not None:
            self.metrics.lookup(endpoint, verdict, rule)

    @staticmethod
    def _error(request: Any, code: int, reason: str) -> bytes:
        request.setResponseCode(code)
        return json.dumps({"error": reason}).encode()

    def _health(self, request: Any) -> HealthAnswer:
        return HealthAnswer(__version__)

    def _resolve(self, request: Any) -> ResolveAnswer:
        text = _param(request, "name")
        name = _domain(text)
        if not name.is_v6alt:
            return ResolveAnswer.not_v6alt(text, name)
        return ResolveAnswer.of_decision(text, name, self.policy.decide_name(name))

    def _peer(self, request: Any) -> PeerAnswer:
        text = _param(request, "name")
        address = _peer_address(_param(request, "address"))
        name = _domain(text)
        if isinstance(address, IPv4Address):
            return PeerAnswer.ipv4(text, address, name.is_v6alt)
        return PeerAnswer.of_decision(text, name, address, self.policy.decide(address, name))

    def _pin(self, request: Any) -> PinAnswer:
        text = _param(request, "name")
        address = _peer_address(_param(request, "address"))
        spki = _param(request, "spki")
        if not valid_spki(spki):
            raise _BadRequest("spki must be 64 lowercase hex digits (SHA-256 of the DER SPKI)")
        name = _domain(text)
        if not isinstance(address, IPv6Address):
            raise _BadRequest("pins are kept for IPv6 peers only")
        if self.pins is None:
            return PinAnswer(
                text, address, "off", False, "error", "the sidecar keeps no pins", None
            )
        return self.pins.answer(self.policy, name, text, address, spki)

    def _name(self, request: Any) -> NameAnswer:
        text = _param(request, "address")
        try:
            address = to_address(text)
        except V6AltError as exc:
            raise _BadRequest(str(exc)) from None
        return NameAnswer(address, encode(address))


_REASONS: Final = {
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
}
#: After a refusal the connection reads (and drops) at most this much, for at most
#: LINGER_SECONDS, so that the client sees the status before the connection closes.
LINGER_BYTES = 256 * 1024
LINGER_SECONDS = 2.0


class LookupChannel(http.HTTPChannel):
    """Twisted's HTTP/1.1 channel with the lookup service's limits (``sidecar.limits``).

    A request's line and headers must arrive within ``lookup_request_timeout``
    of its first byte (408) and within ``lookup_request_bytes`` (414 for the
    line, 431 for the headers). Every endpoint is GET: another method gets 405
    and a request with a body (Content-Length above 0, or chunked) 413, both
    decided from the headers, before any body is read. A refused connection
    is closed once the status is sent. Connections take slots of the site's
    :class:`Slots` (the one longest without a complete request is closed for
    a new one over ``lookup_connections``).
    """

    site: LookupSite
    _head_timer: Any = None
    _refused = False
    _lingered = 0
    _head_lines = 0
    _held = False  # pipelined requests wait until the client reads its answers

    def connectionMade(self) -> None:
        super().connectionMade()  # type: ignore[no-untyped-call]
        site = self.site
        limits = site.limits
        self.MAX_LENGTH = limits.lookup_request_bytes
        self.totalHeadersSize = limits.lookup_request_bytes
        transport: Any = self.transport
        for victim, reason in site.slots.admit(self, str(transport.getPeer().host)):
            victim.evict(reason)

    def evict(self, reason: str) -> None:
        metrics = self.site.resource.metrics
        if metrics is not None:
            metrics.lookup_closed.labels("evicted").inc()  # one limit, total and per address
        transport: Any = self.transport
        if transport is not None:
            transport.abortConnection()

    def connectionLost(self, reason: Any = None) -> None:
        self.site.slots.release(self)
        self._stop_head_timer()
        super().connectionLost(reason)  # type: ignore[no-untyped-call]

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            self._lingered += len(data)
            if self._lingered > LINGER_BYTES:
                transport: Any = self.transport
                transport.abortConnection()
            return
        if data and self._head_timer is None and self.line_mode and not self._handlingRequest:
            self._head_timer = self.callLater(  # type: ignore[no-untyped-call]
                self.site.limits.lookup_request_timeout, self._head_timed_out
            )
        super().dataReceived(data)  # type: ignore[no-untyped-call]

    def rawDataReceived(self, data: bytes) -> None:
        if self._refused:
            return
        if self._held:
            self._dataBuffer.append(data)
            return
        super().rawDataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if self._refused:
            return
        self._head_lines += 1
        if self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            self._refuse(431, "the request line and headers are longer than "
                         f"{self.totalHeadersSize} bytes")  # fmt: skip
            return
        super().lineReceived(line)  # type: ignore[no-untyped-call]

    def lineLengthExceeded(self, line: bytes) -> Any:
        limit = self.MAX_LENGTH
        if self._head_lines == 0:
            self._refuse(414, f"the request line is longer than {limit} bytes")
        else:
            self._refuse(431, f"a header line is longer than {limit} bytes")

    def allHeadersReceived(self) -> None:
        self._head_lines = 0
        self._stop_head_timer()
        command = getattr(self, "_command", b"")
        if command not in (b"GET", b"HEAD"):
            self._refuse(405, "only GET is supported", allow=True)
        elif self.length != 0:
            self._refuse(413, "a request body is not accepted")
        else:
            super().allHeadersReceived()  # type: ignore[no-untyped-call]

    def allContentReceived(self) -> None:
        if not self._refused:
            super().allContentReceived()  # type: ignore[no-untyped-call]

    def requestDone(self, request: Any) -> None:
        self.site.slots.progress(self)
        if self._waitingForTransport and self.persistent and self.requests == [request]:
            # The client is not reading its answers. Twisted would go on answering
            # the pipelined requests it has read (piling answers up in memory):
            # hold them, and read nothing more, until the client reads.
            del self.requests[0]
            self._handlingRequest = False
            if self._savedTimeOut:
                self.setTimeout(self._savedTimeOut)  # type: ignore[no-untyped-call]
            self._held = True
            self._networkProducer.pauseProducing()
            return
        super().requestDone(request)  # type: ignore[no-untyped-call]

    def resumeProducing(self) -> None:
        super().resumeProducing()  # type: ignore[no-untyped-call]
        if self._held and not self._waitingForTransport:
            self._held = False
            data = b"".join(self._dataBuffer)
            self._dataBuffer = []
            self.setLineMode(data)  # type: ignore[no-untyped-call]

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._refused and not self._handlingRequest:
            timeout = self.site.limits.lookup_request_timeout
            self._refuse(408, f"the request line and headers took longer than {timeout:g} s")

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            if self._head_timer.active():
                self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, code: int, reason: str, *, allow: bool = False) -> None:
        """Answer ``code`` and close, reading nothing more of the request."""
        self._refused = True
        self._stop_head_timer()
        self.setTimeout(None)  # type: ignore[no-untyped-call]
        path = getattr(self, "_path", b"").partition(b"?")[0]
        endpoint = path.decode("latin-1").rpartition("/")[2] if path else "unknown"
        verdict = {405: "bad_method", 408: "timeout"}.get(code, "too_large")
        self.site.resource.count(endpoint, verdict)
        body = json.dumps({"error": reason}).encode()
        head = (
            f"HTTP/1.1 {code} {_REASONS[code]}\r\n"
            "Content-Type: application/json\r\n"
            "Cache-Control: no-store\r\n"
            f"Content-Length: {len(body)}\r\n"
            + ("Allow: GET, HEAD\r\n" if allow else "")
            + "Connection: close\r\n\r\n"
        )
        transport: Any = self.transport
        transport.write(head.encode() + body)
        # Half-close: the client reads the status; what it still sends is dropped
        # (within LINGER_BYTES) until it closes or LINGER_SECONDS pass.
        transport.loseWriteConnection()
        self.callLater(LINGER_SECONDS, transport.abortConnection)  # type: ignore[no-untyped-call]


class LookupSite(server.Site):
    """The lookup service's site: :class:`LookupChannel` connections and their slots."""

    protocol = LookupChannel  # type: ignore[assignment]
    resource: LookupResource

    def __init__(self, resource: LookupResource, limits: SidecarLimits) -> None:
        super().__init__(resource)  # type: ignore[no-untyped-call]
        self.slots: Slots[LookupChannel] = Slots(1, 1)
        self.limits = limits
        self.apply(limits)

    def apply(self, limits: SidecarLimits) -> None:
        """Take the limits of ``sidecar.limits`` (at start and on reload)."""
        self.limits = limits
        self.slots.total = self.slots.per_address = limits.lookup_connections


def lookup_site(
    policy: Policy,
    metrics: SidecarMetrics | None = None,
    limits: SidecarLimits | None = None,
) -> LookupSite:
    """A site serving :class:`LookupResource` with request logging off (it is a hot path)."""
    site = LookupSite(LookupResource(policy, metrics), limits or SidecarLimits())
    site.displayTracebacks = False
    site.log = lambda request: None  # type: ignore[method-assign]
    return site
