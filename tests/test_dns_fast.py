"""The DNS fast path (v6alt.dns_fast) against the general path (v6alt.dns_wire).

Every packet the fast path answers must get exactly the bytes the general
path gives it over UDP, with no log line; every other packet it must decline
(None). The common shapes must be answered by the fast path (or it would be
no faster), and random, mutated and hostile packets must never make the two
disagree.
"""

from __future__ import annotations

import struct
from ipaddress import IPv6Address

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.vectors import VECTORS
from v6alt.codec import decode_label, encode, lenient_label_value
from v6alt.config import parse_config
from v6alt.dns_fast import FastPath
from v6alt.dns_wire import Action, Responder, build_query
from v6alt.errors import V6AltNameError
from v6alt.policy import Policy

AAAA, A, NS, SOA, MX, TXT, SRV, HTTPS, ANY, AXFR, IXFR, OPT = (
    28,
    1,
    2,
    6,
    15,
    16,
    33,
    65,
    255,
    252,
    251,
    41,
)
ALLOWED = "fiabbgadu-e.v6.alt"  # 2a00:1098:3a0::1, global unicast
YGG = "aiamvog6wthgaq3cisjokoiewu.v6.alt"  # 200:cab8:..., Yggdrasil
DENIED = "a-e.v6.alt"  # ::1, never dialled
CJDNS = encode("fc00::1")
POLICIES = {
    "default": Policy(),
    "cjdns": Policy(parse_config({"ranges": {"cjdns": True}})),
}


def general(responder: Responder, packet: bytes) -> bytes | None:
    """The general path's UDP reply when it is an answer with no log line, else None."""
    reply = responder.respond(packet, udp=True)
    if reply.action is not Action.ANSWER or reply.log_class is not None:
        return None
    return reply.data


def agree(packet: bytes, *, forwarding: bool = False, policy: str = "default") -> bytes | None:
    """Assert the fast path declines the packet or answers it as the general path does."""
    responder = Responder(POLICIES[policy], forwarding=forwarding)
    fast = FastPath(POLICIES[policy], recursion_available=forwarding)
    answered = fast.answer(packet)
    if answered is None:
        return None
    reply, qtype = answered
    assert reply == general(responder, packet), packet.hex()
    assert qtype == qtype_of(packet)
    return reply


def qtype_of(packet: bytes) -> int:
    pos = 12
    while packet[pos]:
        pos += 1 + packet[pos]
    return (packet[pos + 1] << 8) | packet[pos + 2]


COMMON = [
    build_query(name, qtype, ident=ident, edns_payload=payload, dnssec_ok=do, recursion_desired=rd)
    for name in (
        ALLOWED,
        YGG,
        "FIABBGADU-E.V6.ALT",  # 0x20 randomisation: any case, echoed
        "FiAbBgAdU-e.v6.AlT",
        "_xmpp-server._tcp.fiabbgadu-e.v6.alt",  # subdomains: the last label carries the address
        "a.b.c.d.fiabbgadu-e.v6.alt",
        "fiabbgaduaaaaaaaaaaaaaaaae.v6.alt",  # lenient: unhyphenated spelling
        "fiabbgadu-f.v6.alt",  # lenient: nonzero padding bits
    )
    for qtype in (AAAA, A, ANY, MX, TXT, SRV, HTTPS, SOA, NS)
    for payload, do in ((None, False), (512, False), (1232, True), (4096, False), (65535, True))
    for ident, rd in ((0, True), (0xBEEF, False))
]


@pytest.mark.parametrize("forwarding", [False, True])
def test_common_shapes_take_the_fast_path_with_the_same_bytes(forwarding: bool) -> None:
    for packet in COMMON:
        reply = agree(packet, forwarding=forwarding)
        assert reply is not None, f"the fast path declined a common query: {packet.hex()}"


def test_an_aaaa_answer_carries_the_address() -> None:
    fast = FastPath(Policy()).answer(build_query(ALLOWED, AAAA, ident=7))
    assert fast is not None
    assert fast[0][:2] == b"\x00\x07" and fast[0].endswith(IPv6Address("2a00:1098:3a0::1").packed)


