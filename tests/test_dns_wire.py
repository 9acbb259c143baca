"""Unit tests of the sidecar's DNS answers (pure: v6alt.dns_wire)."""

from __future__ import annotations

import struct
from ipaddress import IPv6Address
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from v6alt.codec import encode, to_reverse_pointer
from v6alt.config import parse_config
from v6alt.dns_wire import (
    ANSWER_TTL,
    MAX_UDP_PAYLOAD,
    NEGATIVE_TTL,
    Action,
    Responder,
    build_query,
)
from v6alt.policy import Policy

NAME = "fiabbgadu-e.v6.alt"
ADDRESS = IPv6Address("2a00:1098:3a0::1")
AAAA, A, NS, SOA, PTR, SRV, TLSA, HTTPS, ANY, AXFR = 28, 1, 2, 6, 12, 33, 52, 65, 255, 252


class RR(NamedTuple):
    name: str
    rtype: int
    rclass: int
    ttl: int
    rdata: bytes
    rdata_name: str | None  # decoded target for NS/PTR


class Message(NamedTuple):
    ident: int
    flags: int
    rcode: int
    question: bytes
    answers: list[RR]
    authority: list[RR]
    additional: list[RR]

    @property
    def aa(self) -> bool:
        return bool(self.flags & 0x0400)

    @property
    def tc(self) -> bool:
        return bool(self.flags & 0x0200)


def _name(data: bytes, pos: int) -> tuple[str, int]:
    labels: list[str] = []
    end = None
    for _ in range(128):
        length = data[pos]
        if length == 0:
            return ".".join(labels), end if end is not None else pos + 1
        if length & 0xC0 == 0xC0:
            if end is None:
                end = pos + 2
            pos = ((length & 0x3F) << 8) | data[pos + 1]
            continue
        labels.append(data[pos + 1 : pos + 1 + length].decode("latin-1"))
        pos += 1 + length
    raise AssertionError("compression loop")


def decode_message(data: bytes) -> Message:
    """An independent little reply decoder (so the tests do not trust dns_wire)."""
    ident, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", data)
    pos = 12
    qstart = pos
    for _ in range(qd):
        _, pos = _name(data, pos)
        pos += 4
    question = data[qstart:pos]
    sections: list[list[RR]] = []
    for count in (an, ns, ar):
        records = []
        for _ in range(count):
            owner, pos = _name(data, pos)
            rtype, rclass, ttl, length = struct.unpack_from("!HHIH", data, pos)
            pos += 10
            rdata = data[pos : pos + length]
            target = _name(data, pos)[0] if rtype in (NS, PTR) else None
            records.append(RR(owner, rtype, rclass, ttl, rdata, target))
            pos += length
        sections.append(records)
    assert pos == len(data), "trailing bytes in reply"
    return Message(ident, flags, flags & 0xF, question, *sections)


POLICY = Policy()


@pytest.fixture(scope="module")
def responder() -> Responder:
    return Responder(POLICY)


def ask(responder: Responder, name: str, qtype: int = AAAA, **kwargs: object) -> Message:
    query = build_query(name, qtype, ident=0x1234, **kwargs)  # type: ignore[arg-type]
    reply = responder.respond(query)
    assert reply.action is Action.ANSWER
    message = decode_message(reply.data)
    assert message.ident == 0x1234
    assert message.flags & 0x8000, "QR must be set"
    assert message.question == query[12 : 12 + len(message.question)], "question echoed as sent"
    return message


def test_aaaa_for_canonical_name(responder: Responder) -> None:
    m = ask(responder, NAME)
    assert m.rcode == 0 and m.aa
    assert m.flags & 0x0100, "RD copied"
    assert not m.flags & 0x0080, "no RA without forwarders"
    assert [(r.name, r.rtype, r.ttl, r.rdata) for r in m.answers] == [
        (NAME, AAAA, ANSWER_TTL, ADDRESS.packed)
    ]
    assert m.authority == [] and m.additional == []


