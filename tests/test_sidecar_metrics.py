"""The sidecar's /metrics, scraped over HTTP from a real `v6alt sidecar` process.

Real DNS traffic (dig over UDP and TCP, raw TCP connections), a real unbound
as the forwarder behind a silent one, and real lookup-service requests; the
counters must move by exactly what was sent.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from ipaddress import ip_address

import pytest

pytest.importorskip("twisted", reason="the sidecar needs v6alt[sidecar]")
pytest.importorskip("prometheus_client", reason="the sidecar needs v6alt[sidecar]")
if shutil.which("dig") is None:
    pytest.skip("dig is not installed (apt-get install dnsutils)", allow_module_level=True)

from tests.metrics_support import Scrape, fetch, parse
from v6alt.lab.local_servers import (
    Sidecar,
    dig,
    free_port,
    running_sidecar,
    running_unbound,
    unbound_config,
)
from v6alt.policy import rule_ids

pytestmark = pytest.mark.integration

NAME = "fiabbgadu-e.v6.alt"  # 2a00:1098:3a0::1
LOOPBACK = "a-e.v6.alt"  # ::1: never dialled, NXDOMAIN
FORWARDED = "www.example.test"
FORWARDED_ADDRESS = "2a00:1098:3a0::99"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real unbound that answers one name outside v6.alt."""
    directory = tmp_path_factory.mktemp("unbound")
    port = free_port()
    config = unbound_config(
        directory, port, local_data=[f"{FORWARDED}. 300 IN AAAA {FORWARDED_ADDRESS}"]
    )
    with running_unbound(config, port):
        yield port


@pytest.fixture(scope="module")
def sidecar(upstream: int) -> Iterator[Sidecar]:
    # The first forwarder is a port nobody answers on: every forwarded query
    # times out there once (2 s), then unbound answers.
    silent = free_port()
    config = f"sidecar:\n  forwarders: ['[::1]:{silent}', '[::1]:{upstream}']\n"
    with running_sidecar(config) as running:
        yield running


def scrape(sidecar: Sidecar) -> Scrape:
    return parse(fetch(f"{sidecar.lookup_url}/metrics"))


