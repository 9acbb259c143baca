"""DNS wire format of the .v6.alt names: parse one query, build its answer.

Pure (no sockets, no Twisted) so it can be unit-tested and fuzzed in-process.
The sidecar is authoritative for ``v6.alt`` and for the ``ip6.arpa`` names of
addresses the policy allows; every answer is a pure function of the question
and the config, which is what lets the server cache whole replies.

Only the question and the OPT record of a query are interpreted; the answer
owner names are compression pointers into the echoed question, so the name
comes back exactly as it was sent (case included, for 0x20 randomisation).
"""

from __future__ import annotations

import struct
from enum import Enum
from functools import lru_cache
from ipaddress import IPv6Address
from typing import Final, NamedTuple, Protocol

from .codec import AddressLike, decode_label, encode

__all__ = [
    "ANSWER_TTL",
    "MAX_UDP_PAYLOAD",
    "NEGATIVE_TTL",
    "Action",
    "AddressPolicy",
    "FormatError",
    "Query",
    "Reply",
    "Responder",
    "build_query",
    "parse_query",
    "rcode_reply",
    "soa_record",
]

ANSWER_TTL: Final = 86400  # an address never changes under its name
NEGATIVE_TTL: Final = 3600  # SOA TTL and minimum: bounds caching of policy refusals
MAX_UDP_PAYLOAD: Final = 1232  # what we advertise (DNS flag day 2020)
MIN_UDP_PAYLOAD: Final = 512

TYPE_A: Final = 1
TYPE_NS: Final = 2
TYPE_SOA: Final = 6
TYPE_PTR: Final = 12
TYPE_AAAA: Final = 28
TYPE_OPT: Final = 41
TYPE_IXFR: Final = 251
TYPE_AXFR: Final = 252
TYPE_ANY: Final = 255
CLASS_IN: Final = 1

RCODE_NOERROR: Final = 0
RCODE_FORMERR: Final = 1
RCODE_SERVFAIL: Final = 2
RCODE_NXDOMAIN: Final = 3
RCODE_NOTIMP: Final = 4
RCODE_REFUSED: Final = 5
EXT_RCODE_BADVERS: Final = 1  # upper 8 bits of the 12-bit rcode 16

_HEADER: Final = struct.Struct("!HBBHHHH")
_RR_FIXED: Final = struct.Struct("!HHIH")
_HEX: Final = frozenset(b"0123456789abcdef")
_APEX: Final = (b"v6", b"alt")
_REVERSE: Final = (b"ip6", b"arpa")
_DO_BIT: Final = 0x8000
_SOA_SERIAL: Final = 1
# refresh, retry, expire, minimum: only the minimum (negative TTL) matters here.
_SOA_TIMERS: Final = struct.pack("!IIIII", _SOA_SERIAL, 86400, 3600, 604800, NEGATIVE_TTL)
_SOA_RNAME_LABEL: Final = b"\x0ahostmaster"


class FormatError(ValueError):
    """The packet has a header but is not a well-formed query."""


class AddressPolicy(Protocol):
    """The part of :class:`v6alt.policy.Policy` the DNS answers depend on."""

    def check_address(self, address: AddressLike) -> tuple[bool, str]: ...

    def check_value(self, value: int) -> tuple[bool, str]: ...


class Action(Enum):
    ANSWER = "answer"  # send Reply.data
    DROP = "drop"  # send nothing
    FORWARD = "forward"  # not our zone: hand the query to an upstream server


class Reply(NamedTuple):
    action: Action
    data: bytes
    # Set for refused, malformed and policy-denied queries: the class of the
    # refusal, for rate-limited logging. None for ordinary answers.
    log_class: str | None = None
    # True when the reply is a pure function of the query bytes after the ID.
    cacheable: bool = False


_DROP: Final = Reply(Action.DROP, b"", None, False)
_FORWARD: Final = Reply(Action.FORWARD, b"", None, False)


class Query(NamedTuple):
    """The parts of a query that the answer depends on."""

    ident: int
    flags1: int  # header byte 2 (QR, opcode, AA, TC, RD)
    flags2: int  # header byte 3 (RA, Z, AD, CD, rcode)
    question: bytes  # the question section exactly as sent
    labels: tuple[bytes, ...]  # the qname labels as sent
    offsets: tuple[int, ...]  # packet offset of each label (for compression pointers)
    qtype: int
    qclass: int
    edns: bool
    edns_version: int
    udp_payload: int  # the requestor's payload size (512 without EDNS)
    dnssec_ok: bool


