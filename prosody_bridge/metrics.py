"""The sidecar's Prometheus metrics, served as ``/metrics`` on the lookup listener.

One registry per :class:`SidecarMetrics` (not prometheus_client's global one),
holding the process collector (memory, start time, CPU, file descriptors) and
the sidecar's own families (docs/metrics.md).

The DNS path counts in plain integers, not in prometheus_client counters: a
cached UDP answer costs one recvfrom, one dict lookup and one sendto, and a
counter's lock would be a visible share of that. Each reply-cache entry
carries the key its answers are counted under (transport, query type,
response code), so a cache hit adds one dict increment; a collector turns the
integers into samples when Prometheus scrapes.

With ``--workers N`` the extra UDP workers count in their own processes and
send the primary a cumulative snapshot of their counts (:meth:`snapshot`)
once a second; the primary keeps the latest one per worker
(:meth:`absorb`) and adds them into its own samples when scraped.

Every label value comes from a fixed set: query types outside a list of known
ones are "other", response codes beyond REFUSED are "other", lookup verdicts
and rule identifiers come from the policy. No name or address is ever a label.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from v6alt import __version__

__all__ = [
    "CONTENT_TYPE",
    "LOOKUP_ENDPOINTS",
    "QTYPE_NAMES",
    "RCODE_NAMES",
    "DnsKey",
    "SidecarMetrics",
    "WorkerCounts",
    "dns_key",
]

PREFIX: Final = "v6alt_sidecar_"
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

QTYPE_NAMES: Final = {
    1: "A",
    2: "NS",
    5: "CNAME",
    6: "SOA",
    12: "PTR",
    15: "MX",
    16: "TXT",
    28: "AAAA",
    33: "SRV",
    35: "NAPTR",
    43: "DS",
    48: "DNSKEY",
    52: "TLSA",
    64: "SVCB",
    65: "HTTPS",
    251: "IXFR",
    252: "AXFR",
    255: "ANY",
}
RCODE_NAMES: Final = ("NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED")
#: The lookup service's endpoints, as labels; any other path is "unknown".
LOOKUP_ENDPOINTS: Final = ("health", "resolve", "peer", "pin", "name", "metrics", "unknown")
#: Why the sidecar closed a DNS-over-TCP connection (docs/metrics.md).
TCP_CLOSE_REASONS: Final = ("evicted", "per_address", "idle", "deadline")
#: Seconds from a query handed to the forwarders to its answer.
FORWARD_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)

#: (transport, query type, response code, answered from the reply cache)
DnsKey = tuple[str, str, str, bool]
#: A sample of a prometheus_client family: (sample name, sorted label pairs).
SampleKey = tuple[str, tuple[tuple[str, str], ...]]


@dataclass
class WorkerCounts:
    """The latest snapshot one UDP worker sent; counters stay when it dies."""

    dns: dict[DnsKey, int] = field(default_factory=dict)
    samples: dict[SampleKey, float] = field(default_factory=dict)
    cache_entries: int = 0
    cache_capacity: int = 0
    alive: bool = True


def _qtype(packet: bytes) -> str:
    """The query type label of a query packet ("none" without a readable question)."""
    if len(packet) < 12 or packet[4:6] == b"\x00\x00":
        return "none"
    pos = 12
    end = len(packet)
    while pos < end:
        length = packet[pos]
        if length == 0:
            pos += 1
            break
        if length & 0xC0:
            return "none"  # no compression in a question's name
        pos += 1 + length
    else:
        return "none"
    if pos + 2 > end:
        return "none"
    return QTYPE_NAMES.get((packet[pos] << 8) | packet[pos + 1], "other")


def _rcode(reply: bytes) -> str:
    if len(reply) < 4:
        return "none"
    code = reply[3] & 0x0F
    return RCODE_NAMES[code] if code < len(RCODE_NAMES) else "other"


def dns_key(transport: str, query: bytes, reply: bytes, *, cached: bool = False) -> DnsKey:
    """The key a query and its reply (b"" when none was sent) are counted under."""
    return (transport, _qtype(query), _rcode(reply), cached)


class _SidecarCollector(Collector):
    """The integer counters and live figures, as samples at scrape time."""

    def __init__(self, metrics: SidecarMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        queries = CounterMetricFamily(
            PREFIX + "dns_queries",
            "DNS queries answered (or dropped: rcode none), by transport, query type and "
            "response code",
            labels=("transport", "qtype", "rcode"),
        )
        hits = CounterMetricFamily(
            PREFIX + "dns_cache_hits",
            "UDP queries answered from the reply cache",
            labels=("qtype", "rcode"),
        )
        totals: dict[tuple[str, str, str], int] = defaultdict(int)
        cached: dict[tuple[str, str], int] = defaultdict(int)
        workers = list(m.workers.values())
        for counts in [m.dns, *(w.dns for w in workers)]:
            for (transport, qtype, rcode, from_cache), n in list(counts.items()):
                totals[(transport, qtype, rcode)] += n
                if from_cache:
                    cached[(qtype, rcode)] += n
        for labels, n in sorted(totals.items()):
            queries.add_metric(labels, n)
        for key, n in sorted(cached.items()):
            hits.add_metric(key, n)
        yield queries
        yield hits
        # Every UDP process has a reply cache of its own: the sums over the
        # running ones (a dead worker's cache went with it).
        alive = [w for w in workers if w.alive]
        yield GaugeMetricFamily(
            PREFIX + "dns_cache_entries",
            "Replies in the reply caches (one per UDP process)",
            value=m.cache_size() + sum(w.cache_entries for w in alive),
        )
        yield GaugeMetricFamily(
            PREFIX + "dns_cache_capacity",
            "Replies the reply caches hold at most (one per UDP process)",
            value=m.cache_capacity() + sum(w.cache_capacity for w in alive),
        )
        yield GaugeMetricFamily(
            PREFIX + "dns_tcp_connections_open",
            "DNS-over-TCP connections open now",
            value=m.tcp_open(),
        )


class _MergedCollector(Collector):
    """prometheus_client families of this process plus the workers' samples of them."""

    def __init__(self, metrics: SidecarMetrics, families: Iterable[Collector]) -> None:
        self._metrics = metrics
        self._families = tuple(families)

    def collect(self) -> Iterator[Metric]:
        extra: dict[SampleKey, float] = defaultdict(float)
        for worker in list(self._metrics.workers.values()):
            for key, value in worker.samples.items():
                extra[key] += value
        for family in self._families:
            for metric in family.collect():
                if extra:
                    merged = Metric(metric.name, metric.documentation, metric.type, metric.unit)
                    merged.samples = [
                        sample._replace(
                            value=sample.value
                            + extra.get((sample.name, tuple(sorted(sample.labels.items()))), 0.0)
                        )
                        for sample in metric.samples
                    ]
                    metric = merged
                yield metric


