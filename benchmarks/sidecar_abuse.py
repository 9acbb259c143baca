"""The sidecar and unbound under the abuse of issue 15, side by side, on ::1.

Each attack runs for ``--seconds`` against a fresh server (the sidecar with
its default ``sidecar.limits``; a stock unbound, one thread, answering the
same name from local-data) while a legitimate client keeps asking: a new TCP
connection per query for the TCP attacks, UDP for the log flood, HTTP
``GET /v1/health`` for the lookup-service attacks (sidecar only: unbound has
no HTTP). Reported per attack and server: legitimate queries answered of
those asked, the server's peak RSS during the attack (sampled from /proc),
the lines it logged, and what became of the attack.

Attacks (all traffic to ::1 only, bounded in count and time):

- ``tcp-trickle``: 300 connections from one address, each sending one byte of
  a query every second (slow loris).
- ``tcp-connections``: 500 idle connections from one address.
- ``tcp-pipeline``: 4 connections pipelining queries without ever reading.
- ``tcp-half-close``: 50 pipelined queries, then shutdown for writing; 20 times.
- ``udp-log-flood``: queries with random classes, question counts and opcodes.
- ``http-body``: 8 connections POSTing a 500 MB body, at full speed.
- ``http-pipeline``: 4 connections pipelining requests without ever reading.
- ``http-slow-headers``: 200 connections trickling header bytes.
- ``http-oversize``: 70 kB query strings and 20 kB of headers, repeated.

    python benchmarks/sidecar_abuse.py                  # print the table
    python benchmarks/sidecar_abuse.py --write-readme   # also update benchmarks/README.md
    python benchmarks/sidecar_abuse.py --before ef668e3 # and the sidecar before the limits
    python benchmarks/sidecar_abuse.py --smoke --json   # the short run of the tests

Needs: unbound (apt), v6alt[sidecar].
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import socket
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from report import emit, machine_line

from v6alt.dns_wire import build_query
from v6alt.lab.local_servers import free_port, running_sidecar, running_unbound, unbound_config

HEADING = "## Sidecar under abuse"
NAME = "fiabbgadu-e.v6.alt"
ADDRESS = "2a00:1098:3a0::1"
PACKED = bytes.fromhex("2a00109803a000000000000000000001")


@dataclass
class Server:
    label: str
    pid: int
    dns_port: int
    lookup_port: int | None
    log_path: Path


@dataclass
class Outcome:
    """What the attack itself saw (filled by the attack's thread)."""

    notes: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, n: int = 1) -> None:
        self.notes[key] = self.notes.get(key, 0) + n


# --- the servers ----------------------------------------------------------------------


@contextmanager
def sidecar() -> Iterator[Server]:
    with running_sidecar() as sc:
        yield Server("sidecar", sc.process.pid, sc.dns_port, sc.lookup_port, sc.log_path)


@contextmanager
def sidecar_before(rev: str) -> Iterator[Server]:
    """The sidecar of commit ``rev`` (before the limits), installed into a temporary directory."""
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="v6alt-abuse-before-") as tmp:
        tree, target = Path(tmp, "tree"), Path(tmp, "site")
        tree.mkdir()
        archive = subprocess.run(["git", "-C", str(repo), "archive", rev], capture_output=True,
                                 check=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--target", str(target), str(tree)], check=True)  # fmt: skip
        with running_sidecar(env={"PYTHONPATH": str(target)}) as sc:
            label = f"sidecar before ({rev})"
            yield Server(label, sc.process.pid, sc.dns_port, sc.lookup_port, sc.log_path)


@contextmanager
def unbound() -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="v6alt-abuse-unbound-") as tmp:
        port = free_port()
        config = unbound_config(Path(tmp), port, local_data=[f"{NAME}. 86400 IN AAAA {ADDRESS}"])
        with running_unbound(config, port) as process:
            yield Server("unbound", process.pid, port, None, config.with_suffix(".log"))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def spooled_mib(pid: int) -> float:
    """Size of the deleted files the process holds open (request bodies spooled to /tmp)."""
    total = 0
    fds = Path(f"/proc/{pid}/fd")
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):
            if os.readlink(fd).endswith("(deleted)"):
                total += os.stat(fd).st_size
    return total / (1 << 20)