@pytest.mark.parametrize(
    "packet",
    [
        build_query(DENIED, AAAA),  # refused by the policy: NXDOMAIN, logged
        build_query(CJDNS, AAAA),  # cjdns off by default
        build_query("not-base32!.v6.alt", AAAA),  # malformed label: NXDOMAIN, logged
        build_query("a--b.v6.alt", AAAA),
        build_query("x" * 27 + ".v6.alt", AAAA),
        build_query("v6.alt", AAAA),  # the apex
        build_query("v6.alt", SOA),
        build_query(ALLOWED, AXFR),  # zone transfers: refused, logged
        build_query(ALLOWED, IXFR),
        build_query(ALLOWED, AAAA, qclass=3),  # CHAOS: refused
        build_query("example.com", AAAA),  # another zone: forwarded or refused
        build_query("1.0.0.0.ip6.arpa", 12),
        build_query(ALLOWED, AAAA)[:-1],  # truncated question
        build_query(ALLOWED, AAAA) + b"\x00",  # trailing byte
        b"\x00\x01\x81\x00" + build_query(ALLOWED, AAAA)[4:],  # a response (QR): dropped
        b"\x00\x01\x28\x00" + build_query(ALLOWED, AAAA)[4:],  # opcode 5 (UPDATE): NOTIMP
        build_query(ALLOWED, AAAA)[:5] + b"\x02" + build_query(ALLOWED, AAAA)[6:],  # 2 questions
    ],
)
def test_declines_what_the_general_path_logs_or_refuses(packet: bytes) -> None:
    assert FastPath(Policy()).answer(packet) is None


def _with_opt(name: str, rdata: bytes, *, version: int = 0, payload: int = 1232) -> bytes:
    head = build_query(name, AAAA)
    head = head[:10] + b"\x00\x01" + head[12:]
    ttl = version << 16
    return head + b"\x00" + struct.pack("!HHIH", OPT, payload, ttl, len(rdata)) + rdata


@pytest.mark.parametrize(
    ("packet", "answered"),
    [
        (_with_opt(ALLOWED, b""), True),
        (_with_opt(ALLOWED, b"\x00\x0a\x00\x08" + bytes(8)), True),  # a client cookie
        (_with_opt(ALLOWED, b"\x00\x0a\x00\x08" + bytes(8) + b"\x00\x0c\x00\x00"), True),
        (_with_opt(ALLOWED, b"", payload=0), True),  # below 512: 512 applies
        (_with_opt(ALLOWED, b"", version=1), False),  # BADVERS, logged
        (_with_opt(ALLOWED, b"\x00\x0a\x00\x09" + bytes(8)), False),  # option past its record
        (_with_opt(ALLOWED, b"\x00\x0a\x00"), False),  # truncated option header
        (_with_opt(ALLOWED, b"") + b"\x00", False),  # trailing byte
        (_with_opt(ALLOWED, b"")[:-1], False),  # truncated OPT
    ],
)
def test_edns_shapes(packet: bytes, answered: bool) -> None:
    assert (agree(packet) is not None) is answered


def _labels(draw: st.DrawFn) -> bytes:
    """A question name biased towards v6.alt names, with hostile spellings mixed in."""
    address = draw(st.integers(0, 2**128 - 1))
    if draw(st.booleans()):  # inside a range the default policy allows
        address = (draw(st.sampled_from([0x2000, 0x2A00, 0x0200, 0x0300])) << 112) | (address >> 16)
    label = encode(IPv6Address(address))[:-7].encode()
    label = draw(
        st.sampled_from(
            [
                label,
                label,
                label,
                label.upper(),
                label.replace(b"-", b"--"),
                label + b"a",
                label[:-1],
                b"-",
                b"",
                draw(st.binary(max_size=30)),
            ]
        )
    )
    prefix = draw(st.lists(st.binary(min_size=1, max_size=63), max_size=3))
    apex = draw(
        st.sampled_from(
            [
                [b"v6", b"alt"],
                [b"v6", b"alt"],
                [b"V6", b"Alt"],
                [b"v6", b"alt", b"x"],
                [b"v7", b"alt"],
            ]
        )
    )
    out = b""
    for part in [*prefix, label, *apex]:
        out += bytes([len(part) & 0xFF]) + part
    return out + b"\x00"


def _pick(draw: st.DrawFn, usual: list[int], wild: st.SearchStrategy[int]) -> int:
    """Mostly a usual value, one time in ten anything ``wild`` gives."""
    if draw(st.sampled_from(range(10))):
        return draw(st.sampled_from(usual))
    return draw(wild)


