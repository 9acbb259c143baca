"""Reachability probe, run *inside* a lab namespace: ICMPv6 echo to addresses.

Run as ``python -m v6alt.lab.probe [--timeout S] ADDRESS...`` through
``ip netns exec``. It pings every address until each has answered once or
the time is up, printing one JSON line per address as soon as it answers and
one per address that never did; exit 0 if all answered, 1 otherwise.

A raw ICMPv6 socket (root) is used so the lab needs no ``ping`` binary; the
kernel fills in the ICMPv6 checksum. Echoes are resent every 0.2 s because
the first packets to a new Yggdrasil destination may be dropped while the
node looks up the path.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import socket
import struct
import sys
import time
from collections.abc import Sequence
from ipaddress import IPv6Address
from typing import Final

__all__ = ["main", "ping_all"]

ECHO_REQUEST: Final = 128
ECHO_REPLY: Final = 129
RESEND_INTERVAL: Final = 0.2
PAYLOAD: Final = b"v6alt-lab-probe"


def ping_all(addresses: Sequence[IPv6Address], timeout: float) -> dict[IPv6Address, float | None]:
    """Round-trip time of the first reply from each address, None if none came."""
    ident = os.getpid() & 0xFFFF
    rtt: dict[IPv6Address, float | None] = {a: None for a in addresses}
    sent_at: dict[IPv6Address, float] = {}
    start = time.monotonic()
    deadline = start + timeout
    seq = 0
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as sock:
        next_send = start
        while time.monotonic() < deadline and any(v is None for v in rtt.values()):
            now = time.monotonic()
            if now >= next_send:
                seq = (seq + 1) & 0xFFFF
                for address, value in rtt.items():
                    if value is None:
                        packet = struct.pack("!BBHHH", ECHO_REQUEST, 0, 0, ident, seq) + PAYLOAD
                        # No route yet is possible while the TUN address comes up.
                        with contextlib.suppress(OSError):
                            sock.sendto(packet, (str(address), 0))
                        sent_at.setdefault(address, now)
                next_send = now + RESEND_INTERVAL
            wait = max(0.0, min(next_send, deadline) - time.monotonic())
            readable, _, _ = select.select([sock], [], [], wait)
            if not readable:
                continue
            data, source = sock.recvfrom(2048)
            if len(data) < 8 or data[0] != ECHO_REPLY:
                continue
            if struct.unpack("!H", data[4:6])[0] != ident:
                continue
            address = IPv6Address(source[0].split("%")[0])
            if address in rtt and rtt[address] is None:
                rtt[address] = time.monotonic() - sent_at.get(address, start)
                print(json.dumps({"address": str(address), "ok": True, "rtt": rtt[address]}))
                sys.stdout.flush()
    return rtt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m v6alt.lab.probe", description=__doc__)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    parser.add_argument("addresses", nargs="+", type=IPv6Address, metavar="ADDRESS")
    args = parser.parse_args(argv)
    result = ping_all(args.addresses, args.timeout)
    for address, value in result.items():
        if value is None:
            print(json.dumps({"address": str(address), "ok": False, "rtt": None}))
    return 0 if all(v is not None for v in result.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