@pytest.mark.parametrize(
    "spelling",
    [
        "FIABBGADU-E.V6.ALT",
        "FiAbBgAdU-e.v6.AlT",
        "fiabbgaduaaaaaaaaaaaaaaaae.v6.alt",  # unhyphenated
        "fiabbgadu-f.v6.alt",  # nonzero padding bits
        "fiabbgaduaaaaaaaa-e.v6.alt",  # the hyphen somewhere else in the run
        "groups.fiabbgadu-e.v6.alt",
        "a.B.c.fiabbgadu-e.v6.alt",
    ],
)
def test_lenient_spellings_and_subdomains(responder: Responder, spelling: str) -> None:
    m = ask(responder, spelling)
    assert m.rcode == 0
    assert [r.rdata for r in m.answers] == [ADDRESS.packed]
    assert m.answers[0].name == spelling, "owner name keeps the case as sent (0x20)"


@pytest.mark.parametrize("qtype", [A, SRV, TLSA, HTTPS, 16, 99])
def test_nodata_with_soa_for_other_types(responder: Responder, qtype: int) -> None:
    for name in (NAME, "_xmpp-server._tcp.fiabbgadu-e.v6.alt"):
        m = ask(responder, name, qtype)
        assert m.rcode == 0 and m.aa and m.answers == []
        assert [(r.name, r.rtype, r.ttl) for r in m.authority] == [("v6.alt", SOA, NEGATIVE_TTL)]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("not-a-label.v6.alt", "malformed"),
        ("fiab-bga-du.v6.alt", "malformed"),  # two hyphens
        ("fiabbgadu-e1.v6.alt", "malformed"),  # '1' is not base32
        ("a" * 27 + ".v6.alt", "malformed"),
        ("a-e.v6.alt", "loopback"),  # ::1
        ("72-e.v6.alt", "link-local"),  # fe80::1
        ("eaaq3o-e.v6.alt", "documentation"),  # 2001:db8::1
        ("7u-e.v6.alt", "ULA"),  # fd00::1
        ("7q-e.v6.alt", "cjdns"),  # fc00::1 without ranges.cjdns
    ],
)
def test_nxdomain(responder: Responder, name: str, reason: str) -> None:
    query = build_query(name, AAAA)
    reply = responder.respond(query)
    m = decode_message(reply.data)
    assert m.rcode == 3 and m.aa and m.answers == []
    assert [r.rtype for r in m.authority] == [SOA]
    assert reply.log_class is not None and reason.lower() in reply.log_class.lower()


def test_cjdns_allowed_when_configured() -> None:
    responder = Responder(Policy(parse_config({"ranges": {"cjdns": True}})))
    m = ask(responder, "7q-e.v6.alt")
    assert [r.rdata for r in m.answers] == [IPv6Address("fc00::1").packed]


def test_apex(responder: Responder) -> None:
    soa = ask(responder, "v6.alt", SOA)
    assert [(r.name, r.rtype) for r in soa.answers] == [("v6.alt", SOA)]
    serial_etc = struct.unpack("!IIIII", soa.answers[0].rdata[-20:])
    assert serial_etc[-1] == NEGATIVE_TTL
    ns = ask(responder, "V6.Alt", NS)
    assert [(r.name, r.rtype, r.rdata_name) for r in ns.answers] == [("V6.Alt", NS, "V6.Alt")]
    nodata = ask(responder, "v6.alt", A)
    assert nodata.rcode == 0 and nodata.answers == [] and nodata.authority[0].rtype == SOA


def test_any_is_minimal(responder: Responder) -> None:
    assert [r.rtype for r in ask(responder, NAME, ANY).answers] == [AAAA]
    assert [r.rtype for r in ask(responder, "v6.alt", ANY).answers] == [SOA]
    reverse = to_reverse_pointer(ADDRESS)
    assert [r.rtype for r in ask(responder, reverse, ANY).answers] == [PTR]


