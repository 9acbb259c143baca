"""Throughput of the v6.alt codec in one process.

Run:  python benchmarks/codec_bench.py [--count N] [--repeat R] [--json]

Measures encode and strict/lenient decode over three address populations
(random global unicast, Yggdrasil-like 200::/7 and zero-heavy addresses that
exercise the run compression), as the best of R timed passes of process CPU
time, so a busy machine slows the numbers less than wall-clock timing would.
Target (issue "Core"): at least 500,000 ops/s for encode and for decode.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from ipaddress import IPv6Address

import v6alt

TARGET_OPS = 500_000


def populations(count: int, seed: int = 6) -> dict[str, list[IPv6Address]]:
    rng = random.Random(seed)
    glob = [IPv6Address((0x2 << 125) | rng.getrandbits(125)) for _ in range(count)]
    ygg = [IPv6Address((0x2 << 120) | rng.getrandbits(121)) for _ in range(count)]
    zeroish = []
    for _ in range(count):
        groups = [rng.choice((0, 0, 0, rng.getrandbits(16))) for _ in range(8)]
        zeroish.append(IPv6Address(":".join(f"{g:x}" for g in groups)))
    return {"global 2000::/3": glob, "yggdrasil 200::/7": ygg, "zero-heavy": zeroish}


def best_rate(
    fn: Callable[[Sequence[object]], object], items: Sequence[object], repeat: int
) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn(items)
        best = min(best, time.process_time() - start)
    return len(items) / best if best > 0 else float("inf")


def run(count: int, repeat: int) -> list[dict[str, object]]:
    encode, decode = v6alt.encode, v6alt.decode
    rows: list[dict[str, object]] = []
    for label, addrs in populations(count).items():
        names = [encode(a) for a in addrs]
        texts = [str(a) for a in addrs]
        cases: list[tuple[str, Callable[[Sequence[object]], object], Sequence[object]]] = [
            ("encode(IPv6Address)", lambda xs: [encode(x) for x in xs], addrs),  # type: ignore[arg-type]
            ("encode(str)", lambda xs: [encode(x) for x in xs], texts),  # type: ignore[arg-type]
            ("decode strict", lambda xs: [decode(x) for x in xs], names),  # type: ignore[arg-type]
            (
                "decode lenient",
                lambda xs: [decode(x, lenient=True) for x in xs],  # type: ignore[arg-type]
                names,
            ),
        ]
        for op, fn, items in cases:
            rate = best_rate(fn, items, repeat)
            rows.append({"population": label, "operation": op, "ops_per_s": round(rate)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50_000, help="addresses per population")
    parser.add_argument("--repeat", type=int, default=7, help="timed passes; the best counts")
    parser.add_argument("--json", action="store_true", help="print rows as JSON")
    args = parser.parse_args(argv)
    print(
        f"codec benchmark: {args.count} addresses x 3 populations, best of {args.repeat}",
        file=sys.stderr,
    )
    rows = run(args.count, args.repeat)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"Python {platform.python_version()} on {platform.machine()}")
        print("| population | operation | ops/s | target |")
        print("|---|---|---:|---|")
        for row in rows:
            op = str(row["operation"])
            target = (
                ""
                if op == "encode(str)"
                else (
                    "ok" if int(row["ops_per_s"]) >= TARGET_OPS else "BELOW"  # type: ignore[call-overload]
                )
            )
            print(f"| {row['population']} | {op} | {row['ops_per_s']:,} | {target} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