def log_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


# --- clients ----------------------------------------------------------------------------


def framed(query: bytes) -> bytes:
    return struct.pack("!H", len(query)) + query


def tcp_query(port: int, ident: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection(("::1", port), timeout=timeout) as sock:
            sock.sendall(framed(build_query(NAME, ident=ident)))
            data = b""
            while len(data) < 2 or len(data) < 2 + int.from_bytes(data[:2], "big"):
                chunk = sock.recv(4096)
                if not chunk:
                    return False
                data += chunk
    except OSError:
        return False
    return data[2:4] == ident.to_bytes(2, "big") and PACKED in data


def udp_query(port: int, ident: int, timeout: float = 1.0) -> bool:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(build_query(NAME, ident=ident), ("::1", port))
            data = sock.recv(4096)
        except OSError:
            return False
    return data[:2] == ident.to_bytes(2, "big") and PACKED in data


def http_health(port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection(("::1", port), timeout=timeout) as sock:
            sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
    except OSError:
        return False
    return data.startswith(b"HTTP/1.1 200") and b'"ok": true' in data


def http_status(data: bytes) -> str:
    match = re.match(rb"HTTP/1\.1 (\d{3})", data)
    return match.group(1).decode() if match else "none"


# --- the attacks: each runs until ``stop`` is set ----------------------------------------

Attack = Callable[[Server, threading.Event, Outcome, "Scale"], None]


@dataclass(frozen=True)
class Scale:
    trickle: int = 300
    idle: int = 500
    pipeliners: int = 4
    half_close_rounds: int = 20
    log_packets: int = 20_000
    body_connections: int = 8
    slow_headers: int = 200
    body_total: int = 64 << 30  # bytes of request body, all connections together


def _open_many(port: int, count: int, outcome: Outcome) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        try:
            socks.append(socket.create_connection(("::1", port), timeout=2))
        except OSError:
            outcome.add("connect failed")
    return socks


def _closed(sock: socket.socket) -> bool:
    return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0] != 1)


def _trickle(
    socks: list[socket.socket], payload: bytes, stop: threading.Event, outcome: Outcome
) -> None:
    sent = 0
    while not stop.wait(1.0 if sent else 0.0):
        for sock in socks:
            if sent < len(payload) and not _closed(sock):
                with contextlib.suppress(OSError):
                    sock.send(payload[sent : sent + 1])
        sent += 1
    outcome.add("closed by the server", sum(_closed(s) for s in socks))
    outcome.add("connections", len(socks))
    for sock in socks:
        sock.close()


def tcp_trickle(server: Server, stop: threading.Event, outcome: Outcome, scale: Scale) -> None:
    socks = _open_many(server.dns_port, scale.trickle, outcome)
    _trickle(socks, framed(build_query(NAME, ident=1)), stop, outcome)


def tcp_connections(server: Server, stop: threading.Event, outcome: Outcome, scale: Scale) -> None:
    socks = _open_many(server.dns_port, scale.idle, outcome)
    stop.wait()
    outcome.add("closed by the server", sum(_closed(s) for s in socks))
    outcome.add("connections", len(socks))
    for sock in socks:
        sock.close()


def tcp_pipeline(server: Server, stop: threading.Event, outcome: Outcome, scale: Scale) -> None:
    flood = b"".join(framed(build_query(f"p{i}.{NAME}", ident=i)) for i in range(2000))
    socks = _open_many(server.dns_port, scale.pipeliners, outcome)
    for sock in socks:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
    sent = 0
    while not stop.is_set():
        progress = False
        for sock in socks:
            if _closed(sock):
                continue
            try:
                sent += sock.send(flood)
                progress = True
            except BlockingIOError:
                pass
            except OSError:
                continue
        if not progress:
            time.sleep(0.02)
    outcome.add("MB of queries accepted", sent >> 20)
    outcome.add("closed by the server", sum(_closed(s) for s in socks))
    for sock in socks:
        sock.close()


