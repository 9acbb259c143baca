"""Fuzz the sidecar's DNS handling with mutated and malformed packets.

Two parts:
1. in-process, straight into :class:`Responder` (fast: the 1,000,000-packet
   run takes about a minute): no exception; every reply no larger than the
   reply to the clean query with the same question (and EDNS), and header-only
   (12 bytes) for packets that do not parse; QR=1 and sub-header packets get
   no reply.
2. over the socket, to a real sidecar process (UDP and TCP): the same packets,
   then the process must still be alive and answer valid queries correctly,
   and no UDP reply may exceed the largest reply to a valid seed query.

    python benchmarks/dns_fuzz.py                      # 1,000,000 + 50,000 packets
    python benchmarks/dns_fuzz.py --count 20000 --socket-count 2000
"""

from __future__ import annotations

import argparse
import random
import socket
import struct
import sys
import time
from collections.abc import Iterator
from ipaddress import IPv6Address

from v6alt.config import parse_config
from v6alt.dns_wire import (
    Action,
    FormatError,
    Responder,
    build_query,
    parse_query,
)
from v6alt.policy import Policy

README_HEADING = "## Sidecar DNS fuzz"

SEED_NAMES = (
    "fiabbgadu-e.v6.alt",
    "FIABBGADU-E.v6.ALT",
    "groups.aiamvog6wthgaq3cisjokoiewu.v6.alt",
    "_xmpp-server._tcp.ai-e.v6.alt",
    "a-e.v6.alt",
    "not-a-label.v6.alt",
    "v6.alt",
    "example.org",
    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.a.3.0.8.9.0.1.0.0.a.2.ip6.arpa",
    "x" * 63 + "." + "y" * 63 + "." + "z" * 63 + "." + "w" * 40 + ".fiabbgadu-e.v6.alt",
)
SEED_TYPES = (28, 1, 255, 6, 2, 12, 33, 52, 65, 252, 16)


def seed_queries(rng: random.Random) -> list[bytes]:
    seeds = []
    for name in SEED_NAMES:
        for qtype in SEED_TYPES:
            edns = rng.choice((None, 512, 1232, 4096, 100))
            seeds.append(
                build_query(
                    name,
                    qtype,
                    ident=rng.getrandbits(16),
                    edns_payload=edns,
                    dnssec_ok=rng.random() < 0.3,
                )
            )
    return seeds


def mutate(packet: bytes, rng: random.Random) -> bytes:
    data = bytearray(packet)
    for _ in range(rng.choice((1, 1, 1, 2, 3, 4))):
        choice = rng.randrange(10)
        if choice == 0 and data:  # flip bits
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif choice == 1 and data:  # random byte
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif choice == 2:  # truncate
            del data[rng.randrange(len(data) + 1) :]
        elif choice == 3:  # append garbage
            data += rng.randbytes(rng.randint(1, 40))
        elif choice == 4 and len(data) >= 12:  # section counts
            struct.pack_into(
                "!H", data, rng.choice((4, 6, 8, 10)), rng.choice((0, 1, 2, 255, 65535))
            )
        elif choice == 5 and len(data) >= 4:  # header flags
            data[2], data[3] = rng.randrange(256), rng.randrange(256)
        elif choice == 6 and len(data) > 13:  # compression pointer / label length games
            i = rng.randrange(12, len(data))
            data[i] = rng.choice((0xC0, 0xC0 | rng.randrange(64), 0x40, 0x80, 63, 64, 0))
        elif choice == 7:  # duplicate a slice (repeated OPT, labels)
            if data:
                i = rng.randrange(len(data))
                j = rng.randrange(i, min(len(data), i + 30) + 1)
                data[j:j] = data[i:j]
        elif choice == 8:  # delete a slice
            if data:
                i = rng.randrange(len(data))
                del data[i : i + rng.randint(1, 8)]
        else:  # a packet of pure noise
            data = bytearray(rng.randbytes(rng.randint(0, 80)))
    return bytes(data)