def test_ptr_for_allowed_address(responder: Responder) -> None:
    reverse = to_reverse_pointer(ADDRESS)
    m = ask(responder, reverse.upper(), PTR)
    assert m.rcode == 0 and m.aa
    assert [(r.rtype, r.ttl, r.rdata_name) for r in m.answers] == [(PTR, ANSWER_TTL, NAME)]
    other = ask(responder, reverse, AAAA)
    assert other.rcode == 0 and other.answers == []


@pytest.mark.parametrize(
    "name",
    [
        to_reverse_pointer("::1"),  # never dialled: not ours
        to_reverse_pointer("fd00::1"),
        "0.a.2.ip6.arpa",  # partial
        "example.org",
        "alt",
        "",  # the root
        "v6.alt.example",
    ],
)
def test_other_zones_refused_or_forwarded(responder: Responder, name: str) -> None:
    m = ask(responder, name, PTR if name.endswith("arpa") else A)
    assert m.rcode == 5 and not m.aa and m.answers == []
    forwarding = Responder(Policy(), forwarding=True)
    assert forwarding.respond(build_query(name, A)).action is Action.FORWARD


def test_forwarding_sets_ra_on_own_answers() -> None:
    m = ask(Responder(Policy(), forwarding=True), NAME)
    assert m.flags & 0x0080


def test_refused_for_other_classes_and_zone_transfers(responder: Responder) -> None:
    assert ask(responder, NAME, AAAA, qclass=3).rcode == 5  # CHAOS
    assert ask(responder, NAME, AXFR).rcode == 5
    assert ask(responder, "v6.alt", AXFR).rcode == 5


def test_edns_echoed(responder: Responder) -> None:
    m = ask(responder, NAME, edns_payload=4096, dnssec_ok=True)
    (opt,) = m.additional
    assert opt.name == "" and opt.rtype == 41
    assert opt.rclass == MAX_UDP_PAYLOAD
    assert opt.ttl == 0x8000, "DO copied, version 0, extended rcode 0"
    m = ask(responder, NAME, edns_payload=1232)
    assert m.additional[0].ttl == 0


def test_edns_version_1_gets_badvers(responder: Responder) -> None:
    query = bytearray(build_query(NAME, edns_payload=1232))
    query[-5] = 1  # version byte of the OPT TTL
    m = decode_message(responder.respond(bytes(query)).data)
    assert m.rcode == 0 and m.answers == []
    assert m.additional[0].ttl >> 24 == 1, "extended rcode 1 = BADVERS (16)"


def test_truncation_sets_tc_and_keeps_question(responder: Responder) -> None:
    query = build_query(NAME, edns_payload=1232)
    reply = responder.respond(query, udp=True, udp_limit=60)
    m = decode_message(reply.data)
    assert m.tc and m.answers == [] and m.question == query[12 : 12 + len(m.question)]
    assert len(m.additional) == 1, "OPT kept"
    tcp = decode_message(responder.respond(query, udp=False, udp_limit=60).data)
    assert not tcp.tc and len(tcp.answers) == 1


def test_longest_name_fits_512_without_edns(responder: Responder) -> None:
    name = ".".join(["x" * 63, "y" * 63, "z" * 63, "w" * 40, "fiabbgadu-e.v6.alt"])
    for qtype in (AAAA, TLSA):
        reply = responder.respond(build_query(name, qtype))
        m = decode_message(reply.data)
        assert not m.tc and len(reply.data) <= 512


def header(ident: int = 7, flags: int = 0x0100, counts: tuple[int, ...] = (1, 0, 0, 0)) -> bytes:
    return struct.pack("!HHHHHH", ident, flags, *counts)


QUESTION = build_query(NAME)[12:]


