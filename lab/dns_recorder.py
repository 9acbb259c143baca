"""A DNS server for one network namespace that records every queried name.

Run inside the namespace (``ip netns exec NS python -m v6alt.lab.dns_recorder
LOG [NAME=ADDRESS ...]``, or :func:`start_dns_recorder` on a
:class:`~v6alt.lab.netns.FlatHost`); it listens on UDP [::1]:53 and
127.0.0.1:53 and appends every queried name, one per line, to LOG. The tests
point the namespace's resolv.conf here to prove which names a homeserver
looked up. Names given as NAME=ADDRESS get that AAAA record (and an empty
answer for other types); every other name is NXDOMAIN. The benchmarks use the
records to run stock Synapse with DNS names.
"""

from __future__ import annotations

import ipaddress
import selectors
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from .netns import FlatHost

__all__ = ["start_dns_recorder"]


def start_dns_recorder(
    host: FlatHost, log: Path, records: Mapping[str, str] | None = None
) -> subprocess.Popen[Any]:
    """Answer ``host``'s DNS on [::1]:53 (``records`` as AAAA, all else NXDOMAIN),
    recording every queried name in ``log``; returns once it serves.

    ``ip netns exec`` bind-mounts /etc/netns/<namespace>/resolv.conf over
    /etc/resolv.conf, so processes started in ``host`` after this see only the
    recorder. ``host.stop()`` stops it and removes that resolv.conf.
    """
    host.set_resolv_conf("nameserver ::1\noptions timeout:1 attempts:1\n")
    log.parent.mkdir(parents=True, exist_ok=True)
    log.touch()
    argv = [sys.executable, "-m", "v6alt.lab.dns_recorder", str(log)]
    argv += [f"{name}={address}" for name, address in (records or {}).items()]
    process = host.popen(argv, stdout=subprocess.PIPE)
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        raise RuntimeError(f"the DNS recorder in {host.netns} did not start")
    return process


def query_name(packet: bytes) -> tuple[str, int]:
    """The question name and the offset just past the question."""
    labels: list[str] = []
    i = 12
    while i < len(packet) and packet[i] != 0:
        length = packet[i]
        labels.append(packet[i + 1 : i + 1 + length].decode("ascii", "replace"))
        i += 1 + length
    return ".".join(labels), i + 5  # zero byte, QTYPE, QCLASS


AAAA = 28


def answer(packet: bytes, end: int, records: dict[str, bytes]) -> bytes:
    name, _ = query_name(packet)
    qtype = int.from_bytes(packet[end - 4 : end - 2], "big")
    address = records.get(name.lower())
    rcode = 3 if address is None else 0  # NXDOMAIN, or NOERROR
    flags = 0x8000 | (packet[2] & 0x01) << 8 | 0x0080 | rcode  # QR, RD copied, RA
    rr = b""
    if address is not None and qtype == AAAA:
        # Name pointer to the question, AAAA, IN, TTL 60, 16 bytes of address.
        rr = b"\xc0\x0c" + (AAAA).to_bytes(2, "big") + b"\x00\x01" + (60).to_bytes(4, "big")
        rr += (16).to_bytes(2, "big") + address
    counts = b"\x00\x01" + (1 if rr else 0).to_bytes(2, "big") + b"\x00\x00\x00\x00"
    return packet[:2] + flags.to_bytes(2, "big") + counts + packet[12:end] + rr


def main() -> None:
    records: dict[str, bytes] = {}
    for item in sys.argv[2:]:
        name, _, address = item.partition("=")
        records[name.lower()] = ipaddress.IPv6Address(address).packed
    with open(sys.argv[1], "a", buffering=1) as log:
        serve(log, records)


def serve(log: TextIO, records: dict[str, bytes]) -> None:
    selector = selectors.DefaultSelector()
    for family, host in ((socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.1")):
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.bind((host, 53))
        selector.register(sock, selectors.EVENT_READ)
    print("ready", flush=True)
    while True:
        for key, _ in selector.select():
            ready = key.fileobj
            assert isinstance(ready, socket.socket)
            packet, peer = ready.recvfrom(4096)
            if len(packet) < 17:
                continue
            name, end = query_name(packet)
            log.write(name + "\n")
            ready.sendto(answer(packet, end, records), peer)


if __name__ == "__main__":
    main()