def packets(count: int, seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    seeds = seed_queries(rng)
    for _ in range(count):
        yield mutate(rng.choice(seeds), rng)


def clean_equivalent(packet: bytes) -> bytes | None:
    """The well-formed query asking the same question as ``packet`` (None if it does not parse)."""
    try:
        query = parse_query(packet)
    except FormatError:
        return None
    header = struct.pack("!HBBHHHH", 0, query.flags1 & 0x7F, query.flags2, 1, 0, 0, int(query.edns))
    opt = b""
    if query.edns:
        ttl = (query.edns_version << 16) | (0x8000 if query.dnssec_ok else 0)
        opt = b"\x00" + struct.pack("!HHIH", 41, query.udp_payload, ttl, 0)
    return header + query.question + opt


class Violation(AssertionError):
    pass


def check(responder: Responder, packet: bytes) -> None:
    reply = responder.respond(packet, udp=True)
    if len(packet) < 12 or packet[2] & 0x80:
        if reply.action is not Action.DROP:
            raise Violation(f"answered a packet that must be dropped: {packet.hex()}")
        return
    if reply.action is not Action.ANSWER:
        if reply.action is Action.FORWARD and responder.forwarding:
            return
        raise Violation(f"unexpected {reply.action} for {packet.hex()}")
    clean = clean_equivalent(packet)
    if clean is None or packet[2] & 0x78:
        if len(reply.data) > 12:
            raise Violation(f"{len(reply.data)}-byte reply to a malformed packet {packet.hex()}")
        return
    baseline = responder.respond(clean, udp=True)
    if len(reply.data) > len(baseline.data):
        raise Violation(
            f"reply of {len(reply.data)} bytes > {len(baseline.data)} for the clean query: "
            f"{packet.hex()}"
        )
    if len(reply.data) > 1232:
        raise Violation(f"UDP reply of {len(reply.data)} bytes: {packet.hex()}")


def fuzz_in_process(count: int, seed: int = 1) -> float:
    """Run ``count`` packets through a default-policy and a forwarding Responder; seconds taken."""
    plain = Responder(Policy(parse_config({"ranges": {"cjdns": True}})))
    forwarding = Responder(Policy(), forwarding=True)
    start = time.perf_counter()
    for i, packet in enumerate(packets(count, seed)):
        try:
            check(forwarding if i % 4 == 0 else plain, packet)
        except Violation:
            raise
        except Exception as exc:
            raise Violation(f"{type(exc).__name__}: {exc} on packet {packet.hex()}") from exc
    return time.perf_counter() - start


def valid_reply_bound(port: int) -> int:
    """The largest UDP reply the running server gives to a valid seed query."""
    rng = random.Random(99)
    biggest = 0
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        for query in seed_queries(rng):
            sock.sendto(query, ("::1", port))
            biggest = max(biggest, len(sock.recv(65535)))
    return biggest


def fuzz_socket(port: int, count: int, seed: int = 2) -> tuple[int, int]:
    """Send ``count`` packets over UDP (and a tenth over TCP); (replies, largest reply)."""
    bound = valid_reply_bound(port)
    replies = 0
    largest = 0
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)

        def drain() -> None:
            nonlocal replies, largest
            while True:
                try:
                    data = sock.recv(65535)
                except BlockingIOError:
                    return
                replies += 1
                largest = max(largest, len(data))

        for i, packet in enumerate(packets(count, seed)):
            sock.sendto(packet, ("::1", port))
            if i % 64 == 63:
                time.sleep(0.002)  # pacing: measure robustness, not the socket buffer
            drain()
        time.sleep(0.5)
        drain()
    if largest > bound:
        raise Violation(f"a fuzz reply of {largest} bytes exceeds the valid bound {bound}")
    for i, packet in enumerate(packets(count // 10, seed + 1)):
        if i % 100 == 0:
            tcp = socket.create_connection(("::1", port), timeout=2)
        try:
            tcp.sendall(struct.pack("!H", len(packet)) + packet)
        except OSError:
            tcp.close()
            tcp = socket.create_connection(("::1", port), timeout=2)
        if i % 100 == 99:
            tcp.close()
    tcp.close()
    return replies, largest


def still_answers(port: int) -> None:
    query = build_query("fiabbgadu-e.v6.alt", 28, ident=4242)
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(query, ("::1", port))
        reply = sock.recv(65535)
    if reply[:2] != query[:2] or not reply.endswith(IPv6Address("2a00:1098:3a0::1").packed):
        raise Violation(f"valid query no longer answered correctly: {reply.hex()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="in-process packets")
    parser.add_argument("--socket-count", type=int, default=50_000, help="packets over UDP")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    seconds = fuzz_in_process(args.count, args.seed)
    print(
        f"in-process: {args.count:,} packets, no violation, {seconds:.1f} s "
        f"({args.count / seconds:,.0f} packets/s)"
    )
    from v6alt.lab.local_servers import running_sidecar

    with running_sidecar() as sidecar:
        replies, largest = fuzz_socket(sidecar.dns_port, args.socket_count, args.seed + 1)
        still_answers(sidecar.dns_port)
        alive = sidecar.process.poll() is None
    print(
        f"socket: {args.socket_count:,} UDP + {args.socket_count // 10:,} TCP packets, "
        f"{replies:,} UDP replies, largest {largest} bytes, sidecar alive: {alive}, "
        "valid queries still answered"
    )
    if args.write_readme and alive:
        # benchmarks/ is on sys.path when this runs as a script (never when a test imports it).
        from report import write_section

        write_section(
            README_HEADING,
            "\n".join(
                [
                    "`python benchmarks/dns_fuzz.py --write-readme` (seed "
                    f"{args.seed}): mutated and malformed packets from valid seed queries",
                    "(bit flips, truncation, garbage, section counts, flags, label and",
                    "compression-pointer games, duplicated OPT, pure noise).",
                    "",
                    "| part | packets | result |",
                    "|---|---:|---|",
                    f"| in-process (`Responder`) | {args.count:,} | no exception, no reply larger "
                    f"than the clean query's, {args.count / seconds:,.0f} packets/s |",
                    f"| real sidecar over UDP | {args.socket_count:,} | {replies:,} replies, the "
                    f"largest {largest} bytes (no larger than the largest valid reply) |",
                    f"| real sidecar over TCP | {args.socket_count // 10:,} | connections "
                    "closed on garbage, process alive |",
                    "",
                    "Afterwards the sidecar still answered a valid query correctly.",
                    "",
                ]
            ),
        )
    return 0 if alive else 1


if __name__ == "__main__":
    sys.exit(main())
