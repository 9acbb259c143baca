"""The sidecar under abuse, over real sockets: a real `v6alt sidecar` process on ::1.

Each test is one attack from issue 15 (or a close relative) with the default
limits of ``sidecar.limits``; the legitimate client must still be served, and
the attacker must get a status or be closed. How fast, and how unbound does
under the same attacks, is measured by benchmarks/sidecar_abuse.py.
"""

from __future__ import annotations

import random
import re
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("twisted", reason="the sidecar needs v6alt[sidecar]")

from v6alt.dns_wire import build_query
from v6alt.lab.local_servers import (
    Sidecar,
    free_port,
    running_sidecar,
    running_unbound,
    unbound_config,
)

pytestmark = pytest.mark.integration

NAME = "fiabbgadu-e.v6.alt"
ADDRESS = bytes.fromhex("2a00109803a000000000000000000001")
# The defaults of sidecar.limits (docs/config.md).
TCP_PER_ADDRESS = 64
TCP_QUERY_TIMEOUT = 5.0
LOOKUP_CONNECTIONS = 64
LOOKUP_REQUEST_TIMEOUT = 5.0
LOG_LINES_PER_MINUTE = 20


@pytest.fixture()
def sidecar() -> Iterator[Sidecar]:
    with running_sidecar() as running:
        yield running


def framed(query: bytes) -> bytes:
    return struct.pack("!H", len(query)) + query


def read_replies(sock: socket.socket, count: int, timeout: float = 5.0) -> list[bytes]:
    """Up to ``count`` framed replies, until the stream ends or ``timeout`` passes."""
    sock.settimeout(timeout)
    buffer = b""
    replies: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(replies) < count and time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        buffer += chunk
        while len(buffer) >= 2 and len(buffer) >= 2 + int.from_bytes(buffer[:2], "big"):
            length = int.from_bytes(buffer[:2], "big")
            replies.append(buffer[2 : 2 + length])
            buffer = buffer[2 + length :]
    return replies


def tcp_query_answered(port: int, ident: int) -> bool:
    """One legitimate query over a new TCP connection: answered with the address?"""
    try:
        with socket.create_connection(("::1", port), timeout=5) as sock:
            sock.sendall(framed(build_query(NAME, ident=ident)))
            replies = read_replies(sock, 1)
    except OSError:
        return False
    return bool(replies) and replies[0][:2] == ident.to_bytes(2, "big") and ADDRESS in replies[0]


def closed_by_server(sock: socket.socket) -> bool:
    """Has the server closed (or reset) this connection? Does not block."""
    sock.setblocking(False)
    try:
        return sock.recv(4096) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