def lookup(sidecar: Sidecar, path: str) -> int:
    try:
        with urllib.request.urlopen(f"{sidecar.lookup_url}{path}", timeout=10) as response:
            json.loads(response.read())
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def moved(after: Scrape, before: Scrape, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


def test_metrics_endpoint_speaks_the_prometheus_text_format(sidecar: Sidecar) -> None:
    with urllib.request.urlopen(f"{sidecar.lookup_url}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        got = parse(response.read().decode())
    for family in (
        "v6alt_sidecar_dns_queries",
        "v6alt_sidecar_dns_cache_hits",
        "v6alt_sidecar_dns_cache_entries",
        "v6alt_sidecar_dns_tcp_connections_open",
        "v6alt_sidecar_dns_tcp_connections_closed",
        "v6alt_sidecar_forwarder_answers",
        "v6alt_sidecar_forwarder_timeouts",
        "v6alt_sidecar_forwarder_latency_seconds",
        "v6alt_sidecar_lookup_requests",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
    ):
        assert got.has_family(family), family
    assert got.value("process_resident_memory_bytes") > 10 * 2**20
    assert time.time() - 600 < got.value("process_start_time_seconds") <= time.time()
    assert got.value("v6alt_sidecar_dns_cache_capacity") == 8192


def test_dns_queries_by_transport_type_and_rcode(sidecar: Sidecar) -> None:
    before = scrape(sidecar)
    port = sidecar.dns_port
    for _ in range(3):  # the first is built, the two others come from the reply cache
        # +nocookie: dig's random EDNS cookie would make every query's bytes new.
        assert dig("+short", "+nocookie", "AAAA", NAME, server_port=port).split() == [
            "2a00:1098:3a0::1"
        ]
    assert "NXDOMAIN" in dig("AAAA", LOOPBACK, server_port=port)
    assert "NXDOMAIN" in dig("AAAA", LOOPBACK, server_port=port)  # refusals are not cached
    assert dig("+short", "+tcp", "AAAA", NAME, server_port=port).split() == ["2a00:1098:3a0::1"]
    assert dig("+short", "-x", "2a00:1098:3a0::1", server_port=port).split() == [f"{NAME}."]
    after = scrape(sidecar)
    queries = "v6alt_sidecar_dns_queries_total"
    assert moved(after, before, queries, transport="udp", qtype="AAAA", rcode="NOERROR") == 3
    assert moved(after, before, queries, transport="udp", qtype="AAAA", rcode="NXDOMAIN") == 2
    assert moved(after, before, queries, transport="tcp", qtype="AAAA", rcode="NOERROR") == 1
    assert moved(after, before, queries, transport="udp", qtype="PTR", rcode="NOERROR") == 1
    assert moved(after, before, queries) == 7
    hits = "v6alt_sidecar_dns_cache_hits_total"
    assert moved(after, before, hits, qtype="AAAA", rcode="NOERROR") == 2
    assert moved(after, before, hits) == 2
    assert after.value("v6alt_sidecar_dns_cache_entries") >= 2  # the AAAA and the PTR


def test_forwarder_timeout_answer_and_latency(sidecar: Sidecar) -> None:
    before = scrape(sidecar)
    answer = dig("+short", "+time=5", "AAAA", FORWARDED, server_port=sidecar.dns_port)
    assert answer.split() == [FORWARDED_ADDRESS]
    after = scrape(sidecar)
    assert moved(after, before, "v6alt_sidecar_forwarder_timeouts_total") == 1
    assert moved(after, before, "v6alt_sidecar_forwarder_answers_total") == 1
    assert moved(after, before, "v6alt_sidecar_forwarder_latency_seconds_count") == 1
    latency = moved(after, before, "v6alt_sidecar_forwarder_latency_seconds_sum")
    assert 2.0 <= latency < 4.0  # the silent forwarder's timeout, then unbound
    queries = "v6alt_sidecar_dns_queries_total"
    assert moved(after, before, queries, transport="udp", qtype="AAAA", rcode="NOERROR") == 1


def test_tcp_connections_open_evicted_and_idle(sidecar: Sidecar) -> None:
    before = scrape(sidecar)
    # sidecar.limits.tcp_connections_per_address: every client here is ::1.
    limit = 64
    sockets = [socket.create_connection(("::1", sidecar.dns_port)) for _ in range(limit + 1)]
    try:
        deadline = time.monotonic() + 10
        while True:
            now = scrape(sidecar)
            evicted = moved(
                now, before, "v6alt_sidecar_dns_tcp_connections_closed_total", reason="per_address"
            )
            if evicted >= 1 and now.value("v6alt_sidecar_dns_tcp_connections_open") == limit:
                break
            assert time.monotonic() < deadline, "the oldest connection was not evicted"
            time.sleep(0.1)
        assert evicted == 1
        with contextlib.suppress(ConnectionResetError):  # the oldest went, for the newest
            assert sockets[0].recv(1) == b""
    finally:
        for sock in sockets:
            sock.close()
    # One connection left idle: closed after the idle timeout (10 s).
    idle = socket.create_connection(("::1", sidecar.dns_port))
    try:
        idle.settimeout(15)
        assert idle.recv(1) == b""  # closed by the sidecar
    finally:
        idle.close()
    after = scrape(sidecar)
    closed = "v6alt_sidecar_dns_tcp_connections_closed_total"
    assert moved(after, before, closed, reason="idle") == 1
    assert moved(after, before, closed, reason="per_address") == 1
    assert after.value("v6alt_sidecar_dns_tcp_connections_open") == 0


def test_lookup_requests_by_endpoint_verdict_and_rule(sidecar: Sidecar) -> None:
    before = scrape(sidecar)
    assert lookup(sidecar, f"/v1/resolve?name={NAME}") == 200
    assert lookup(sidecar, f"/v1/resolve?name={LOOPBACK}") == 200
    assert lookup(sidecar, "/v1/resolve?name=example.org") == 200
    assert lookup(sidecar, f"/v1/peer?name={NAME}&address=2a00:1098:3a0::1") == 200
    assert lookup(sidecar, f"/v1/peer?name={NAME}&address=2a00:1098:3a0::2") == 200
    assert lookup(sidecar, "/v1/resolve") == 400
    assert lookup(sidecar, "/v1/nothing-here") == 404
    assert lookup(sidecar, "/v1/health") == 200
    after = scrape(sidecar)
    name = "v6alt_sidecar_lookup_requests_total"

    def n(**labels: str) -> float:
        return moved(after, before, name, **labels)

    assert n(endpoint="resolve", verdict="allowed", rule="allow_global_unicast") == 1
    assert n(endpoint="resolve", verdict="refused", rule="never_dial_loopback") == 1
    assert n(endpoint="resolve", verdict="not_v6alt") == 1
    assert n(endpoint="resolve", verdict="bad_request") == 1
    assert n(endpoint="peer", verdict="allowed", rule="allow_global_unicast") == 1
    assert n(endpoint="peer", verdict="mismatch") == 1
    assert n(endpoint="unknown", verdict="not_found") == 1
    assert n(endpoint="health", verdict="ok") == 1
    # Exactly one scrape between the two: counted under its own endpoint.
    assert n(endpoint="metrics") == 1
    assert n() == 9


def test_label_values_stay_bounded_under_hostile_input(sidecar: Sidecar) -> None:
    """Many distinct names, addresses, paths and query types add no series."""
    scrape(sidecar)  # every figure exists once
    series_before = len(scrape(sidecar).samples)
    port = sidecar.dns_port
    for i in range(40):
        lookup(sidecar, f"/v1/resolve?name=x{i}.v6.alt")
        lookup(sidecar, f"/v1/peer?name=a{i}.example&address=2001:db8::{i:x}")
        lookup(sidecar, f"/v1/path-{i}")
        lookup(sidecar, f"/v1/name?address=2a00::{i:x}")
    for qtype in ("TYPE999", "TYPE1234", "TYPE4321", "CAA", "HINFO"):
        dig("+tries=1", qtype, NAME, server_port=port)
    got = scrape(sidecar)
    assert got.label_values("v6alt_sidecar_lookup_requests_total", "rule") <= rule_ids() | {""}
    qtypes = got.label_values("v6alt_sidecar_dns_queries_total", "qtype")
    assert "other" in qtypes
    assert not any(q.startswith("TYPE") for q in qtypes)
    for labels in got.series("v6alt_sidecar_lookup_requests_total"):
        assert not any("example" in v or "::" in v or "path" in v for v in labels.values())
    # A handful of new series (the new verdicts, qtype "other"), not one per input.
    assert len(got.samples) - series_before < 15


def _query(name: str, qtype: int, ident: int = 0x1234) -> bytes:
    """A plain DNS query (RD set, no EDNS): the same bytes for the same question."""
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split("."))
    return (
        struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)
        + labels
        + b"\0"
        + (struct.pack("!HH", qtype, 1))
    )


