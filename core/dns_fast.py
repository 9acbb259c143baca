"""The fast path of the DNS answers: the common query shape, straight from the bytes.

Nearly every query a resolver or Prosody sends the sidecar has one shape: one
question for a name under ``v6.alt`` of class IN, no answer or authority
records, and at most an EDNS OPT record. :class:`FastPath` answers that shape
without building a :class:`v6alt.dns_wire.Query`: it reads the header and the
question name in place, decodes the address label on bytes
(:func:`v6alt.codec.lenient_label_value`), asks the policy with the address as
an integer, and builds the reply from the query's own question bytes plus a
precomputed record.

It answers only what needs no log line (an allowed address); for everything
else it returns None and the caller asks :meth:`Responder.respond`, the
general path, which also words and logs refusals. Its replies are
byte-identical to the general path's (tests/test_dns_fast.py compares the two
on random and hostile packets).

Pure: no sockets, no Twisted.
"""

from __future__ import annotations

from typing import Final, Protocol

from .codec import lenient_label_value
from .dns_wire import (
    ANSWER_TTL,
    CLASS_IN,
    MAX_UDP_PAYLOAD,
    TYPE_AAAA,
    TYPE_ANY,
    TYPE_AXFR,
    TYPE_IXFR,
    TYPE_OPT,
    soa_record,
)

__all__ = ["FastPath", "ValuePolicy"]

#: qdcount 1, ancount 0, nscount 0.
_COUNTS: Final = b"\x00\x01\x00\x00\x00\x00"
_APEX_WIRE: Final = b"\x02v6\x03alt\x00"
_CLASS_IN: Final = CLASS_IN.to_bytes(2, "big")
# The answer record: its owner a pointer to the question name at offset 12.
_AAAA_HEAD: Final = (
    b"\xc0\x0c"
    + TYPE_AAAA.to_bytes(2, "big")
    + _CLASS_IN
    + ANSWER_TTL.to_bytes(4, "big")
    + b"\x00\x10"
)
_OPT: Final = b"\x00" + TYPE_OPT.to_bytes(2, "big") + MAX_UDP_PAYLOAD.to_bytes(2, "big")
# The reply's OPT record, without and with the DO bit echoed.
_OPT_PLAIN: Final = _OPT + b"\x00\x00\x00\x00\x00\x00"
_OPT_DO: Final = _OPT + b"\x00\x00\x80\x00\x00\x00"
# Reply counts (after the 1 question): one answer / one authority record, OPT or not.
_ANSWER_COUNTS: Final = (b"\x00\x01\x00\x01\x00\x00\x00\x00", b"\x00\x01\x00\x01\x00\x00\x00\x01")
_NODATA_COUNTS: Final = (b"\x00\x01\x00\x00\x00\x01\x00\x00", b"\x00\x01\x00\x00\x00\x01\x00\x01")
_ADDRESS_TYPES: Final = frozenset((TYPE_AAAA, TYPE_ANY))  # answered with the address
_MAX_NAME: Final = 254  # wire bytes of a question name before its root label


class ValuePolicy(Protocol):
    """The part of :class:`v6alt.policy.Policy` the fast path asks."""

    def check_value(self, value: int) -> tuple[bool, str]: ...


class FastPath:
    """Answers the common query shape over UDP, or says None (ask the general path).

    ``recursion_available`` must be what the :class:`Responder` it stands in
    for sets (it forwards other zones).
    """

    __slots__ = ("_check", "_heads")

    def __init__(self, policy: ValuePolicy, *, recursion_available: bool = False) -> None:
        self._check = policy.check_value
        ra = 0x80 if recursion_available else 0
        # Reply flags and counts, by [kind << 3 | has_opt << 2 | CD << 1 | RD]: the
        # flags echo RD and CD, set QR and AA (and RA when forwarding).
        self._heads = tuple(
            bytes((0x84 | (index & 1), ra | ((index & 2) << 3)))
            + (_NODATA_COUNTS if index >> 3 else _ANSWER_COUNTS)[(index >> 2) & 1]
            for index in range(16)
        )

    def answer(self, packet: bytes) -> tuple[bytes, int] | None:
        """(the reply, its query type) for a query of the common shape; else None.

        The reply is the one :meth:`Responder.respond` gives the packet over
        UDP, and it carries no log line.
        """
        end = len(packet)
        # Header: a query (QR 0) with opcode QUERY, 1 question, no answer or
        # authority records, 0 or 1 additional record.
        if end < 17 or packet[2] & 0xF8 or packet[4:10] != _COUNTS or packet[10]:
            return None
        arcount = packet[11]
        if arcount > 1:
            return None
        # The question name: find where its last three labels start.
        length = packet[12]
        second = 13 + length
        if 0 < length < 64 and packet[second : second + 8].lower() == _APEX_WIRE:
            third = 12  # <label>.v6.alt, the usual name
            pos = second + 7
        else:
            pos = 12
            third = second = last = 0
            while True:
                length = packet[pos]
                if length == 0:
                    break
                if length & 0xC0:
                    return None
                third, second, last = second, last, pos
                pos += 1 + length
                if pos - 12 > _MAX_NAME or pos >= end:
                    return None
            if not third or packet[second : pos + 1].lower() != _APEX_WIRE:
                return None
        qend = pos + 5
        if qend > end or packet[qend - 2 : qend] != _CLASS_IN:
            return None
        qtype = (packet[pos + 1] << 8) | packet[pos + 2]
        if qtype in (TYPE_AXFR, TYPE_IXFR):
            return None
        if arcount:
            # One OPT record, owner the root, EDNS version 0, well-formed options.
            if (
                end < qend + 11
                or packet[qend] != 0
                or packet[qend + 1 : qend + 3] != b"\x00\x29"
                or packet[qend + 6] != 0
            ):
                return None
            opt_end = qend + 11 + ((packet[qend + 9] << 8) | packet[qend + 10])
            if opt_end != end:
                return None
            option = qend + 11
            while option < end:
                if option + 4 > end:
                    return None
                option += 4 + ((packet[option + 2] << 8) | packet[option + 3])
            if option != end:
                return None
            opt = _OPT_DO if packet[qend + 7] & 0x80 else _OPT_PLAIN
        elif qend != end:
            return None
        else:
            opt = b""
        value = lenient_label_value(packet[third + 1 : second])
        if value is None or not self._check(value)[0]:
            return None  # NXDOMAIN, logged: the general path's
        index = (packet[2] & 0x01) | ((packet[3] & 0x10) >> 3) | (arcount << 2)
        if qtype in _ADDRESS_TYPES:
            rdata = _AAAA_HEAD + value.to_bytes(16, "big")
        else:
            index |= 8
            rdata = soa_record(second)
        return b"".join((packet[:2], self._heads[index], packet[12:qend], rdata, opt)), qtype