def tcp_state(sock: socket.socket) -> int:
    """The kernel's TCP state of the socket (1 established, 7 closed, 8 close-wait),
    read without reading any data."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def wait_closed(sock: socket.socket, seconds: float, trickle: bytes = b"") -> bool:
    """Send ``trickle`` one byte every 0.25 s until the server closes, at most ``seconds``."""
    deadline = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < deadline:
        if closed_by_server(sock):
            return True
        if sent < len(trickle):
            try:
                sock.send(trickle[sent : sent + 1])
            except OSError:
                return True
            sent += 1
        time.sleep(0.25)
    return False


# --- DNS over TCP ---------------------------------------------------------------


def test_trickling_clients_do_not_lock_out_tcp_queries(sidecar: Sidecar) -> None:
    """300 connections that each sent one byte of a query (and would trickle on):
    legitimate queries on new connections are answered, and one address holds at
    most its share of the slots."""
    attackers = []
    try:
        for _ in range(300):
            sock = socket.create_connection(("::1", sidecar.dns_port), timeout=5)
            sock.send(b"\x00")
            attackers.append(sock)
        answered = sum(tcp_query_answered(sidecar.dns_port, 100 + i) for i in range(10))
        assert answered == 10
        time.sleep(0.5)
        still_open = sum(not closed_by_server(s) for s in attackers)
        assert still_open <= TCP_PER_ADDRESS
    finally:
        for sock in attackers:
            sock.close()


def test_a_query_must_arrive_whole_within_its_deadline(sidecar: Sidecar) -> None:
    """A client trickling one byte every 0.25 s is closed once the query timeout has
    passed since its first byte, although it never stops sending."""
    query = framed(build_query(NAME, ident=7))
    slow = (query * 3)[:120]  # 120 bytes at 4 per second: 30 s, far past the deadline
    with socket.create_connection(("::1", sidecar.dns_port), timeout=5) as sock:
        started = time.monotonic()
        assert wait_closed(sock, TCP_QUERY_TIMEOUT + 4, trickle=slow)
        assert time.monotonic() - started >= TCP_QUERY_TIMEOUT - 1


def test_half_closed_client_gets_every_answer(sidecar: Sidecar) -> None:
    """50 pipelined queries, then shutdown for writing: 50 answers, then the end."""
    queries = [build_query(f"h{i}.{NAME}", ident=i) for i in range(50)]
    with socket.create_connection(("::1", sidecar.dns_port), timeout=5) as sock:
        sock.sendall(b"".join(framed(q) for q in queries))
        sock.shutdown(socket.SHUT_WR)
        replies = read_replies(sock, 51)
    assert sorted(int.from_bytes(r[:2], "big") for r in replies) == list(range(50))


def test_half_closed_client_gets_forwarded_answers_too(tmp_path: Path) -> None:
    """The same with queries the sidecar forwards (to a real unbound): the connection
    stays until the last forwarded answer is written."""
    port = free_port()
    config = unbound_config(tmp_path, port, local_data=["www.example.test. 300 IN A 192.0.2.7"])
    with (
        running_unbound(config, port),
        running_sidecar(f"sidecar:\n  forwarders: ['[::1]:{port}']\n") as sc,
        socket.create_connection(("::1", sc.dns_port), timeout=5) as sock,
    ):
        queries = [build_query("www.example.test", 1, ident=i) for i in range(20)]
        queries += [build_query(f"h{i}.{NAME}", ident=100 + i) for i in range(20)]
        sock.sendall(b"".join(framed(q) for q in queries))
        sock.shutdown(socket.SHUT_WR)
        replies = read_replies(sock, 41)
    idents = sorted(int.from_bytes(r[:2], "big") for r in replies)
    assert idents == [*range(20), *range(100, 120)]
    assert all(bytes([192, 0, 2, 7]) in r for r in replies if r[:2] < b"\x00\x64")


def test_pipelining_client_that_never_reads_is_cut_off(sidecar: Sidecar) -> None:
    """A client that pipelines queries without reading a reply: the sidecar stops
    reading it (its replies are not piled up in memory) and closes it, while other
    clients are answered."""
    flood = b"".join(framed(build_query(f"f{i}.{NAME}", ident=i)) for i in range(2000))
    with socket.create_connection(("::1", sidecar.dns_port), timeout=5) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        sent = 0
        deadline = time.monotonic() + TCP_QUERY_TIMEOUT + 10
        while time.monotonic() < deadline and tcp_state(sock) == 1:
            try:
                sent += sock.send(flood)
            except BlockingIOError:
                time.sleep(0.05)
            except OSError:
                break
        assert tcp_query_answered(sidecar.dns_port, 4242)
        assert tcp_state(sock) != 1, f"still open after {sent:,} bytes of queries"
    assert sent < 64 * 1024 * 1024


def test_tcp_evictions_are_counted(sidecar: Sidecar) -> None:
    from tests.metrics_support import fetch, parse

    sockets = [socket.create_connection(("::1", sidecar.dns_port)) for _ in range(70)]
    try:
        with socket.create_connection(("::1", sidecar.dns_port), timeout=5) as slow:
            slow.send(b"\x00")
            assert wait_closed(slow, TCP_QUERY_TIMEOUT + 4)
        scrape = parse(fetch(f"{sidecar.lookup_url}/metrics"))
        closed = "v6alt_sidecar_dns_tcp_connections_closed_total"
        assert scrape.value(closed, reason="per_address") >= 70 + 1 - TCP_PER_ADDRESS
        assert scrape.value(closed, reason="deadline") == 1
        assert scrape.value("v6alt_sidecar_dns_tcp_connections_open") <= TCP_PER_ADDRESS
    finally:
        for sock in sockets:
            sock.close()


# --- logs -------------------------------------------------------------------------


def test_log_lines_are_bounded_whatever_the_packets_say(sidecar: Sidecar) -> None:
    """Random query classes, opcodes and malformed counts make no new log lines past
    the limit (they were keyed by the values the client chose)."""
    rng = random.Random(15)
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        for i in range(6000):
            kind = i % 3
            if kind == 0:
                packet = build_query(NAME, ident=i, qclass=rng.randrange(2, 65536))
            elif kind == 1:
                packet = struct.pack("!HHHHHH", i, 0x0100, rng.randrange(2, 65536), 0, 0, 0)
            else:
                packet = build_query(f"x{i}.example.net", ident=i)
            sock.sendto(packet, ("::1", sidecar.dns_port))
            if i % 500 == 0:
                time.sleep(0.01)
    time.sleep(1.0)
    lines = [line for line in sidecar.log().splitlines() if "dns query" in line]
    assert 3 <= len(lines) <= LOG_LINES_PER_MINUTE, "\n".join(lines[:30])
    assert tcp_query_answered(sidecar.dns_port, 9)


# --- the lookup service -------------------------------------------------------------


def http_exchange(port: int, head: bytes, timeout: float = 5.0) -> bytes:
    """Send ``head`` (no body, whatever it announces) and read the answer until the
    server closes, or ``timeout``; b"" when nothing came."""
    with socket.create_connection(("::1", port), timeout=timeout) as sock:
        sock.sendall(head)
        answer = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            answer += chunk
        return answer


def status_of(answer: bytes) -> int | None:
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    return int(match.group(1)) if match else None


def lookup_ok(port: int) -> bool:
    answer = http_exchange(port, b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    return status_of(answer) == 200 and b'"ok": true' in answer


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"POST /v1/resolve HTTP/1.1\r\nHost: x\r\nContent-Length: 500000000\r\n\r\n", 405),
        (b"PUT /v1/pin HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 405),
        (b"GET /v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", 413),
        (b"GET /v1/health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 413),
    ],
)
def test_request_bodies_are_refused_before_they_are_read(
    sidecar: Sidecar, head: bytes, status: int
) -> None:
    """The status comes from the headers alone: the body announced is never sent."""
    answer = http_exchange(sidecar.lookup_port, head)
    assert status_of(answer) == status, answer[:200]
    assert b'"error"' in answer
    assert lookup_ok(sidecar.lookup_port)


def test_oversize_requests_get_a_status(sidecar: Sidecar) -> None:
    """A 70 kB query gets 414 (it used to get its connection dropped), 20 kB of
    headers 431."""
    long_query = b"GET /v1/resolve?name=" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert status_of(http_exchange(sidecar.lookup_port, long_query)) == 414
    headers = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 900) for i in range(22))
    big_head = b"GET /v1/health HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n"
    assert status_of(http_exchange(sidecar.lookup_port, big_head)) == 431
    assert lookup_ok(sidecar.lookup_port)


def test_slow_headers_get_408_at_the_deadline(sidecar: Sidecar) -> None:
    """Headers trickled one byte every 0.25 s: 408 once the request timeout has
    passed since the first byte; other clients are answered meanwhile."""
    head = b"GET /v1/health HTTP/1.1\r\n" + b"X-Slow: " + b"s" * 200 + b"\r\n\r\n"
    with socket.create_connection(("::1", sidecar.lookup_port), timeout=5) as sock:
        deadline = time.monotonic() + LOOKUP_REQUEST_TIMEOUT + 4
        answer = b""
        for byte in head:
            if time.monotonic() > deadline:
                break
            try:
                sock.send(bytes([byte]))
            except OSError:
                break
            sock.setblocking(False)
            try:
                answer += sock.recv(4096)
            except BlockingIOError:
                pass
            except OSError:
                break
            finally:
                sock.setblocking(True)
            if answer:
                break
            time.sleep(0.25)
        assert lookup_ok(sidecar.lookup_port)
    assert status_of(answer) == 408, answer[:200]


def test_many_connections_from_one_address_do_not_lock_out(sidecar: Sidecar) -> None:
    """200 idle connections: a new request is answered, and the oldest idle ones are
    closed for it (at most the connection limit stays open)."""
    idle = [socket.create_connection(("::1", sidecar.lookup_port), timeout=5) for _ in range(200)]
    try:
        assert lookup_ok(sidecar.lookup_port)
        time.sleep(0.5)
        still_open = sum(not closed_by_server(s) for s in idle)
        assert still_open <= LOOKUP_CONNECTIONS
    finally:
        for sock in idle:
            sock.close()


def test_pipelined_requests_are_all_answered_in_order(sidecar: Sidecar) -> None:
    requests = b"".join(
        b"GET /v1/name?address=2a00::%x HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(1, 31)
    )
    requests += b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = http_exchange(sidecar.lookup_port, requests)
    assert answer.count(b"HTTP/1.1 200 OK") == 31
    assert answer.index(b'"2a00::1"') < answer.index(b'"2a00::1e"')


def test_pipelining_http_client_that_never_reads_is_not_answered_further(
    sidecar: Sidecar,
) -> None:
    """Pipelined requests from a client that reads no answer: once the answers
    fill the connection the sidecar answers (and reads) nothing more, instead of
    answering everything it read into memory; other clients are served."""
    from tests.metrics_support import fetch, parse

    def answered() -> float:
        scrape = parse(fetch(f"{sidecar.lookup_url}/metrics"))
        return scrape.value("v6alt_sidecar_lookup_requests_total", endpoint="resolve",
                            verdict="allowed", rule="allow_global_unicast")  # fmt: skip

    request = f"GET /v1/resolve?name={NAME} HTTP/1.1\r\nHost: x\r\n\r\n".encode() * 500
    with socket.create_connection(("::1", sidecar.lookup_port), timeout=5) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        end = time.monotonic() + 3
        while time.monotonic() < end:
            try:
                sock.send(request)
            except BlockingIOError:
                time.sleep(0.01)
        time.sleep(2)
        first = answered()
        time.sleep(3)
        assert answered() == first, "still answering a client that reads nothing"
        # What the socket buffers hold (tcp_wmem's 4 MiB at most, about 7,000 answers
        # here), not every request read: 65,000 answers piled up in memory before.
        assert first < 20_000
        assert lookup_ok(sidecar.lookup_port)


# --- configuration ----------------------------------------------------------------------


def test_limits_come_from_the_config_and_sighup() -> None:
    """``sidecar.limits`` at start, and again after SIGHUP for new connections."""
    import signal

    config = "sidecar:\n  limits:\n    tcp_connections_per_address: 5\n"
    with running_sidecar(config) as sc:
        first = [socket.create_connection(("::1", sc.dns_port), timeout=5) for _ in range(12)]
        time.sleep(0.5)
        assert sum(not closed_by_server(s) for s in first) == 5
        for sock in first:
            sock.close()
        sc.config_path.write_text(config.replace(": 5", ": 9"))
        sc.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "reloaded" not in sc.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        second = [socket.create_connection(("::1", sc.dns_port), timeout=5) for _ in range(12)]
        time.sleep(0.5)
        assert sum(not closed_by_server(s) for s in second) == 9
        for sock in second:
            sock.close()
        assert tcp_query_answered(sc.dns_port, 5)