def tcp_half_close(server: Server, stop: threading.Event, outcome: Outcome, scale: Scale) -> None:
    for round_ in range(scale.half_close_rounds):
        if stop.is_set():
            break
        queries = b"".join(framed(build_query(f"h{i}.{NAME}", ident=i)) for i in range(50))
        answers = 0
        try:
            with socket.create_connection(("::1", server.dns_port), timeout=2) as sock:
                sock.sendall(queries)
                sock.shutdown(socket.SHUT_WR)
                data = b""
                with contextlib.suppress(OSError):
                    while chunk := sock.recv(65536):
                        data += chunk
                while len(data) >= 2 and len(data) >= 2 + int.from_bytes(data[:2], "big"):
                    answers += 1
                    data = data[2 + int.from_bytes(data[:2], "big") :]
        except OSError:
            outcome.add("connect failed")
        outcome.add("answered after half-close", answers)
        outcome.add("queries sent", 50)
        del round_


def udp_log_flood(server: Server, stop: threading.Event, outcome: Outcome, scale: Scale) -> None:
    rng = random.Random(15)
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        for i in range(scale.log_packets):
            if stop.is_set():
                break
            kind = i % 3
            if kind == 0:
                packet = build_query(NAME, ident=i & 0xFFFF, qclass=rng.randrange(2, 65536))
            elif kind == 1:
                packet = struct.pack(
                    "!HHHHHH", i & 0xFFFF, 0x0100, rng.randrange(2, 65536), 0, 0, 0
                )
            else:
                opcode = rng.randrange(1, 16)
                packet = build_query(NAME, ident=i & 0xFFFF)
                packet = packet[:2] + bytes([packet[2] | opcode << 3]) + packet[3:]
            with contextlib.suppress(OSError):
                sock.sendto(packet, ("::1", server.dns_port))
            outcome.add("packets")
            if i % 200 == 199:
                time.sleep(0.005)


def http_body(server: Server, stop: threading.Event, outcome: Outcome, scale: Scale) -> None:
    assert server.lookup_port is not None
    head = b"POST /v1/resolve HTTP/1.1\r\nHost: x\r\nContent-Length: 500000000\r\n\r\n"
    chunk = b"b" * 65536

    total = [0]

    def one() -> None:
        while not stop.is_set() and total[0] < scale.body_total:
            try:
                with socket.create_connection(("::1", server.lookup_port), timeout=2) as sock:
                    sock.sendall(head)
                    sent = 0
                    with contextlib.suppress(OSError):
                        while (
                            not stop.is_set()
                            and sent < 500_000_000
                            and total[0] + sent < scale.body_total
                        ):
                            sent += sock.send(chunk)
                    total[0] += sent
                    outcome.add("MB of body sent", sent >> 20)
                    with contextlib.suppress(OSError):
                        outcome.add("status " + http_status(sock.recv(4096)))
            except OSError:
                outcome.add("connect failed")

    threads = [threading.Thread(target=one) for _ in range(scale.body_connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def http_pipeline(server: Server, stop: threading.Event, outcome: Outcome, scale: Scale) -> None:
    assert server.lookup_port is not None
    request = f"GET /v1/resolve?name={NAME} HTTP/1.1\r\nHost: x\r\n\r\n".encode() * 500
    socks = _open_many(server.lookup_port, scale.pipeliners, outcome)
    for sock in socks:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
    sent = 0
    while not stop.is_set():
        progress = False
        for sock in socks:
            try:
                sent += sock.send(request)
                progress = True
            except OSError:
                pass
        if not progress:
            time.sleep(0.02)
    outcome.add("MB of requests accepted", sent >> 20)
    for sock in socks:
        sock.close()


def http_slow_headers(
    server: Server, stop: threading.Event, outcome: Outcome, scale: Scale
) -> None:
    assert server.lookup_port is not None
    socks = _open_many(server.lookup_port, scale.slow_headers, outcome)
    head = b"GET /v1/health HTTP/1.1\r\nX-Slow: " + b"s" * 200 + b"\r\n\r\n"
    _trickle(socks, head, stop, outcome)


def http_oversize(server: Server, stop: threading.Event, outcome: Outcome, scale: Scale) -> None:
    assert server.lookup_port is not None
    requests = [
        b"GET /v1/resolve?name=" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /v1/health HTTP/1.1\r\n"
        + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 900) for i in range(22))
        + b"\r\n",
    ]
    i = 0
    while not stop.is_set():
        try:
            with socket.create_connection(("::1", server.lookup_port), timeout=2) as sock:
                with contextlib.suppress(OSError):
                    sock.sendall(requests[i % 2])
                data = b""
                with contextlib.suppress(OSError):
                    while chunk := sock.recv(4096):
                        data += chunk
                outcome.add(f"{('70 kB query', '20 kB headers')[i % 2]}: {http_status(data)}")
        except OSError:
            outcome.add("connect failed")
        i += 1
        time.sleep(0.02)