def _ask(port: int, packet: bytes) -> bytes:
    """One query from a socket of its own: a new source port every time, so
    SO_REUSEPORT spreads the queries over the worker processes."""
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(packet, ("::1", port))
        reply, _ = sock.recvfrom(4096)
    assert reply[:2] == packet[:2]
    return reply


def _workers_of(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return [int(p) for p in children.read().split()]


@pytest.fixture
def sidecar_with_workers(upstream: int) -> Iterator[Sidecar]:
    config = f"sidecar:\n  forwarders: ['[::1]:{upstream}']\n"
    with running_sidecar(config, workers=3) as running:
        yield running


def test_workers_counts_reach_the_primarys_metrics(sidecar_with_workers: Sidecar) -> None:
    """--workers 3: /metrics counts every process's queries, exactly."""
    sidecar = sidecar_with_workers
    port = sidecar.dns_port
    assert len(_workers_of(sidecar.process.pid)) == 2
    before = scrape(sidecar)
    sent = {
        ("AAAA", "NOERROR"): (_query(NAME, 28), 120),  # cacheable
        ("PTR", "NOERROR"): (
            _query(ip_address("2a00:1098:3a0::1").reverse_pointer, 12),
            90,
        ),
        ("AAAA", "NXDOMAIN"): (_query(LOOPBACK, 28), 60),  # refused: never cached
        ("AAAA", "NOERROR", "forwarded"): (_query(FORWARDED, 28), 30),  # to unbound, uncached
    }
    for packet, count in sent.values():
        for _ in range(count):
            _ask(port, packet)
    total = sum(count for _, count in sent.values())
    assert total == 300
    queries = "v6alt_sidecar_dns_queries_total"
    deadline = time.monotonic() + 10
    while moved(scrape(sidecar), before, queries) < total:
        assert time.monotonic() < deadline, "the workers' counts did not reach /metrics"
        time.sleep(0.2)
    time.sleep(1.5)  # one more snapshot from every worker: nothing counted twice
    after = scrape(sidecar)

    def n(name: str, **labels: str) -> float:
        return moved(after, before, name, **labels)

    assert n(queries) == 300
    assert n(queries, transport="udp") == 300
    assert n(queries, qtype="AAAA", rcode="NOERROR") == 150
    assert n(queries, qtype="PTR", rcode="NOERROR") == 90
    assert n(queries, qtype="AAAA", rcode="NXDOMAIN") == 60
    assert n(queries, qtype="AAAA") == 210
    assert n(queries, rcode="NOERROR") == 240
    assert n("v6alt_sidecar_forwarder_answers_total") == 30
    assert n("v6alt_sidecar_forwarder_latency_seconds_count") == 30
    assert n("v6alt_sidecar_forwarder_timeouts_total") == 0
    # Each process has its own reply cache: the first AAAA and the first PTR
    # a process sees are built, every later one is a hit there. One process
    # holds at most these 2 entries: 3 or more mean several processes answered.
    entries = after.value("v6alt_sidecar_dns_cache_entries")
    assert 3 <= entries <= 6, entries
    hits = "v6alt_sidecar_dns_cache_hits_total"
    assert n(hits) == 120 + 90 - entries
    assert after.value("v6alt_sidecar_dns_cache_capacity") == 3 * 8192

    # A worker that dies keeps its counts (its cache goes with it).
    victim = _workers_of(sidecar.process.pid)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while True:
        gone = scrape(sidecar)
        if gone.value("v6alt_sidecar_dns_cache_capacity") == 2 * 8192:
            break
        assert time.monotonic() < deadline, "the dead worker's cache is still counted"
        time.sleep(0.2)
    assert moved(gone, before, queries) == 300
    assert moved(gone, before, hits) == n(hits)
    assert moved(gone, before, "v6alt_sidecar_forwarder_answers_total") == 30
