"""Sidecar DNS vs unbound under dnsperf, over a range of distinct names.

For each number of distinct names (1,000 to 1,000,000 by default) and each
worker count, a sidecar with N workers and an unbound with N threads run side
by side on ::1, answering the same AAAA names from the same query file
(unbound from ``local-data`` in a static ``v6.alt`` zone, as a user would
serve a fixed set of names; the sidecar from the codec and its policy). Their
runs alternate, so drifting load from other processes hits both alike:

- queries/s: dnsperf as fast as it can (``-c 4 -q 200 -l SECONDS``), median
  of the runs;
- p99 latency: dnsperf at a fixed rate (``-Q RATE -v``, every query's
  latency);
- RSS after the runs (summed over the sidecar's worker processes);
- the share of the sidecar's answers that came from its reply cache (its
  ``/metrics`` counters before and after): dnsperf cycles through the query
  file in order, so with more names than the cache holds (8,192 entries,
  oldest first out) only the names at the start of each dnsperf run can
  still be cached from the run before, and the row measures the uncached
  path.

    python benchmarks/dns_perf.py                       # print the table
    python benchmarks/dns_perf.py --write-readme        # also update benchmarks/README.md
    python benchmarks/dns_perf.py --names 1000 --workers 1 --seconds 1 --repeat 1 --json
    python benchmarks/dns_perf.py --json > a.json; ... # several sessions, then one table:
    python benchmarks/dns_perf.py --from-json a.json b.json c.json --write-readme

Needs: dnsperf, unbound (apt), v6alt[sidecar].
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any

from report import emit, machine_line

from v6alt.codec import encode
from v6alt.lab.local_servers import (
    free_port,
    running_sidecar,
    running_unbound,
    unbound_config,
)

HEADING = "## Sidecar DNS"
CACHE_ENTRIES = (
    8192  # prosody_bridge.dns_udp.CACHE_ENTRIES (benchmarks import no shipped internals)
)
#: The targets of issue 15: (distinct names, least sidecar/unbound queries/s ratio).
TARGETS = {30_000: 0.7, 5_000: 1.0}
RSS_LIMIT_MIB = 64


def make_names(count: int, seed: int = 6) -> list[tuple[str, IPv6Address]]:
    rng = random.Random(seed)
    names = []
    for i in range(count):
        prefix = 0x2 if i % 2 else 0x2000  # Yggdrasil 200::/7 and global unicast 2000::/3
        shift = 120 if prefix == 0x2 else 112
        value = (prefix << shift) | rng.getrandbits(shift - 8)
        address = IPv6Address(value)
        names.append((encode(address), address))
    return names


def run_dnsperf(port: int, queries: Path, extra: list[str]) -> str:
    command = ["dnsperf", "-s", "::1", "-p", str(port), "-d", str(queries), *extra]
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    return result.stdout


def throughput(
    port: int, pid: int, queries: Path, seconds: float, clients: int
) -> tuple[float, float, tuple[float, float]]:
    """queries/s, the share lost (%), and the server's (user, system) CPU time per
    answered query (us) at that full load."""
    before = cpu_split(pid)
    out = run_dnsperf(port, queries, ["-l", str(seconds), "-c", str(clients), "-q", "200"])
    after = cpu_split(pid)
    qps = float(re.search(r"Queries per second:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    lost = float(re.search(r"Queries lost:\s+\d+ \(([0-9.]+)%\)", out).group(1))  # type: ignore[union-attr]
    done = int(re.search(r"Queries completed:\s+(\d+)", out).group(1)) or 1  # type: ignore[union-attr]
    return qps, lost, ((after[0] - before[0]) / done * 1e6, (after[1] - before[1]) / done * 1e6)


def p99_and_cpu(
    port: int, pid: int, queries: Path, rate: int, seconds: float
) -> tuple[float, float]:
    """The 99th percentile latency (s) of a fixed-rate run, and the server's CPU time
    per answered query (us) during it: less disturbed by a busy machine than queries/s."""
    before = cpu_seconds(pid)
    out = run_dnsperf(port, queries, ["-l", str(seconds), "-Q", str(rate), "-v"])
    used = cpu_seconds(pid) - before
    latencies = [
        float(line.rsplit(" ", 1)[1]) for line in out.splitlines() if line.startswith("> ")
    ]
    return statistics.quantiles(latencies, n=100)[98], used / len(latencies) * 1e6


def _processes(pid: int) -> list[int]:
    """The server process and its children (the sidecar's workers)."""
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    return pids


def cpu_split(pid: int) -> tuple[float, float]:
    """User and system CPU time (s) of the server (all its threads and worker processes)."""
    user = system = 0
    for p in _processes(pid):
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        user += int(fields[11])  # utime
        system += int(fields[12])  # stime
    tick = os.sysconf("SC_CLK_TCK")
    return user / tick, system / tick


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of the server (all its threads and worker processes)."""
    return sum(cpu_split(pid))


def rss_kib(pid: int) -> int:
    """The resident memory of one process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def answered_and_hits(lookup_port: int) -> tuple[float, float]:
    """The sidecar's DNS queries and reply-cache hits so far (all its processes)."""
    with urllib.request.urlopen(f"http://[::1]:{lookup_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    totals = {"v6alt_sidecar_dns_queries_total": 0.0, "v6alt_sidecar_dns_cache_hits_total": 0.0}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in totals:
            totals[name] += float(line.rsplit(" ", 1)[1])
    return totals["v6alt_sidecar_dns_queries_total"], totals["v6alt_sidecar_dns_cache_hits_total"]


@contextmanager
def unbound(directory: Path, local_data: Path, threads: int) -> Iterator[tuple[int, int]]:
    port = free_port()
    directory.mkdir(exist_ok=True)
    config = unbound_config(directory, port, threads=threads)
    # The zone from an include file: a million local-data lines load in seconds.
    with config.open("a") as out:
        out.write('server:\n    local-zone: "v6.alt." static\n')
        out.write(f'    include: "{local_data}"\n')
    with running_unbound(config, port, start_timeout=600) as process:
        yield port, process.pid


@contextmanager
def sidecar(workers: int) -> Iterator[tuple[int, int, int]]:
    with running_sidecar(workers=workers) as running:
        yield running.dns_port, running.process.pid, running.lookup_port


def measure_point(
    names: int, workers: int, directory: Path, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """unbound with ``workers`` threads and the sidecar with ``workers`` workers on
    one query file of ``names`` distinct names, runs interleaved."""
    pairs = make_names(names, seed=7)
    queries = directory / f"queries-{names}.txt"
    if not queries.exists():
        queries.write_text("".join(f"{name} AAAA\n" for name, _ in pairs))
    # The warm-up asks the names from the end of the list: the measured runs start
    # at its beginning, so the reply cache holds none of their first names however
    # few queries a slow or busy machine gets through in the warm-up second.
    warm_up = directory / f"warm-up-{names}.txt"
    if not warm_up.exists():
        warm_up.write_text("".join(f"{name} AAAA\n" for name, _ in reversed(pairs)))
    local_data = directory / f"local-data-{names}.conf"
    if not local_data.exists():
        local_data.write_text(
            "".join(
                f'    local-data: "{name}. 86400 IN AAAA {address}"\n' for name, address in pairs
            )
        )
    with (
        unbound(directory / f"unbound-{names}-{workers}", local_data, workers) as (uport, upid),
        sidecar(workers) as (sport, spid, lookup_port),
    ):
        servers = {"unbound": (uport, upid), "sidecar": (sport, spid)}
        qps: dict[str, list[float]] = {label: [] for label in servers}
        lost: dict[str, list[float]] = {label: [] for label in servers}
        p99: dict[str, list[float]] = {label: [] for label in servers}
        cpu: dict[str, list[float]] = {label: [] for label in servers}
        full_load: dict[str, list[tuple[float, float]]] = {label: [] for label in servers}
        for port, _pid in servers.values():  # warm-up: first packets, unbound's thread start-up
            run_dnsperf(port, warm_up, ["-l", "1", "-c", str(args.clients)])
        time.sleep(1.5)  # worker counts reach the primary once a second
        answered_before, hits_before = answered_and_hits(lookup_port)
        for _ in range(args.repeat):
            for label, (port, pid) in servers.items():
                q, loss, split = throughput(port, pid, queries, args.seconds, args.clients)
                qps[label].append(q)
                lost[label].append(loss)
                full_load[label].append(split)
        time.sleep(1.5)
        answered_after, hits_after = answered_and_hits(lookup_port)
        for _ in range(args.repeat):
            for label, (port, pid) in servers.items():
                latency, cost = p99_and_cpu(port, pid, queries, args.rate, args.latency_seconds)
                p99[label].append(latency)
                cpu[label].append(cost)
        answered = answered_after - answered_before
        hit_share = (hits_after - hits_before) / answered if answered else 0.0
        rows = []
        for label, (_port, pid) in servers.items():
            row = {
                "names": names,
                "workers": workers,
                "server": label,
                "seconds": args.seconds,
                "qps": statistics.median(qps[label]),
                "runs": qps[label],
                "lost": max(lost[label]),
                "p99_ms": statistics.median(p99[label]) * 1e3,
                "cpu_us": statistics.median(cpu[label]),
                "full_load_user_us": statistics.median(u for u, _ in full_load[label]),
                "full_load_system_us": statistics.median(s for _, s in full_load[label]),
                "rss_mib": sum(rss_kib(p) for p in _processes(pid)) / 1024,
                "rss_max_mib": max(rss_kib(p) for p in _processes(pid)) / 1024,
                "cache_hits": hit_share if label == "sidecar" else None,
                # Each sidecar run against the unbound run just before it.
                "ratios": [s / u for s, u in zip(qps["sidecar"], qps["unbound"], strict=True) if u],
            }
            runs = ", ".join(f"{v:,.0f}" for v in qps[label])
            print(
                f"{names:,} names, {workers} worker(s), {label}: {row['qps']:,.0f} q/s "
                f"(runs: {runs}), p99 {row['p99_ms']:.3f} ms, {row['cpu_us']:.1f} us CPU/query, "
                f"at full load {row['full_load_user_us']:.2f} + "
                f"{row['full_load_system_us']:.2f} us user + system, "
                f"RSS {row['rss_mib']:.1f} MiB",
                file=sys.stderr,
                flush=True,
            )
            rows.append(row)
        return rows


def pooled(sessions: list[list[dict[str, Any]]]) -> dict[tuple[int, int], dict[str, Any]]:
    """Per (names, workers): each server's rows of every session, and the pooled figures."""
    points: dict[tuple[int, int], dict[str, Any]] = {}
    for rows in sessions:
        for row in rows:
            point = points.setdefault((row["names"], row["workers"]), {})
            point.setdefault(row["server"], []).append(row)
    for point in points.values():
        u, s = point["unbound"], point["sidecar"]
        u_runs = [q for row in u for q in row["runs"]]
        s_runs = [q for row in s for q in row["runs"]]
        point["unbound_qps"] = statistics.median(u_runs)
        point["sidecar_qps"] = statistics.median(s_runs)
        point["paired"] = statistics.median(r for row in s for r in row["ratios"])
        point["of_medians"] = point["sidecar_qps"] / point["unbound_qps"]
        point["runs"] = len(s_runs)
    return points


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(row[key]) for row in rows)


def _full_load(rows: list[dict[str, Any]]) -> str:
    """User + system CPU per query at full load, medians over the sessions that have it."""
    measured = [row for row in rows if "full_load_user_us" in row]
    if not measured:
        return "-"
    user, system = _median(measured, "full_load_user_us"), _median(measured, "full_load_system_us")
    return f"{user:.1f} + {system:.1f}"


def render(sessions: list[list[dict[str, Any]]], args: argparse.Namespace) -> str:
    points = pooled(sessions)
    seconds = sorted({row.get("seconds", args.seconds) for rows in sessions for row in rows})
    command = "`python benchmarks/dns_perf.py --write-readme`"
    if len(sessions) > 1:
        command = (
            f"{len(sessions)} runs of `python benchmarks/dns_perf.py --json`, pooled by "
            "`--from-json ... --write-readme`"
        )
    lines = [
        f"{command}: dnsperf 2.10; for each number of",
        "distinct AAAA names, one query file for both servers, on ::1. The sidecar runs",
        "with `--workers N`, unbound (Debian's 1.17) with `num-threads: N` and",
        "`so-reuseport: yes`, the names as `local-data` in a `static` `v6.alt` local zone",
        "(how a user serves a fixed set of names with unbound), nothing else tuned.",
        f"{len(sessions)} session(s); in each, per point, both servers run at once and their",
        f"queries/s runs (`-c {args.clients} -q 200 -l "
        + "/".join(f"{v:g}" for v in seconds)
        + "`) alternate. queries/s: the median of all runs",
        "of all sessions; ratio: the median of the sidecar/unbound ratios of the run pairs",
        "(each sidecar run against the unbound run just before it), and the ratio of the",
        "two medians. p99 latency and CPU per query: `-Q "
        f"{args.rate} -v` runs (every query's latency;",
        "the server's user+system CPU time over the queries answered, all its threads and",
        "processes), RSS after the runs (all processes; the sidecar's largest one in",
        "brackets) and cache hits: medians over the sessions. Cache hits: the share of the",
        "sidecar's answers during the queries/s runs that came from its reply cache",
        f"({CACHE_ENTRIES:,} entries, oldest first out): dnsperf cycles through the file in",
        "order, so with more names than that only the names at the start of each dnsperf",
        "run can still be cached from the run before, and the row measures the uncached",
        "path (`v6alt.dns_fast`). CPU per query at full load: the server's user and",
        "system CPU time during the queries/s runs over the queries answered in them.",
        "",
        machine_line("dnsperf and both servers on the same machine")
        + "; the machine was shared with other",
        "engineers' servers and tests while it ran, so single runs move by 30% or more;",
        "compare the ratios. Before the fast path (`v6alt.dns_fast`), the uncached path",
        "answered 0.32-0.36x of unbound's queries/s with 30,000 names (issue 15).",
        "",
        "| distinct names | workers / threads | unbound q/s | sidecar q/s | ratio: paired / "
        "of medians | sidecar cache hits | p99 unbound / sidecar | CPU per query unbound / "
        "sidecar | CPU per query at full load, user + system, unbound / sidecar | "
        "RSS unbound | RSS sidecar |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    verdicts = []
    for (names, workers), point in sorted(points.items()):
        u, s = point["unbound"], point["sidecar"]
        paired, of_medians = point["paired"], point["of_medians"]
        rss_max = max(float(row["rss_max_mib"]) for row in s)
        lines.append(
            f"| {names:,} | {workers} | {point['unbound_qps']:,.0f} | "
            f"{point['sidecar_qps']:,.0f} | {paired:.2f}x / {of_medians:.2f}x | "
            f"{_median(s, 'cache_hits'):.0%} | {_median(u, 'p99_ms'):.2f} / "
            f"{_median(s, 'p99_ms'):.2f} ms | {_median(u, 'cpu_us'):.1f} / "
            f"{_median(s, 'cpu_us'):.1f} us | {_full_load(u)} / {_full_load(s)} us | "
            f"{_median(u, 'rss_mib'):.1f} MiB | "
            f"{_median(s, 'rss_mib'):.1f} MiB ({rss_max:.1f}) |"
        )
        target = TARGETS.get(names)
        if target is not None:
            ratio = min(paired, of_medians)
            ok = ratio >= target and rss_max < RSS_LIMIT_MIB
            sessions_text = ""
            if len(s) > 1:
                sessions_text = "; session by session " + ", ".join(
                    f"{statistics.median(row['ratios']):.2f}x / {row['qps'] / ur['qps']:.2f}x"
                    for row, ur in zip(s, u, strict=True)
                )
            verdicts.append(
                f"- {names:,} names, {workers} worker(s) / thread(s): {ratio:.2f}x, the lower "
                f"of the two ratios (target at least {target:.1f}x, each sidecar process under "
                f"{RSS_LIMIT_MIB} MiB): {'met' if ok else 'missed'}{sessions_text}"
            )
    if verdicts:
        lines += ["", *verdicts]
    lost: dict[tuple[str, int, int], float] = {}
    for rows in sessions:
        for r in rows:
            if r["lost"]:
                key = (r["server"], r["names"], r["workers"])
                lost[key] = max(lost.get(key, 0.0), float(r["lost"]))
    if lost:
        lines += [
            "",
            "Queries lost (the worst run): "
            + ", ".join(
                f"{server} at {names:,} names, {workers} worker(s): {share}%"
                for (server, names, workers), share in sorted(lost.items())
            )
            + ".",
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--names",
        default="1000,5000,30000,100000,1000000",
        help="numbers of distinct names, one point each",
    )
    parser.add_argument("--workers", default="1,2", help="sidecar workers = unbound threads")
    parser.add_argument("--seconds", type=float, default=5.0, help="throughput run length")
    parser.add_argument("--clients", type=int, default=4, help="dnsperf -c")
    parser.add_argument("--rate", type=int, default=20000, help="q/s of the latency runs")
    parser.add_argument("--latency-seconds", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=3, help="runs per server (median)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON only")
    parser.add_argument("--write-readme", action="store_true")
    parser.add_argument(
        "--from-json",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="measure nothing: pool the rows of earlier --json runs (sessions) into the table",
    )
    args = parser.parse_args()

    sessions: list[list[dict[str, Any]]] = []
    if args.from_json:
        sessions = [json.loads(path.read_text()) for path in args.from_json]
    else:
        rows: list[dict[str, Any]] = []
        with tempfile.TemporaryDirectory(prefix="v6alt-dnsperf-") as tmp:
            for names in sorted({int(n) for n in args.names.split(",")}):
                for workers in sorted({int(w) for w in args.workers.split(",")}):
                    rows += measure_point(names, workers, Path(tmp), args)
        sessions = [rows]
    return emit(
        [row for rows in sessions for row in rows],
        lambda: render(sessions, args),
        json_only=args.json,
        heading=HEADING if args.write_readme else None,
    )


if __name__ == "__main__":
    sys.exit(main())
