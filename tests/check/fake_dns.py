"""A tiny authoritative DNS server for the checker's DNS-name tests.

Usage: fake_dns.py ADDRESS PORT ZONE_JSON
ZONE_JSON maps lowercase names to {"AAAA": [addresses], "SRV": [[prio, weight,
port, target]]}; every other question gets NXDOMAIN. UDP only. Prints "ready".
"""

from __future__ import annotations

import json
import socket
import struct
import sys
from ipaddress import IPv6Address
from typing import Any

TYPE_AAAA, TYPE_SRV = 28, 33


def _name(text: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in text.split(".") if p) + b"\0"


def answer(packet: bytes, zone: dict[str, Any]) -> bytes:
    ident, _flags, _qd = struct.unpack_from("!HHH", packet)
    pos, labels = 12, []
    while packet[pos]:
        labels.append(packet[pos + 1 : pos + 1 + packet[pos]].decode().lower())
        pos += packet[pos] + 1
    qtype, _qclass = struct.unpack_from("!HH", packet, pos + 1)
    question = packet[12 : pos + 5]
    entry = zone.get(".".join(labels))
    records = []
    if entry is not None and qtype == TYPE_AAAA:
        for address in entry.get("AAAA", []):
            records.append(struct.pack("!HHIH", TYPE_AAAA, 1, 60, 16) + IPv6Address(address).packed)
    if entry is not None and qtype == TYPE_SRV:
        for priority, weight, port, target in entry.get("SRV", []):
            rdata = struct.pack("!HHH", priority, weight, port) + _name(target)
            records.append(struct.pack("!HHIH", TYPE_SRV, 1, 60, len(rdata)) + rdata)
    rcode = 3 if entry is None else 0
    header = struct.pack("!HHHHHH", ident, 0x8400 | rcode, 1, len(records), 0, 0)
    return header + question + b"".join(b"\xc0\x0c" + r for r in records)


def main() -> None:
    address, port, zone_json = sys.argv[1:4]
    zone = {k.lower().rstrip("."): v for k, v in json.loads(zone_json).items()}
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.bind((address, int(port)))
    print("ready", flush=True)
    while True:
        packet, peer = sock.recvfrom(4096)
        try:
            sock.sendto(answer(packet, zone), peer)
        except (IndexError, struct.error, UnicodeDecodeError):
            continue


if __name__ == "__main__":
    main()
