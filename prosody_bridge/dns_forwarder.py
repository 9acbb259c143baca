"""Forwarding of queries for zones the sidecar does not serve (``sidecar.forwarders``).

A deliberately small forwarder, not a resolver: the query bytes go upstream
unchanged except for a fresh random ID, and the reply comes back unchanged
except for the client's ID. Upstreams are tried in order, each with a
timeout; when none answers the client gets SERVFAIL. A reply is accepted only
from the upstream it was sent to, with that ID and the same question. A TCP
client whose UDP reply came back truncated gets the answer over TCP from the
same upstream.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from ipaddress import ip_address
from typing import Any

from twisted.internet import defer, endpoints, protocol

from v6alt.dns_wire import RCODE_SERVFAIL, rcode_reply

from .metrics import SidecarMetrics

__all__ = ["FORWARD_TIMEOUT", "UdpForwarder"]

log = logging.getLogger("v6alt.sidecar.dns")

FORWARD_TIMEOUT = 2.0  # per upstream
FORWARD_MAX_PENDING = 4096

Address = tuple[str, int]
Note = Callable[[str, str], None]  # (log class, peer): DnsQueryLog.note


def question_bytes(query: bytes) -> bytes:
    """The question section of a (parsed, so well-formed) query."""
    pos = 12
    while pos < len(query) and query[pos] != 0:
        pos += 1 + query[pos]
    return query[12 : pos + 5]


def _servfail(query: bytes) -> bytes:
    return rcode_reply(query, RCODE_SERVFAIL) or b""


class _Pending:
    __slots__ = ("deferred", "query", "started", "tcp", "timer")

    def __init__(
        self,
        query: bytes,
        deferred: defer.Deferred[bytes],
        tcp: bool,
        timer: Any,
        started: float,
    ):
        self.query = query
        self.deferred = deferred
        self.tcp = tcp
        self.timer = timer
        self.started = started  # when the client's query was first handed over


class _UpstreamProtocol(protocol.DatagramProtocol):
    def __init__(self, forwarder: UdpForwarder) -> None:
        self._forwarder = forwarder

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self._forwarder.reply_received(datagram, (addr[0], addr[1]))


class _TcpExchange(protocol.Protocol):
    """One query over TCP to an upstream; fires ``done`` with the reply or None."""

    def __init__(self, query: bytes, done: defer.Deferred[bytes | None]) -> None:
        self._query = query
        self._done = done
        self._buffer = b""

    def connectionMade(self) -> None:
        transport: Any = self.transport
        transport.write(len(self._query).to_bytes(2, "big") + self._query)

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) < 2:
            return
        length = int.from_bytes(self._buffer[:2], "big")
        if len(self._buffer) >= 2 + length:
            transport: Any = self.transport
            transport.loseConnection()
            if not self._done.called:
                self._done.callback(self._buffer[2 : 2 + length])

    def connectionLost(self, reason: Any = None) -> None:
        if not self._done.called:
            self._done.callback(None)


class UdpForwarder:
    """Forward raw queries to ``upstreams`` ((ip, port) pairs, tried in order)."""

    def __init__(
        self,
        upstreams: tuple[Address, ...],
        reactor: Any,
        *,
        timeout: float = FORWARD_TIMEOUT,
        note: Note | None = None,
        metrics: SidecarMetrics | None = None,
    ) -> None:
        if not upstreams:
            raise ValueError("a forwarder needs at least one upstream")
        self._upstreams = tuple((str(ip_address(h)), p) for h, p in upstreams)
        self._reactor = reactor
        self._timeout = timeout
        self._note = note
        self._metrics = metrics
        self._pending: dict[tuple[int, int], _Pending] = {}
        self._ports: dict[int, Any] = {}
        for host, _port in self._upstreams:
            family = 6 if ":" in host else 4
            if family not in self._ports:
                self._ports[family] = reactor.listenUDP(
                    0, _UpstreamProtocol(self), interface="::" if family == 6 else "0.0.0.0"
                )

    def stop(self) -> None:
        for port in self._ports.values():
            port.stopListening()
        for pending in list(self._pending.values()):
            pending.timer.cancel()
            pending.deferred.callback(_servfail(pending.query))
        self._pending.clear()

    def forward(self, query: bytes, *, tcp: bool = False) -> defer.Deferred[bytes]:
        """Deferred firing with the reply (client's ID) or SERVFAIL; never errbacks.

        ``tcp`` says the client asked over TCP, so a truncated answer is
        fetched again over TCP instead of being passed on.
        """
        result: defer.Deferred[bytes] = defer.Deferred()
        if len(self._pending) >= FORWARD_MAX_PENDING:
            self._log("servfail: too many queries waiting for forwarders")
            if self._metrics is not None:
                self._metrics.forwarder_failures.labels("overloaded").inc()
            result.callback(_servfail(query))
            return result
        started = self._metrics.clock() if self._metrics is not None else 0.0
        self._send(query, 0, result, tcp, started)
        return result

    def _send(
        self,
        query: bytes,
        index: int,
        result: defer.Deferred[bytes],
        tcp: bool,
        started: float,
    ) -> None:
        host, port = self._upstreams[index]
        while True:
            ident = secrets.randbits(16)
            if (index, ident) not in self._pending:
                break
        timer = self._reactor.callLater(self._timeout, self._timed_out, index, ident)
        self._pending[(index, ident)] = _Pending(query, result, tcp, timer, started)
        listener = self._ports[6 if ":" in host else 4]
        try:
            listener.write(ident.to_bytes(2, "big") + query[2:], (host, port))
        except OSError as exc:
            log.warning("forwarder [%s]:%d: send failed: %s", host, port, exc)

    def _timed_out(self, index: int, ident: int) -> None:
        pending = self._pending.pop((index, ident), None)
        if pending is None:
            return
        if self._metrics is not None:
            self._metrics.forwarder_timeouts.inc()
        self._next_or_fail(pending, index)

    def _next_or_fail(self, pending: _Pending, index: int) -> None:
        if index + 1 < len(self._upstreams):
            self._send(pending.query, index + 1, pending.deferred, pending.tcp, pending.started)
            return
        self._log("servfail: no forwarder answered")
        if self._metrics is not None:
            self._metrics.forwarder_failures.labels("no_answer").inc()
        pending.deferred.callback(_servfail(pending.query))

    def _answered(self, pending: _Pending, reply: bytes) -> None:
        metrics = self._metrics
        if metrics is not None:
            metrics.forwarder_answers.inc()
            metrics.forwarder_latency.observe(max(0.0, metrics.clock() - pending.started))
        pending.deferred.callback(reply)

    def _log(self, log_class: str) -> None:
        if self._note is not None:
            upstreams = ", ".join(f"[{h}]:{p}" for h, p in self._upstreams)
            self._note(log_class, f"forwarders {upstreams}")

    def reply_received(self, data: bytes, addr: Address) -> None:
        if len(data) < 12 or not data[2] & 0x80:
            return
        try:
            source = (str(ip_address(addr[0])), addr[1])
        except ValueError:
            return
        ident = (data[0] << 8) | data[1]
        for index, upstream in enumerate(self._upstreams):
            if upstream != source:
                continue
            pending = self._pending.get((index, ident))
            if pending is None:
                continue
            question = question_bytes(pending.query)
            if data[12 : 12 + len(question)] != question:
                continue  # not the answer to our question: keep waiting
            del self._pending[(index, ident)]
            pending.timer.cancel()
            if pending.tcp and data[2] & 0x02:
                self._over_tcp(pending, index)
            else:
                self._answered(pending, pending.query[:2] + data[2:])
            return

    def _over_tcp(self, pending: _Pending, index: int) -> None:
        host, port = self._upstreams[index]
        kind: Any = endpoints.TCP6ClientEndpoint if ":" in host else endpoints.TCP4ClientEndpoint
        endpoint = kind(self._reactor, host, port, self._timeout)
        done: defer.Deferred[bytes | None] = defer.Deferred()
        exchange = _TcpExchange(pending.query, done)
        connect: Any = endpoints.connectProtocol
        connecting = connect(endpoint, exchange)
        connecting.addErrback(lambda _failure: None if done.called else done.callback(None))
        timer = self._reactor.callLater(
            self._timeout,
            lambda: None if done.called else done.callback(None),
        )

        def finish(reply: bytes | None) -> None:
            if timer.active():
                timer.cancel()
            if exchange.transport is not None:
                transport: Any = exchange.transport
                transport.abortConnection()
            question = question_bytes(pending.query)
            if reply is None or len(reply) < 12 or reply[12 : 12 + len(question)] != question:
                self._next_or_fail(pending, index)
            else:
                self._answered(pending, reply)

        done.addCallback(finish)
