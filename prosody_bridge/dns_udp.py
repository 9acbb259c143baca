"""The sidecar's UDP DNS listener: the reply cache, the fast path, the general path.

The UDP hot path is a dictionary lookup: a reply depends only on the query
bytes after the 2-byte ID, so replies already built are looked up by those
bytes and sent with the new ID spliced in, without parsing anything. A
query not in that cache goes to :class:`v6alt.dns_fast.FastPath` (the
common shape, answered from the bytes), and only when that declines to the
general :class:`v6alt.dns_wire.Responder`, which also words the refusals
for the rate-limited log.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from typing import Any

from twisted.internet import protocol, udp

from v6alt.dns_fast import FastPath
from v6alt.dns_wire import Action, Reply, Responder

from .dns_forwarder import UdpForwarder
from .dns_query_log import DnsQueryLog
from .metrics import QTYPE_NAMES, DnsKey, SidecarMetrics, dns_key
from .udp_batch import BatchUnavailable, UdpBatch, open_batch

__all__ = ["CACHE_ENTRIES", "DnsUdpPort", "DnsUdpProtocol", "ReplyCache"]

log = logging.getLogger("v6alt.sidecar.dns")

CACHE_ENTRIES = 8192
CACHE_MAX_KEY = 320  # longer packets are valid but unusual: not worth a cache slot
UDP_RECV_SIZE = 4096  # no real query is larger; a longer datagram is cut and gets FORMERR
UDP_READ_BURST = 256  # datagrams per reactor turn: TCP and HTTP still get their share
UDP_BATCH = 64  # datagrams per recvmmsg/sendmmsg
#: Set to 0 to read and answer one datagram per system call (docs/dns.md).
BATCH_VARIABLE = "V6ALT_UDP_BATCH"

Address = tuple[str, int]


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

    A cached reply costs one dictionary lookup, without a Python call per
    datagram; where the system has ``recvmmsg`` (Linux) datagrams are read and
    answered a batch per system call (:mod:`.udp_batch`), elsewhere one
    ``recvfrom`` and one ``sendto`` each. Misses go to the protocol as usual.
    """

    protocol: DnsUdpProtocol
    batch: UdpBatch | None = None

    @classmethod
    def adopt(cls, reactor: Any, sock: Any, proto: DnsUdpProtocol) -> DnsUdpPort:
        """Listen on an already bound socket (as ``reactor.adoptDatagramPort`` does)."""
        port: DnsUdpPort = cls._fromListeningDescriptor(  # type: ignore[no-untyped-call]
            reactor, sock.fileno(), sock.family, proto, maxPacketSize=UDP_RECV_SIZE
        )
        port.startListening()  # type: ignore[no-untyped-call]
        if os.environ.get(BATCH_VARIABLE, "").lower() not in ("0", "off", "no", "false"):
            port.batch = open_batch(port.socket, UDP_BATCH, UDP_RECV_SIZE)
        return port

    def doRead(self) -> None:
        if self.batch is None:
            self._read_one_by_one()
            return
        try:
            self._read_batches(self.batch)
        except BatchUnavailable as exc:
            log.warning("dns: %s; reading UDP one datagram at a time from now on", exc)
            self.batch = None

    def _read_batches(self, batch: UdpBatch) -> None:
        proto = self.protocol
        lookup = proto.cache.data.get
        counts = proto.counts
        for _ in range(UDP_READ_BURST // UDP_BATCH):
            received = batch.receive()
            if not received:
                return
            try:
                for slot in batch.reply_from_table(received, lookup, counts):
                    data = batch.datagram(slot)
                    reply = proto.fast_answer(data)
                    if reply is not None and batch.reply(slot, reply):
                        continue
                    address = batch.address(slot)
                    if address is None:
                        continue
                    if reply is None:
                        proto.general(data, address)
                    else:  # longer than a batch slot
                        proto.send(reply, address)
            finally:
                batch.flush()
            if received < UDP_BATCH:
                return  # drained: another recvmmsg would only say EAGAIN

    def _read_one_by_one(self) -> None:
        proto = self.protocol
        lookup = proto.cache.data.get
        fast_answer = proto.fast_answer
        counts = proto.counts
        recvfrom = self.socket.recvfrom
        # Replies go out after the burst is read: sent back to back, they reach a
        # client that is still awake, which costs the kernel less than one wake-up each.
        replies: list[tuple[bytes, Address]] = []
        add = replies.append
        try:
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
                if cached is not None:
                    add((data[:2] + cached[0], addr))
                    counts[cached[1]] += 1
                    continue
                reply = fast_answer(data)
                if reply is None:
                    proto.general(data, addr)
                else:
                    add((reply, addr))
        finally:
            sendto = self.socket.sendto
            for reply, addr in replies:
                # try/except, not contextlib.suppress: this line runs 100,000 times a second.
                try:  # noqa: SIM105
                    sendto(reply, addr)
                except OSError:
                    pass  # the client went away or the buffer is full: UDP, the client retries


class DnsUdpProtocol(protocol.DatagramProtocol):
    """UDP listener: cached replies first, then :class:`Responder`."""

    def __init__(
        self,
        responder: Responder,
        refusals: DnsQueryLog,
        forwarder: UdpForwarder | None = None,
        cache: ReplyCache | None = None,
        metrics: SidecarMetrics | None = None,
    ) -> None:
        self.refusals = refusals
        self.forwarder = forwarder
        self.cache = cache if cache is not None else ReplyCache()
        self._lookup = self.cache.data.get
        #: query type -> (its count key, its count key when answered from the cache)
        self.fast_keys: dict[int, tuple[DnsKey, DnsKey]] = {}
        self.responder = responder
        # Query counts (SidecarMetrics.dns): the read loop increments them.
        self.counts: defaultdict[DnsKey, int] = (
            metrics.dns if metrics is not None else defaultdict(int)
        )
        self._sendto: Callable[[bytes, Address], object] | None = None

    @property
    def responder(self) -> Responder:
        return self._responder

    @responder.setter
    def responder(self, responder: Responder) -> None:
        """Set at start and on reload: the fast path follows the responder's policy."""
        self._responder = responder
        self.fast: FastPath = FastPath(responder.policy, recursion_available=responder.forwarding)

    def fast_key(self, qtype: int) -> tuple[DnsKey, DnsKey]:
        """The count keys of a fast-path answer to ``qtype`` (always NOERROR):
        not cached, then cached."""
        name = QTYPE_NAMES.get(qtype, "other")
        keys = ("udp", name, "NOERROR", False), ("udp", name, "NOERROR", True)
        if name != "other":  # a fixed set: the table stays small whatever the queries say
            self.fast_keys[qtype] = keys
        return keys

    def startProtocol(self) -> None:
        # Twisted's transport.write re-checks the address on every call; the
        # socket's own sendto is what the hot path needs.
        transport: Any = self.transport
        self._sendto = transport.socket.sendto

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        cached = self._lookup(datagram[2:])
        if cached is not None:
            self.send(datagram[:2] + cached[0], addr)
            self.counts[cached[1]] += 1
            return
        reply = self.fast_answer(datagram)
        if reply is None:
            self.general(datagram, addr)
        else:
            self.send(reply, addr)

    def fast_answer(self, datagram: bytes) -> bytes | None:
        """The fast path's reply to ``datagram``, counted and stored in the reply
        cache; None when the general path must answer it."""
        try:
            answered = self.fast.answer(datagram)
        except Exception:  # a bug must cost one packet, never the listener
            log.exception("dns: fast path failed on a %d-byte packet", len(datagram))
            return None
        if answered is None:
            return None
        reply, qtype = answered
        keys = self.fast_keys.get(qtype) or self.fast_key(qtype)
        self.counts[keys[0]] += 1
        self.cache.store(datagram, reply, keys[1])
        return reply

    def general(self, datagram: bytes, addr: Any) -> None:
        """Answer with the general :class:`Responder` (what the fast path declined)."""
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
            self.send(reply.data, addr)
            self.counts[dns_key("udp", datagram, reply.data)] += 1
        elif reply.action is Action.FORWARD and self.forwarder is not None:
            self.forwarder.forward(datagram).addCallback(self._send_forwarded, datagram, addr)
        else:
            self.counts[dns_key("udp", datagram, b"")] += 1

    def _send_forwarded(self, data: bytes, query: bytes, addr: Any) -> None:
        if data:
            self.send(data, addr)
        self.counts[dns_key("udp", query, data)] += 1

    def send(self, data: bytes, addr: Any) -> None:
        """Send one datagram; a failure is ignored (UDP: the client retries)."""
        sendto = self._sendto
        if sendto is None:
            return
        with contextlib.suppress(OSError):
            sendto(data, addr)