@pytest.mark.parametrize(
    ("packet", "rcode"),
    [
        (header(counts=(0, 0, 0, 0)), 1),
        (header(counts=(2, 0, 0, 0)) + QUESTION + QUESTION, 1),
        (header() + QUESTION[:-2], 1),  # truncated question
        (header() + b"\xc0\x0c\x00\x1c\x00\x01", 1),  # compression in the question
        (header() + b"\x40abc\x00\x00\x1c\x00\x01", 1),  # extended label type
        (header() + QUESTION + b"junk", 1),  # trailing bytes
        (header(counts=(1, 0, 0, 1)) + QUESTION, 1),  # missing additional record
        (
            header(counts=(1, 0, 0, 2))
            + build_query(NAME, edns_payload=512)[12:]
            + build_query(NAME, edns_payload=512)[-11:],
            1,
        ),  # two OPT records
        (
            header()
            + b"\x3f"
            + b"a" * 63
            + b"\x3f"
            + b"b" * 63
            + b"\x3f"
            + b"c" * 63
            + b"\x3f"
            + b"d" * 63
            + b"\x00\x00\x1c\x00\x01",
            1,
        ),  # name over 255 bytes
        (header(flags=0x1100) + QUESTION, 4),  # opcode 2 (STATUS)
        (header(flags=0x2900) + QUESTION, 4),  # opcode 5 (UPDATE)
    ],
)
def test_error_replies_are_header_only(responder: Responder, packet: bytes, rcode: int) -> None:
    reply = responder.respond(packet)
    assert reply.action is Action.ANSWER and reply.log_class is not None
    assert len(reply.data) == 12
    ident, flags = struct.unpack_from("!HH", reply.data)
    assert ident == 7 and flags & 0x8000 and flags & 0xF == rcode
    assert flags & 0x0100, "RD copied"


@pytest.mark.parametrize(
    "packet",
    [b"", b"\x00" * 11, header(flags=0x8100) + QUESTION],  # short, and a response (QR=1)
)
def test_dropped(responder: Responder, packet: bytes) -> None:
    assert responder.respond(packet).action is Action.DROP


def test_answer_depends_only_on_bytes_after_the_id(responder: Responder) -> None:
    a = responder.respond(build_query(NAME, ident=1))
    b = responder.respond(build_query(NAME, ident=2))
    assert a.cacheable and a.data[2:] == b.data[2:] and a.data[:2] != b.data[:2]


@pytest.mark.parametrize("address", ["200:cab8:deb4:ce60:4362:4492:e539:4b5", "2a00:1098:3a0::1"])
def test_answer_round_trips_the_codec(responder: Responder, address: str) -> None:
    m = ask(responder, encode(address))
    assert IPv6Address(m.answers[0].rdata) == IPv6Address(address)


def test_fuzz_smoke() -> None:
    from benchmarks import dns_fuzz

    dns_fuzz.fuzz_in_process(20_000, seed=7)


@given(
    address=st.integers(min_value=0, max_value=(1 << 128) - 1).map(IPv6Address),
    case_mask=st.integers(min_value=0, max_value=(1 << 40) - 1),
    subdomain=st.sampled_from(["", "groups.", "_xmpp-server._tcp.", "a.b."]),
)
@settings(max_examples=300, deadline=None)
def test_every_address_answers_per_policy(
    address: IPv6Address, case_mask: int, subdomain: str
) -> None:
    responder = Responder(POLICY)
    name = subdomain + encode(address)
    spelled = "".join(c.upper() if case_mask >> i & 1 else c for i, c in enumerate(name))
    query = build_query(spelled, AAAA, ident=9)
    m = decode_message(responder.respond(query).data)
    assert m.question == query[12:], "question echoed byte for byte"
    if POLICY.check_address(address)[0]:
        assert m.rcode == 0 and [r.rdata for r in m.answers] == [address.packed]
        ptr = decode_message(responder.respond(build_query(to_reverse_pointer(address), PTR)).data)
        assert [r.rdata_name for r in ptr.answers] == [encode(address)]
    else:
        assert m.rcode == 3 and m.answers == []


@given(st.binary(min_size=0, max_size=600))
@settings(max_examples=500, deadline=None)
def test_arbitrary_bytes_never_raise(packet: bytes) -> None:
    reply = Responder(POLICY, forwarding=True).respond(packet)
    if reply.action is Action.ANSWER and len(reply.data) > 12:
        decode_message(reply.data)  # whatever it answers is well-formed