ATTACKS: dict[str, tuple[Attack, str, bool]] = {
    # name: (attack, legitimate client, against unbound too)
    "tcp-trickle": (tcp_trickle, "tcp", True),
    "tcp-connections": (tcp_connections, "tcp", True),
    "tcp-pipeline": (tcp_pipeline, "tcp", True),
    "tcp-half-close": (tcp_half_close, "tcp", True),
    "udp-log-flood": (udp_log_flood, "udp", True),
    "http-body": (http_body, "http", False),
    "http-pipeline": (http_pipeline, "http", False),
    "http-slow-headers": (http_slow_headers, "http", False),
    "http-oversize": (http_oversize, "http", False),
}


def run_attack(
    name: str, server: Server, seconds: float, scale: Scale, interval: float
) -> dict[str, Any]:
    attack, client, _ = ATTACKS[name]
    stop = threading.Event()
    outcome = Outcome()
    peak = [rss_mib(server.pid)]
    spooled = [0.0]
    rss_before = peak[0]
    lines_before = log_lines(server.log_path)

    def sample() -> None:
        while not stop.wait(0.1):
            with contextlib.suppress(OSError):
                peak[0] = max(peak[0], rss_mib(server.pid))
                spooled[0] = max(spooled[0], spooled_mib(server.pid))

    def ask(ident: int) -> bool:
        if client == "tcp":
            return tcp_query(server.dns_port, ident)
        if client == "udp":
            return udp_query(server.dns_port, ident)
        assert server.lookup_port is not None
        return http_health(server.lookup_port)

    threads = [threading.Thread(target=attack, args=(server, stop, outcome, scale)),
               threading.Thread(target=sample)]  # fmt: skip
    for t in threads:
        t.start()
    time.sleep(min(0.5, seconds / 4))  # the attack gets going first
    asked = answered = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        asked += 1
        answered += ask(asked & 0xFFFF)
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
    stop.set()
    for t in threads:
        t.join(timeout=30)
    time.sleep(0.3)  # the last log lines reach the file
    return {
        "attack": name,
        "server": server.label,
        "client": client,
        "asked": asked,
        "answered": answered,
        "rss_before_mib": round(rss_before, 1),
        "rss_peak_mib": round(peak[0], 1),
        "spooled_mib": round(spooled[0], 1),
        "log_lines": log_lines(server.log_path) - lines_before,
        "outcome": dict(sorted(outcome.notes.items())),
    }


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    scale = Scale()
    if args.smoke:
        scale = Scale(trickle=80, idle=100, pipeliners=2, half_close_rounds=3,
                      log_packets=3000, body_connections=2, slow_headers=40)  # fmt: skip
    names = args.attacks.split(",") if args.attacks else list(ATTACKS)
    rows = []
    for name in names:
        servers: list[Callable[[], Any]] = [sidecar]
        if args.before:
            servers.append(lambda: sidecar_before(args.before))
        if ATTACKS[name][2]:
            servers.append(unbound)
        for start in servers:
            with start() as server:
                row = run_attack(name, server, args.seconds, scale, args.interval)
            rows.append(row)
            if not args.json:
                print(_row_text(row), flush=True)
    return rows