@st.composite
def queries(draw: st.DrawFn) -> bytes:
    header = struct.pack(
        "!HBBHHHH",
        draw(st.integers(0, 0xFFFF)),
        _pick(draw, [0, 1, 0x03, 0x05], st.integers(0, 0xFF)),
        _pick(draw, [0, 0x10, 0x20], st.integers(0, 0xFF)),
        _pick(draw, [1], st.integers(0, 3)),
        _pick(draw, [0], st.integers(0, 2)),
        _pick(draw, [0], st.integers(0, 2)),
        _pick(draw, [0, 1], st.integers(0, 3)),
    )
    question = _labels(draw) + struct.pack(
        "!HH",
        _pick(draw, [AAAA, A, ANY, MX, SRV, SOA, NS], st.integers(0, 0xFFFF)),
        _pick(draw, [1], st.integers(0, 0xFFFF)),
    )
    tail = b""
    if header[11]:
        rdata = draw(
            st.sampled_from([b"", b"\x00\x0a\x00\x08" + bytes(8)]) | st.binary(max_size=24)
        )
        tail = b"\x00" + struct.pack(
            "!HHIH",
            _pick(draw, [OPT], st.integers(0, 0xFFFF)),
            draw(st.integers(0, 0xFFFF)),
            _pick(draw, [0, 0x8000], st.integers(0, 2**32 - 1)),
            _pick(draw, [len(rdata)], st.integers(0, 30)),
        )
        tail += rdata
    packet = header + question + tail
    if draw(st.sampled_from(range(8))) == 0:
        packet = packet[: draw(st.sampled_from(range(len(packet) + 1)))]
    flips: list[tuple[int, int]] = []
    if draw(st.sampled_from(range(8))) == 0:
        flips = draw(st.lists(st.tuples(st.integers(0, 4096), st.integers(0, 255)), max_size=3))
    data = bytearray(packet)
    for where, value in flips:
        if data:
            data[where % len(data)] = value
    return bytes(data)


@settings(max_examples=3000, deadline=None)
@given(queries(), st.booleans(), st.sampled_from(sorted(POLICIES)))
@example(build_query(ALLOWED, AAAA), False, "default")
def test_fast_and_general_agree_on_generated_queries(
    packet: bytes, forwarding: bool, policy: str
) -> None:
    agree(packet, forwarding=forwarding, policy=policy)


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=600))
def test_fast_and_general_agree_on_random_bytes(packet: bytes) -> None:
    agree(packet)


def test_generated_queries_reach_the_fast_path() -> None:
    """The generator above is not all garbage: many of its packets are answered fast."""
    answered = 0

    @settings(max_examples=500, deadline=None, database=None)
    @given(queries())
    def count(packet: bytes) -> None:
        nonlocal answered
        if agree(packet, policy="cjdns") is not None:
            answered += 1

    count()
    assert answered >= 10


def _lenient_or_none(label: bytes) -> int | None:
    try:
        return int(decode_label(label.decode("ascii"), lenient=True))
    except (UnicodeDecodeError, V6AltNameError):
        return None


@settings(max_examples=3000, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=30),
        st.integers(0, 2**128 - 1).map(lambda v: encode(IPv6Address(v))[:-7].encode()),
        st.integers(0, 2**128 - 1).map(lambda v: encode(IPv6Address(v))[:-7].upper().encode()),
        st.text("abcdefghijklmnopqrstuvwxyz234567-AZ", max_size=28).map(str.encode),
    )
)
def test_lenient_label_value_is_lenient_decode(label: bytes) -> None:
    assert lenient_label_value(label) == _lenient_or_none(label)


def test_lenient_label_value_on_the_codec_vectors() -> None:
    for address, name in VECTORS:
        label = name[: -len(".v6.alt")].encode()
        assert lenient_label_value(label) == int(IPv6Address(address))
        assert lenient_label_value(label.upper()) == int(IPv6Address(address))


def test_fast_and_general_agree_on_the_fuzzers_packets() -> None:
    """The mutations of benchmarks/dns_fuzz.py (bit flips, truncation, section counts,
    label and pointer games, duplicated OPT, noise) through both paths."""
    from benchmarks import dns_fuzz

    answered = 0
    for i, packet in enumerate(dns_fuzz.packets(60_000, seed=5)):
        if agree(packet, forwarding=i % 4 == 0, policy="cjdns" if i % 2 else "default"):
            answered += 1
    assert answered > 1000  # the valid seed queries among them took the fast path