def _skip_name(packet: bytes, pos: int, end: int) -> int:
    """Return the offset after a (possibly compressed) name in a record."""
    while True:
        if pos >= end:
            raise FormatError("name runs past the end of the packet")
        length = packet[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            if pos + 2 > end:
                raise FormatError("truncated compression pointer")
            return pos + 2
        if length & 0xC0:
            raise FormatError("unknown label type")
        pos += 1 + length


def _check_options(packet: bytes, pos: int, end: int) -> None:
    while pos < end:
        if pos + 4 > end:
            raise FormatError("truncated EDNS option")
        length = (packet[pos + 2] << 8) | packet[pos + 3]
        pos += 4 + length
    if pos != end:
        raise FormatError("EDNS option runs past its record")


def parse_query(packet: bytes) -> Query:
    """Parse a query of at least 12 bytes; raise :class:`FormatError` when malformed."""
    end = len(packet)
    ident, flags1, flags2, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(packet)
    if qdcount != 1:
        raise FormatError(f"{qdcount} questions; exactly one is supported")
    pos = 12
    labels: list[bytes] = []
    offsets: list[int] = []
    while True:
        if pos >= end:
            raise FormatError("question name runs past the end of the packet")
        length = packet[pos]
        if length == 0:
            pos += 1
            break
        if length & 0xC0:
            raise FormatError("compression or extended label in the question")
        offsets.append(pos)
        labels.append(packet[pos + 1 : pos + 1 + length])
        pos += 1 + length
        if pos - 12 > 254:
            raise FormatError("question name longer than 255 bytes")
    if pos + 4 > end:
        raise FormatError("truncated question")
    qtype = (packet[pos] << 8) | packet[pos + 1]
    qclass = (packet[pos + 2] << 8) | packet[pos + 3]
    qend = pos + 4
    pos = qend
    for _ in range(ancount + nscount):
        pos = _skip_name(packet, pos, end) + 10
        if pos > end:
            raise FormatError("truncated record")
        pos += (packet[pos - 2] << 8) | packet[pos - 1]
    edns = False
    version = 0
    payload = MIN_UDP_PAYLOAD
    dnssec_ok = False
    for _ in range(arcount):
        start = pos
        pos = _skip_name(packet, pos, end) + 10
        if pos > end:
            raise FormatError("truncated additional record")
        rtype, rclass, ttl, rdlength = _RR_FIXED.unpack_from(packet, pos - 10)
        if pos + rdlength > end:
            raise FormatError("record data runs past the end of the packet")
        if rtype == TYPE_OPT:
            if edns:
                raise FormatError("more than one OPT record")
            if pos - 10 != start + 1 or packet[start] != 0:
                raise FormatError("OPT record owner is not the root")
            _check_options(packet, pos, pos + rdlength)
            edns = True
            version = (ttl >> 16) & 0xFF
            payload = max(MIN_UDP_PAYLOAD, rclass)
            dnssec_ok = bool(ttl & _DO_BIT)
        pos += rdlength
    if pos != end:
        raise FormatError("trailing bytes after the last record")
    return Query(
        ident,
        flags1,
        flags2,
        packet[12:qend],
        tuple(labels),
        tuple(offsets),
        qtype,
        qclass,
        edns,
        version,
        payload,
        dnssec_ok,
    )


def _opt_record(dnssec_ok: bool, ext_rcode: int = 0) -> bytes:
    ttl = (ext_rcode << 24) | (_DO_BIT if dnssec_ok else 0)
    return b"\x00" + _RR_FIXED.pack(TYPE_OPT, MAX_UDP_PAYLOAD, ttl, 0)


def _header(ident: int, flags1: int, flags2: int, counts: tuple[int, int, int, int]) -> bytes:
    return _HEADER.pack(ident, flags1, flags2, *counts)


def rcode_reply(packet: bytes, rcode: int) -> bytes | None:
    """A header-only error reply (FORMERR, NOTIMP, SERVFAIL...) to ``packet``.

    Echoes the ID, opcode and RD; carries no question, so it is never larger
    than 12 bytes. None when there is no header to answer.
    """
    if len(packet) < 12:
        return None
    flags1 = 0x80 | (packet[2] & 0x79)  # QR + opcode + RD
    return _header((packet[0] << 8) | packet[1], flags1, rcode, (0, 0, 0, 0))


def _label_text(label: bytes) -> str | None:
    try:
        return label.decode("ascii").lower()
    except UnicodeDecodeError:
        return None


def _name_wire(name: str) -> bytes:
    out = bytearray()
    for label in name.split("."):
        raw = label.encode("ascii")
        out.append(len(raw))
        out += raw
    out.append(0)
    return bytes(out)


def _reverse_address(lower: tuple[bytes, ...]) -> IPv6Address | None:
    if len(lower) != 34:
        return None
    nibbles = lower[:32]
    if any(len(n) != 1 or n[0] not in _HEX for n in nibbles):
        return None
    return IPv6Address(int(b"".join(reversed(nibbles)), 16))


# Answer owner: a pointer to the question name at offset 12.
_AAAA_HEAD: Final = b"\xc0\x0c" + _RR_FIXED.pack(TYPE_AAAA, CLASS_IN, ANSWER_TTL, 16)


@lru_cache(maxsize=256)
def soa_record(apex_offset: int) -> bytes:
    """The v6.alt SOA record, its owner a pointer to where ``v6.alt`` sits in the question."""
    apex = struct.pack("!H", 0xC000 | apex_offset)
    rdata = apex + _SOA_RNAME_LABEL + apex + _SOA_TIMERS
    return apex + _RR_FIXED.pack(TYPE_SOA, CLASS_IN, NEGATIVE_TTL, len(rdata)) + rdata


class _Section(NamedTuple):
    rcode: int
    authoritative: bool
    answers: tuple[bytes, ...]
    authority: tuple[bytes, ...]
    log_class: str | None


class Responder:
    """Answers queries for ``v6.alt`` and allowed ``ip6.arpa`` names.

    ``forwarding`` says whether queries for other zones are handed to upstream
    servers (:attr:`Action.FORWARD`) or refused.
    """

    def __init__(self, policy: AddressPolicy, *, forwarding: bool = False) -> None:
        self._policy = policy
        self.policy = policy
        self.forwarding = forwarding
        self._ra = 0x80 if forwarding else 0

    def respond(self, packet: bytes, *, udp: bool = True, udp_limit: int | None = None) -> Reply:
        """Answer one query packet.

        ``udp_limit`` caps the UDP reply size below the requestor's payload
        size (tests use it to exercise truncation).
        """
        if len(packet) < 12:
            return _DROP
        if packet[2] & 0x80:
            return _DROP  # a response, not a query: never answer (reflection loops)
        if packet[2] & 0x78:
            data = rcode_reply(packet, RCODE_NOTIMP)
            return Reply(Action.ANSWER, data or b"", "notimp: opcode not QUERY", True)
        try:
            query = parse_query(packet)
        except FormatError as exc:
            data = rcode_reply(packet, RCODE_FORMERR)
            return Reply(Action.ANSWER, data or b"", f"formerr: {exc}", True)
        if query.edns and query.edns_version != 0:
            body = _header(query.ident, 0x80 | (query.flags1 & 0x01), 0, (1, 0, 0, 1))
            body += query.question + _opt_record(query.dnssec_ok, EXT_RCODE_BADVERS)
            return Reply(Action.ANSWER, body, "badvers: EDNS version not 0", True)
        section = self._answer(query)
        if section is None:
            if self.forwarding:
                return _FORWARD
            section = _Section(RCODE_REFUSED, False, (), (), "refused: zone not served")
        limit = 65535
        if udp:
            limit = query.udp_payload if query.edns else MIN_UDP_PAYLOAD
            limit = min(limit, MAX_UDP_PAYLOAD)
            if udp_limit is not None:
                limit = min(limit, udp_limit)
        data = self._build(query, section, limit)
        return Reply(Action.ANSWER, data, section.log_class, True)

    def _build(self, query: Query, section: _Section, limit: int) -> bytes:
        flags1 = 0x80 | (0x04 if section.authoritative else 0) | (query.flags1 & 0x01)
        flags2 = self._ra | (query.flags2 & 0x10) | section.rcode
        opt = _opt_record(query.dnssec_ok) if query.edns else b""
        counts = (1, len(section.answers), len(section.authority), 1 if opt else 0)
        data = b"".join(
            (
                _header(query.ident, flags1, flags2, counts),
                query.question,
                *section.answers,
                *section.authority,
                opt,
            )
        )
        if len(data) <= limit:
            return data
        # Does not fit: the question (and OPT) only, with TC set, so the
        # client retries over TCP.
        counts = (1, 0, 0, 1 if opt else 0)
        return _header(query.ident, flags1 | 0x02, flags2, counts) + query.question + opt

    def _answer(self, query: Query) -> _Section | None:
        if query.qclass != CLASS_IN:
            return _Section(RCODE_REFUSED, False, (), (), f"refused: class {query.qclass}")
        labels = query.labels
        if len(labels) < 2:
            return None
        tail = (labels[-2].lower(), labels[-1].lower())
        if tail == _APEX:
            return self._answer_v6alt(query, labels)
        if tail == _REVERSE:
            return self._answer_reverse(query, tuple(label.lower() for label in labels))
        return None

    def _answer_v6alt(self, query: Query, labels: tuple[bytes, ...]) -> _Section:
        qtype = query.qtype
        soa = soa_record(query.offsets[-2])
        if qtype in (TYPE_AXFR, TYPE_IXFR):
            return _Section(RCODE_REFUSED, False, (), (), "refused: zone transfer")
        if len(labels) == 2:
            if qtype in (TYPE_SOA, TYPE_ANY):
                return _Section(RCODE_NOERROR, True, (b"\xc0\x0c" + soa[2:],), (), None)
            if qtype == TYPE_NS:
                ns = b"\xc0\x0c" + _RR_FIXED.pack(TYPE_NS, CLASS_IN, ANSWER_TTL, 2) + b"\xc0\x0c"
                return _Section(RCODE_NOERROR, True, (ns,), (), None)
            return _Section(RCODE_NOERROR, True, (), (soa,), None)
        text = _label_text(labels[-3])
        address: IPv6Address | None = None
        if text is not None:
            try:
                address = decode_label(text, lenient=True)
            except ValueError:
                address = None
        if address is None:
            return _Section(RCODE_NXDOMAIN, True, (), (soa,), "nxdomain: malformed v6.alt label")
        allowed, rule = self._policy.check_address(address)
        if not allowed:
            return _Section(RCODE_NXDOMAIN, True, (), (soa,), f"nxdomain: {rule}")
        if qtype in (TYPE_AAAA, TYPE_ANY):
            return _Section(RCODE_NOERROR, True, (_AAAA_HEAD + address.packed,), (), None)
        return _Section(RCODE_NOERROR, True, (), (soa,), None)

    def _answer_reverse(self, query: Query, lower: tuple[bytes, ...]) -> _Section | None:
        address = _reverse_address(lower)
        if address is None:
            return None
        allowed, _rule = self._policy.check_address(address)
        if not allowed:
            return None  # not ours to answer: the normal reverse tree (or REFUSED)
        if query.qtype in (TYPE_PTR, TYPE_ANY):
            target = _name_wire(encode(address))
            rr = b"\xc0\x0c" + _RR_FIXED.pack(TYPE_PTR, CLASS_IN, ANSWER_TTL, len(target))
            return _Section(RCODE_NOERROR, True, (rr + target,), (), None)
        if query.qtype in (TYPE_AXFR, TYPE_IXFR):
            return _Section(RCODE_REFUSED, False, (), (), "refused: zone transfer")
        return _Section(RCODE_NOERROR, True, (), (), None)


def build_query(
    name: str,
    qtype: int = TYPE_AAAA,
    *,
    ident: int = 0,
    qclass: int = CLASS_IN,
    edns_payload: int | None = None,
    dnssec_ok: bool = False,
    recursion_desired: bool = True,
) -> bytes:
    """Build a plain query (for tests, benchmarks and the fuzzer)."""
    stripped = name.rstrip(".")
    qname = _name_wire(stripped) if stripped else b"\x00"
    flags1 = 0x01 if recursion_desired else 0
    arcount = 0 if edns_payload is None else 1
    packet = (
        _header(ident, flags1, 0, (1, 0, 0, arcount)) + qname + struct.pack("!HH", qtype, qclass)
    )
    if edns_payload is not None:
        ttl = _DO_BIT if dnssec_ok else 0
        packet += b"\x00" + _RR_FIXED.pack(TYPE_OPT, edns_payload, ttl, 0)
    return packet