def _outcome_text(row: dict[str, Any]) -> str:
    text = "; ".join(f"{key}: {n:,}" for key, n in row["outcome"].items())
    if row.get("spooled_mib"):
        text += f"; bodies spooled to /tmp: {row['spooled_mib']:,.0f} MiB at the peak"
    return text


def _row_text(row: dict[str, Any]) -> str:
    return (
        f"| {row['attack']} | {row['server']} | {row['answered']}/{row['asked']} {row['client']} "
        f"| {row['rss_before_mib']:.1f} -> {row['rss_peak_mib']:.1f} MiB | {row['log_lines']:,} "
        f"| {_outcome_text(row)} |"
    )


NOTES = [
    "*closed by the server*: attack connections the server had closed when the attack",
    "ended (evicted for newer connections, past a deadline, or idle). *MB of body sent*:",
    "what the attacker's kernel accepted; the sidecar answers 405 from the headers and",
    "reads at most 256 kB more of a refused request before it drops the connection, so",
    "the rest never reaches it. *MB of queries accepted*: the same for the pipelining",
    "clients, which never read a reply; the sidecar stops reading a client whose replies",
    "pile up (DNS: and closes it at its query deadline).",
]


def render(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"`python benchmarks/sidecar_abuse.py{' --before ' + args.before if args.before else ''} "
        "--write-readme`: each attack of issue 15 for "
        f"{args.seconds:g} s against a fresh",
        "sidecar (default `sidecar.limits`, one process) and a fresh stock unbound (one thread,",
        "the same name from local-data), both on ::1, while a legitimate client asks every",
        f"{args.interval:g} s: a new TCP connection per query (1 s timeout) for the `tcp-*` "
        "attacks, UDP for the",
        "log flood, `GET /v1/health` (2 s timeout) for the lookup service's `http-*` attacks",
        "(the sidecar only). RSS: before the attack -> its peak (sampled every 0.1 s). Log",
        "lines: what the server wrote during the attack. The attacks are described in the",
        'script\'s docstring; the defences in docs/dns.md, "Limits".',
        *(
            [
                f"*sidecar before*: the sidecar of commit {args.before}, the last one without",
                "these limits (`--before`), under the same attacks.",
            ]
            if args.before
            else []
        ),
        "",
        machine_line("unbound " + _unbound_version()),
        "",
        "| attack | server | legitimate answered | RSS | log lines | the attack |",
        "|---|---|---:|---:|---:|---|",
        *(_row_text(row) for row in rows),
        "",
        *NOTES,
    ]
    return "\n".join(lines) + "\n"


def _unbound_version() -> str:
    import subprocess

    out = subprocess.run(["unbound", "-V"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"Version ([0-9.]+)", out)
    return match.group(1) if match else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each attack")
    parser.add_argument("--interval", type=float, default=0.1, help="legitimate query interval")
    parser.add_argument("--attacks", default="", help="comma-separated subset of the attacks")
    parser.add_argument("--smoke", action="store_true", help="small attacks (the tests' run)")
    parser.add_argument(
        "--before", default="", help="also attack the sidecar of this commit (before the limits)"
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON only")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    rows = measure(args)
    return emit(
        rows,
        lambda: render(rows, args),
        json_only=args.json,
        heading=HEADING if args.write_readme else None,
    )


if __name__ == "__main__":
    sys.exit(main())
