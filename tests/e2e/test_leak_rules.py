"""The leak rules and the pcap reader, on packets built here (no root needed)."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest

from .capture import Packet, find_leaks, parse_ip, read_pcap

PEER = IPv6Address("201:1651:5c19:51aa:9a20:b374:da94:f313")
SELF = IPv6Address("200:a440:2d8b:b07b:1189:40d5:10c4:6f11")
UNDERLAY = IPv6Address("fd00:1ab:0:1::2")
ALLOWED = {PEER, SELF, UNDERLAY, IPv6Address("fd00:1ab:0:1::1")}
LOOP = IPv6Address("::1")


def v6(src: str, dst: str, proto: int = 6, sport: int = 40000, dport: int = 5269) -> Packet:
    return Packet(IPv6Address(src), IPv6Address(dst), proto, sport, dport)


@pytest.mark.parametrize(
    "packet",
    [
        v6(str(SELF), str(PEER)),  # s2s over Yggdrasil
        v6("fd00:1ab:0:1::1", str(UNDERLAY), dport=19001),  # the Yggdrasil peering
        v6("::1", "::1", 17, 45000, 5353),  # a query to the local sidecar
        v6("::1", "::1", 17, 5353, 45000),  # its answer
        v6("::1", "::1", dport=5380),  # the lookup service
        v6("fe80::1", "ff02::1:ff00:2", 58, None, None),  # neighbour discovery
        v6("::", "ff02::16", 58, None, None),  # MLD while the link comes up
        Packet(IPv4Address("127.0.0.1"), IPv4Address("127.0.0.1"), 6, 40000, 5222),
    ],
)
def test_allowed_traffic_is_not_a_leak(packet: Packet) -> None:
    assert find_leaks([packet], ALLOWED) == []


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (Packet(IPv4Address("10.0.0.2"), IPv4Address("10.255.255.53"), 17, 40000, 53), "DNS"),
        (v6(str(SELF), "2001:4860:4860::8888", 17, 40000, 53), "DNS"),
        (v6("::1", "::1", 17, 40000, 53), "DNS"),  # port 53 even on loopback is not the sidecar
        (v6("fe80::1", "ff02::fb", 17, 5353, 5353), "DNS"),  # mDNS
        (v6(str(SELF), "2a00:1450::1", dport=443), "neither a mesh peer"),
        (v6(str(SELF), "202:dead:beef::1"), "neither a mesh peer"),  # not a lab host
        (v6("::", "2a00:1450::1", 58, None, None), "neither a mesh peer"),
        (Packet(IPv4Address("10.0.0.2"), IPv4Address("10.0.0.1"), 6, 1, 2), "IPv4"),
    ],
)
def test_leaks_are_reported_with_the_reason(packet: Packet, reason: str) -> None:
    leaks = find_leaks([packet], ALLOWED)
    assert len(leaks) == 1 and reason in leaks[0]


def _ipv6_udp(src: IPv6Address, dst: IPv6Address, sport: int, dport: int) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8, 0)
    # A hop-by-hop header first, so the reader has to walk extension headers.
    hop_by_hop = bytes([17, 0]) + bytes(6)
    header = struct.pack("!IHBB", 6 << 28, len(hop_by_hop) + len(udp), 0, 64)
    return header + src.packed + dst.packed + hop_by_hop + udp


def test_pcap_reader_reads_linux_cooked_v2(tmp_path: Path) -> None:
    frame = _ipv6_udp(SELF, IPv6Address("2001:4860:4860::8888"), 40000, 53)
    sll2 = struct.pack("!HHIHBB8s", 0x86DD, 0, 3, 0xFFFE, 4, 0, bytes(8))
    arp = struct.pack("!HHIHBB8s", 0x0806, 0, 2, 1, 0, 6, bytes(8)) + bytes(28)
    records = b""
    for payload in (sll2 + frame, arp):
        records += struct.pack("<IIII", 1, 0, len(payload), len(payload)) + payload
    pcap = tmp_path / "a.pcap"
    pcap.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 200, 276) + records)
    packets = list(read_pcap(pcap))
    assert packets == [Packet(SELF, IPv6Address("2001:4860:4860::8888"), 17, 40000, 53)]
    assert "DNS" in find_leaks(packets, ALLOWED)[0]


def test_parse_ip_ignores_what_is_not_ip() -> None:
    assert parse_ip(b"") is None
    assert parse_ip(b"\x60" + bytes(10)) is None  # truncated IPv6 header
