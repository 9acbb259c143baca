"""The sidecar's DNS-over-TCP listener: framing, pipelining and the TCP limits.

The answers come from :class:`v6alt.dns_wire.Responder`; this module only
moves bytes. The UDP listener is :mod:`.dns_udp`, forwarding to upstream
resolvers :mod:`.dns_forwarder`, the rate-limited log of refused queries
:mod:`.dns_query_log`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from twisted.internet import protocol
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.protocols.policies import TimeoutMixin
from zope.interface import implementer

from v6alt.config import SidecarLimits
from v6alt.dns_wire import Action, Responder

from .dns_forwarder import UdpForwarder
from .dns_query_log import DnsQueryLog
from .metrics import DnsKey, SidecarMetrics, dns_key
from .slots import Slots

__all__ = ["DnsTcpFactory", "DnsTcpProtocol"]

log = logging.getLogger("v6alt.sidecar.dns")

#: Forwarded queries of one TCP connection waiting at once; beyond, its reading pauses.
TCP_MAX_INFLIGHT = 32


@implementer(IHalfCloseableProtocol)
class DnsTcpProtocol(protocol.Protocol, TimeoutMixin):
    """DNS over TCP: 2-byte length framing, pipelined queries, and the limits.

    - Every message must arrive whole within ``query_timeout`` of its first
      byte (a deadline that later bytes do not move); between messages the
      connection may stay idle for ``idle_timeout``.
    - A new connection over the factory's :class:`Slots` closes the one that
      has gone longest without a complete query.
    - The replies are written with backpressure: while the client does not
      read them, its queries are not read either (the deadline then closes
      it), and at most :data:`TCP_MAX_INFLIGHT` forwarded queries of one
      connection wait at once.
    - A client that half-closes (shutdown for writing) gets the replies to
      every query it sent before the connection is closed.
    """

    factory: DnsTcpFactory

    def __init__(self) -> None:
        self._buffer = b""
        self._in_message = False  # the buffer holds part of a message, under its deadline
        self._inflight = 0  # forwarded queries waiting for their answer
        self._write_blocked = False
        self._read_paused = False
        self._eof = False
        self._gone = False

    def _tx(self) -> Any:
        return self.transport

    def connectionMade(self) -> None:
        factory = self.factory
        factory.connections += 1
        transport = self._tx()
        for victim, reason in factory.slots.admit(self, str(transport.getPeer().host)):
            victim.evict(reason)
        transport.registerProducer(self, True)
        self.setTimeout(factory.idle_timeout)  # type: ignore[no-untyped-call]

    def evict(self, reason: str) -> None:
        """Close at once (the slot is already given to a newer connection)."""
        if self._gone:
            return
        self._gone = True
        self._closed(reason)
        self.setTimeout(None)  # type: ignore[no-untyped-call]
        self._tx().abortConnection()

    def connectionLost(self, reason: Any = None) -> None:
        self._gone = True
        self.factory.connections -= 1
        self.factory.slots.release(self)
        self.setTimeout(None)  # type: ignore[no-untyped-call]
        self._buffer = b""

    # The transport's producer interface: the client's reading side.
    def pauseProducing(self) -> None:
        self._write_blocked = True
        self._update_reading()

    def resumeProducing(self) -> None:
        self._write_blocked = False
        self._update_reading()
        self._process(fresh=False)

    def stopProducing(self) -> None:
        pass

    def _update_reading(self) -> None:
        pause = self._write_blocked or self._inflight >= TCP_MAX_INFLIGHT
        if pause == self._read_paused or self._gone:
            return
        self._read_paused = pause
        transport = self._tx()
        if pause:
            transport.pauseProducing()
        elif not self._eof:
            transport.resumeProducing()

    def dataReceived(self, data: bytes) -> None:
        self._buffer = self._buffer + data if self._buffer else data
        self._process(fresh=True)

    def _process(self, *, fresh: bool) -> None:
        """Answer the complete messages in the buffer while the limits allow."""
        buffer = self._buffer
        pos = 0
        done = 0
        # An offset, not re-slicing the buffer per message: a chunk full of
        # small pipelined queries stays linear.
        while len(buffer) - pos >= 2 and not self._gone:
            if self._write_blocked or self._inflight >= TCP_MAX_INFLIGHT:
                break
            end = pos + 2 + ((buffer[pos] << 8) | buffer[pos + 1])
            if len(buffer) < end:
                break
            if not self._handle(buffer[pos + 2 : end]):
                self._buffer = b""
                self._tx().loseConnection()
                return
            pos = end
            done += 1
        if self._gone:
            return
        self._buffer = buffer = buffer[pos:]
        if done:
            self.factory.slots.progress(self)
        if not buffer:
            if done or self._in_message:
                self._in_message = False
                self.setTimeout(self.factory.idle_timeout)  # type: ignore[no-untyped-call]
        elif done or (fresh and not self._in_message):
            # A new message began: its deadline starts now and is not moved again.
            self._in_message = True
            self.setTimeout(self.factory.query_timeout)  # type: ignore[no-untyped-call]
        self._update_reading()
        self._maybe_finish()

    def readConnectionLost(self) -> None:
        """The client shut down its sending side: answer what it sent, then close."""
        self._eof = True
        self._maybe_finish()

    def writeConnectionLost(self) -> None:
        self._tx().abortConnection()

    def _maybe_finish(self) -> None:
        if not self._eof or self._gone or self._inflight:
            return
        buffer = self._buffer
        if len(buffer) >= 2 and len(buffer) >= 2 + ((buffer[0] << 8) | buffer[1]):
            return  # complete messages still wait (the client is not reading its replies)
        self._gone = True
        self.setTimeout(None)  # type: ignore[no-untyped-call]
        self._tx().loseConnection()  # after the replies already written

    def _handle(self, message: bytes) -> bool:
        factory = self.factory
        try:
            reply = factory.responder.respond(message, udp=False)
        except Exception:
            log.exception("dns: unexpected error answering a %d-byte TCP message", len(message))
            return False
        if reply.log_class is not None:
            peer = self._tx().getPeer()
            factory.refusals.note(reply.log_class, f"[{peer.host}]:{peer.port}/tcp")
        counts = factory.counts
        if reply.action is Action.ANSWER:
            self._write(reply.data)
            counts[dns_key("tcp", message, reply.data)] += 1
        elif reply.action is Action.FORWARD and factory.forwarder is not None:
            self._inflight += 1
            forwarded = factory.forwarder.forward(message, tcp=True)
            forwarded.addCallback(self._write_forwarded, message)
        else:
            counts[dns_key("tcp", message, b"")] += 1
            return False  # not even a header: the stream is out of sync
        return True

    def _write_forwarded(self, data: bytes, query: bytes) -> None:
        self._inflight -= 1
        self.factory.counts[dns_key("tcp", query, data)] += 1
        if self._gone:
            return
        self._write(data)
        self.factory.slots.progress(self)
        if not self._buffer and not self._in_message:
            self.setTimeout(self.factory.idle_timeout)  # type: ignore[no-untyped-call]
        self._update_reading()
        if self._buffer:
            self._process(fresh=False)
        else:
            self._maybe_finish()

    def _write(self, data: bytes) -> None:
        if data:
            self._tx().write(len(data).to_bytes(2, "big") + data)

    def _closed(self, reason: str) -> None:
        metrics = self.factory.metrics
        if metrics is not None:
            metrics.tcp_closed.labels(reason).inc()

    def timeoutConnection(self) -> None:
        if self._in_message or self._gone:
            # A query past its deadline, or an idle close whose replies were never
            # read: cut at once.
            if not self._gone:
                self._closed("deadline")
            self._gone = True
            self._tx().abortConnection()
            return
        self._gone = True
        self._closed("idle")
        self._tx().loseConnection()  # after the replies written
        self.setTimeout(self.factory.idle_timeout)  # type: ignore[no-untyped-call]


class DnsTcpFactory(protocol.ServerFactory):
    protocol = DnsTcpProtocol  # type: ignore[assignment]

    def __init__(
        self,
        responder: Responder,
        refusals: DnsQueryLog,
        forwarder: UdpForwarder | None = None,
        metrics: SidecarMetrics | None = None,
        limits: SidecarLimits | None = None,
    ) -> None:
        self.responder = responder
        self.refusals = refusals
        self.forwarder = forwarder
        self.connections = 0
        self.metrics = metrics
        self.counts: defaultdict[DnsKey, int] = (
            metrics.dns if metrics is not None else defaultdict(int)
        )
        self.slots: Slots[DnsTcpProtocol] = Slots(1, 1)
        self.idle_timeout = self.query_timeout = 0.0
        self.apply(limits or SidecarLimits())

    def apply(self, limits: SidecarLimits) -> None:
        """Take the limits of ``sidecar.limits`` (at start and on reload)."""
        self.slots.total = limits.tcp_connections
        self.slots.per_address = limits.tcp_connections_per_address
        self.idle_timeout = limits.tcp_idle_timeout
        self.query_timeout = limits.tcp_query_timeout
