"""The sidecar's DNS listeners (Twisted, UDP and TCP) and upstream forwarding.

The answers come from :mod:`v6alt.dns_wire`; this module only
moves bytes. The UDP hot path is a dictionary lookup: a reply depends only on
the query bytes after the 2-byte ID, so replies already built are looked up by
those bytes and sent with the new ID spliced in, without parsing anything.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from typing import Any

from twisted.internet import protocol, udp
from twisted.protocols.policies import TimeoutMixin

from v6alt.dns_wire import Action, Reply, Responder

from .dns_forwarder import UdpForwarder
from .metrics import DnsKey, SidecarMetrics, dns_key

__all__ = [
    "DnsTcpFactory",
    "DnsTcpProtocol",
    "DnsUdpPort",
    "DnsUdpProtocol",
    "RefusalLog",
]

log = logging.getLogger("v6alt.sidecar.dns")

CACHE_ENTRIES = 8192
CACHE_MAX_KEY = 320  # longer packets are valid but unusual: not worth a cache slot
TCP_IDLE_TIMEOUT = 10.0
TCP_MAX_CONNECTIONS = 256
UDP_RECV_SIZE = 4096  # no real query is larger; a longer datagram is cut and gets FORMERR
UDP_READ_BURST = 256  # datagrams per reactor turn: TCP and HTTP still get their share

Address = tuple[str, int]


class RefusalLog:
    """One log line per refusal class per interval, with a count of the rest.

    Refusals are what an operator needs to see (a policy rule hit, a zone not
    served, malformed packets), but a flood must not turn into a log flood.
    """

    def __init__(
        self,
        logger: logging.Logger = log,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def note(self, log_class: str, peer: str) -> None:
        now = self._clock()
        last = self._last.get(log_class)
        if last is not None and now - last < self._interval:
            self._suppressed[log_class] = self._suppressed.get(log_class, 0) + 1
            return
        if len(self._last) > 1024:  # classes carry rule names; keep the map bounded
            self._last.clear()
            self._suppressed.clear()
        self._last[log_class] = now
        more = self._suppressed.pop(log_class, 0)
        tail = f" ({more} more of this class in the last {self._interval:.0f} s)" if more else ""
        self._logger.warning("dns query %s from %s%s", log_class, peer, tail)


class ReplyCache:
    """Bounded map of query bytes (after the ID) -> (reply bytes after the ID,
    the metrics key its answers are counted under).

    Oldest-inserted entries are evicted first: cheaper than an LRU on the hit
    path, and a flood of one-off names cannot grow it.
    """

    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self.entries = entries
        # OrderedDict: popping the oldest entry of a plain dict gets slower
        # with every deletion (it scans the deleted slots at its front).
        self.data: OrderedDict[bytes, tuple[bytes, DnsKey]] = OrderedDict()

    def store(self, packet: bytes, reply: bytes, key: DnsKey) -> None:
        if len(packet) > CACHE_MAX_KEY:
            return
        data = self.data
        if len(data) >= self.entries:
            data.popitem(last=False)
        data[packet[2:]] = (reply[2:], key)

    def clear(self) -> None:
        self.data.clear()


class DnsUdpPort(udp.Port):
    """Twisted's UDP port with the reply cache consulted inside the read loop.

    A cached reply costs one recvfrom, one dictionary lookup and one sendto,
    without a Python call per datagram; misses go to the protocol as usual.
    """

    protocol: DnsUdpProtocol

    @classmethod
    def adopt(cls, reactor: Any, sock: Any, proto: DnsUdpProtocol) -> DnsUdpPort:
        """Listen on an already bound socket (as ``reactor.adoptDatagramPort`` does)."""
        port: DnsUdpPort = cls._fromListeningDescriptor(  # type: ignore[no-untyped-call]
            reactor, sock.fileno(), sock.family, proto, maxPacketSize=UDP_RECV_SIZE
        )
        port.startListening()  # type: ignore[no-untyped-call]
        return port

    def doRead(self) -> None:
        proto = self.protocol
        lookup = proto.cache.data.get
        counts = proto.counts
        recvfrom = self.socket.recvfrom
        sendto = self.socket.sendto
        for _ in range(UDP_READ_BURST):
            try:
                data, addr = recvfrom(UDP_RECV_SIZE)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                return  # e.g. ECONNREFUSED from an ICMP error: read again next turn
            cached = lookup(data[2:])
            if cached is None:
                proto.datagramReceived(data, addr)
                continue
            # try/except, not contextlib.suppress: this line runs 100,000 times a second.
            try:  # noqa: SIM105
                sendto(data[:2] + cached[0], addr)
            except OSError:
                pass  # the client went away or the buffer is full: UDP, the client retries
            counts[cached[1]] += 1


class DnsUdpProtocol(protocol.DatagramProtocol):
    """UDP listener: cached replies first, then :class:`Responder`."""

    def __init__(
        self,
        responder: Responder,
        refusals: RefusalLog,
        forwarder: UdpForwarder | None = None,
        cache: ReplyCache | None = None,
        metrics: SidecarMetrics | None = None,
    ) -> None:
        self.responder = responder
        self.refusals = refusals
        self.forwarder = forwarder
        self.cache = cache if cache is not None else ReplyCache()
        self._lookup = self.cache.data.get
        # Query counts (SidecarMetrics.dns): the read loop increments them.
        self.counts: defaultdict[DnsKey, int] = (
            metrics.dns if metrics is not None else defaultdict(int)
        )
        self._sendto: Callable[[bytes, Address], object] | None = None

    def startProtocol(self) -> None:
        # Twisted's transport.write re-checks the address on every call; the
        # socket's own sendto is what the hot path needs.
        transport: Any = self.transport
        self._sendto = transport.socket.sendto

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        cached = self._lookup(datagram[2:])
        if cached is not None:
            self._send(datagram[:2] + cached[0], addr)
            self.counts[cached[1]] += 1
            return
        try:
            self._dispatch(datagram, self.responder.respond(datagram, udp=True), addr)
        except Exception:  # a bug must cost one packet, never the listener
            log.exception("dns: unexpected error answering a %d-byte packet", len(datagram))

    def _dispatch(self, datagram: bytes, reply: Reply, addr: Any) -> None:
        if reply.log_class is not None:
            self.refusals.note(reply.log_class, f"[{addr[0]}]:{addr[1]}")
        if reply.action is Action.ANSWER:
            if reply.cacheable and reply.log_class is None:
                self.cache.store(
                    datagram, reply.data, dns_key("udp", datagram, reply.data, cached=True)
                )
            self._send(reply.data, addr)
            self.counts[dns_key("udp", datagram, reply.data)] += 1
        elif reply.action is Action.FORWARD and self.forwarder is not None:
            self.forwarder.forward(datagram).addCallback(self._send_forwarded, datagram, addr)
        else:
            self.counts[dns_key("udp", datagram, b"")] += 1

    def _send_forwarded(self, data: bytes, query: bytes, addr: Any) -> None:
        if data:
            self._send(data, addr)
        self.counts[dns_key("udp", query, data)] += 1

    def _send(self, data: bytes, addr: Any) -> None:
        sendto = self._sendto
        if sendto is None:
            return
        # The client went away or the buffer is full: UDP, the client retries.
        with contextlib.suppress(OSError):
            sendto(data, addr)


class DnsTcpProtocol(protocol.Protocol, TimeoutMixin):
    """DNS over TCP: 2-byte length framing, pipelined queries, idle timeout."""

    factory: DnsTcpFactory

    def __init__(self) -> None:
        self._buffer = b""

    def _tx(self) -> Any:
        return self.transport

    def connectionMade(self) -> None:
        self.factory.connections += 1
        if self.factory.connections > TCP_MAX_CONNECTIONS:
            self._closed("refused")
            self._tx().loseConnection()
            return
        self.setTimeout(TCP_IDLE_TIMEOUT)  # type: ignore[no-untyped-call]

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.connections -= 1
        self.setTimeout(None)  # type: ignore[no-untyped-call]

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()  # type: ignore[no-untyped-call]
        buffer = self._buffer + data if self._buffer else data
        pos = 0
        # An offset, not re-slicing the buffer per message: a chunk full of
        # small pipelined queries stays linear.
        while len(buffer) - pos >= 2:
            end = pos + 2 + ((buffer[pos] << 8) | buffer[pos + 1])
            if len(buffer) < end:
                break
            if not self._handle(buffer[pos + 2 : end]):
                self._buffer = b""
                self._tx().loseConnection()
                return
            pos = end
        self._buffer = buffer[pos:]

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
            forwarded = factory.forwarder.forward(message, tcp=True)
            forwarded.addCallback(self._write_forwarded, message)
        else:
            counts[dns_key("tcp", message, b"")] += 1
            return False  # not even a header: the stream is out of sync
        return True

    def _write_forwarded(self, data: bytes, query: bytes) -> None:
        self._write(data)
        self.factory.counts[dns_key("tcp", query, data)] += 1

    def _write(self, data: bytes) -> None:
        if data:
            self._tx().write(len(data).to_bytes(2, "big") + data)

    def _closed(self, reason: str) -> None:
        metrics = self.factory.metrics
        if metrics is not None:
            metrics.tcp_closed.labels(reason).inc()

    def timeoutConnection(self) -> None:
        self._closed("idle")
        self._tx().loseConnection()


class DnsTcpFactory(protocol.ServerFactory):
    protocol = DnsTcpProtocol  # type: ignore[assignment]

    def __init__(
        self,
        responder: Responder,
        refusals: RefusalLog,
        forwarder: UdpForwarder | None = None,
        metrics: SidecarMetrics | None = None,
    ) -> None:
        self.responder = responder
        self.refusals = refusals
        self.forwarder = forwarder
        self.connections = 0
        self.metrics = metrics
        self.counts: defaultdict[DnsKey, int] = (
            metrics.dns if metrics is not None else defaultdict(int)
        )