def _zero() -> int:
    return 0


def _family_samples(families: Iterable[Collector]) -> list[list[Any]]:
    """The counting samples of ``families`` as JSON (``_created`` is the same everywhere)."""
    return [
        [sample.name, sorted(sample.labels.items()), sample.value]
        for family in families
        for metric in family.collect()
        for sample in metric.samples
        if not sample.name.endswith("_created")
    ]


class SidecarMetrics:
    """Every metric of one sidecar process; ``render()`` is the ``/metrics`` body."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry()
        self.clock = clock
        ProcessCollector(registry=self.registry)
        #: DNS query counts by :data:`DnsKey`; the hot path increments it directly.
        self.dns: defaultdict[DnsKey, int] = defaultdict(_zero)
        # Live figures, read at scrape time; the sidecar points them at its objects.
        self.cache_size: Callable[[], int] = _zero
        self.cache_capacity: Callable[[], int] = _zero
        self.tcp_open: Callable[[], int] = _zero
        #: The latest snapshot of each UDP worker (``--workers``), by worker number.
        self.workers: dict[int, WorkerCounts] = {}
        self.registry.register(_SidecarCollector(self))
        r = self.registry
        self.tcp_closed = Counter(
            PREFIX + "dns_tcp_connections_closed",
            "DNS-over-TCP connections the sidecar closed: evicted (the oldest without a "
            "complete query, for a new one over sidecar.limits.tcp_connections), "
            "per_address (the same within one client address), idle (no query for "
            "tcp_idle_timeout), deadline (a query not complete within tcp_query_timeout)",
            ("reason",),
            registry=r,
        )
        self.lookup_closed = Counter(
            PREFIX + "lookup_connections_closed",
            "Lookup-service connections the sidecar closed for a new one: evicted (the "
            "oldest without a complete request, over sidecar.limits.lookup_connections)",
            ("reason",),
            registry=r,
        )
        self.forwarder_answers = Counter(
            PREFIX + "forwarder_answers",
            "Replies accepted from an upstream forwarder",
            registry=None,
        )
        self.forwarder_timeouts = Counter(
            PREFIX + "forwarder_timeouts",
            "Queries an upstream forwarder did not answer in time (the next one is tried)",
            registry=None,
        )
        self.forwarder_failures = Counter(
            PREFIX + "forwarder_failures",
            "Forwarded queries answered with SERVFAIL: no forwarder answered, or too many "
            "were waiting",
            ("reason",),
            registry=None,
        )
        self.forwarder_latency = Histogram(
            PREFIX + "forwarder_latency_seconds",
            "Seconds from a query handed to the forwarders to an upstream's answer",
            buckets=FORWARD_BUCKETS,
            registry=None,
        )
        # Workers forward too: these four are served with the workers' counts added.
        self._forwarder_families: tuple[Collector, ...] = (
            self.forwarder_answers,
            self.forwarder_timeouts,
            self.forwarder_failures,
            self.forwarder_latency,
        )
        r.register(_MergedCollector(self, self._forwarder_families))
        self.lookups = Counter(
            PREFIX + "lookup_requests",
            "Lookup-service requests by endpoint, verdict and policy rule identifier",
            ("endpoint", "verdict", "rule"),
            registry=r,
        )
        info = Gauge(PREFIX + "info", "The sidecar's version", ("version",), registry=r)
        info.labels(__version__).set(1)
        for reason in TCP_CLOSE_REASONS:
            self.tcp_closed.labels(reason)
        self.lookup_closed.labels("evicted")
        for reason in ("no_answer", "overloaded"):
            self.forwarder_failures.labels(reason)

    def lookup(self, endpoint: str, verdict: str, rule: str = "") -> None:
        if endpoint not in LOOKUP_ENDPOINTS:
            endpoint = "unknown"
        self.lookups.labels(endpoint, verdict, rule).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def snapshot(self) -> bytes:
        """A worker's cumulative counts, for the primary's :meth:`absorb` (JSON).

        Bounded: every label comes from a fixed set (a few kB at most).
        """
        return json.dumps(
            {
                "dns": [[*key, n] for key, n in list(self.dns.items())],
                "samples": _family_samples(self._forwarder_families),
                "cache": [self.cache_size(), self.cache_capacity()],
            },
            separators=(",", ":"),
        ).encode()

    def absorb(self, worker: int, data: bytes) -> None:
        """Keep worker ``worker``'s latest :meth:`snapshot` (it replaces the last one)."""
        doc = json.loads(data)
        counts = WorkerCounts()
        for transport, qtype, rcode, cached, n in doc["dns"]:
            counts.dns[(str(transport), str(qtype), str(rcode), bool(cached))] = int(n)
        for name, labels, value in doc["samples"]:
            key = (str(name), tuple((str(k), str(v)) for k, v in labels))
            counts.samples[key] = float(value)
        counts.cache_entries, counts.cache_capacity = (int(v) for v in doc["cache"])
        self.workers[worker] = counts

    def worker_gone(self, worker: int) -> None:
        """Worker ``worker`` exited: its counts stay, its cache does not."""
        counts = self.workers.setdefault(worker, WorkerCounts())
        counts.alive = False
