"""Time the real `v6alt encode -` / `decode -` processes on 30,000 stdin items.

Each run is a fresh process (startup included) reading a file on stdin and
writing to /dev/null; wall time and the child's CPU time are recorded.
`v6alt --version` is timed the same way as the startup baseline;
"processing" is the median CPU time minus the startup's.

    python benchmarks/cli_bulk.py [--count 30000] [--runs 7] [--write-readme]

--write-readme replaces the "## CLI bulk" section of benchmarks/README.md
(only that section).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from ipaddress import IPv6Address
from pathlib import Path

from report import write_section

import v6alt

HEADING = "## CLI bulk"


def command_prefix() -> list[str]:
    script = Path(sys.executable).parent / "v6alt"
    return [str(script)] if script.exists() else [sys.executable, "-m", "v6alt"]


def addresses(count: int) -> list[IPv6Address]:
    rng = random.Random(30_000)
    yggdrasil = 1 << 121  # 200::/7: the top 7 bits are 0000001
    global_unicast = 1 << 125  # 2000::/3: the top 3 bits are 001
    # Half Yggdrasil, half global: the two populations names are made for.
    return [
        IPv6Address(
            rng.getrandbits(121) | yggdrasil if i % 2 else rng.getrandbits(125) | global_unicast
        )
        for i in range(count)
    ]


Sample = tuple[float, float]  # (wall seconds, process CPU seconds)


def time_runs(argv: list[str], stdin_path: Path | None, runs: int) -> list[Sample]:
    samples = []
    for _ in range(runs):
        with open(stdin_path or os.devnull, "rb") as stdin:
            start = time.perf_counter()
            proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.DEVNULL)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}")
        samples.append((wall, usage.ru_utime + usage.ru_stime))
    return samples


def measure(count: int, runs: int) -> tuple[list[tuple[str, list[Sample]]], list[Sample]]:
    prefix = command_prefix()
    items = addresses(count)
    with tempfile.TemporaryDirectory(prefix="v6alt-cli-bench-") as tmp:
        address_file = Path(tmp) / "addresses.txt"
        name_file = Path(tmp) / "names.txt"
        upper_file = Path(tmp) / "upper.txt"
        address_file.write_text("".join(f"{a}\n" for a in items))
        names = [v6alt.encode(a) for a in items]
        name_file.write_text("".join(f"{n}\n" for n in names))
        upper_file.write_text("".join(f"{n.upper()}\n" for n in names))
        startup = time_runs([*prefix, "--version"], None, runs)
        cases = [
            ("v6alt encode -", ["encode", "-"], address_file),
            ("v6alt decode -", ["decode", "-"], name_file),
            ("v6alt decode --lenient - (uppercase)", ["decode", "--lenient", "-"], upper_file),
            ("v6alt encode --json -", ["encode", "--json", "-"], address_file),
            ("v6alt decode --json -", ["decode", "--json", "-"], name_file),
        ]
        results = [(label, time_runs([*prefix, *args], path, runs)) for label, args, path in cases]
    return results, startup


def table(results: list[tuple[str, list[Sample]]], startup: list[Sample], count: int) -> str:
    base_wall = statistics.median(wall for wall, _ in startup)
    base_cpu = statistics.median(cpu for _, cpu in startup)
    lines = [
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}; {count:,} items, median of {len(startup)} runs",
        "",
        "| command | wall | CPU | processing CPU (minus startup) | items/s (processing) |",
        "|---|---:|---:|---:|---:|",
        f"| v6alt --version (startup) | {base_wall:.3f} s | {base_cpu:.3f} s | | |",
    ]
    for label, samples in results:
        wall = statistics.median(w for w, _ in samples)
        cpu = statistics.median(c for _, c in samples)
        processing = max(cpu - base_cpu, 1e-9)
        lines.append(
            f"| {label} | {wall:.3f} s | {cpu:.3f} s | {processing:.3f} s "
            f"| {count / processing:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def write_readme(section_body: str) -> None:
    write_section(
        HEADING,
        "`python benchmarks/cli_bulk.py --write-readme` (options `--count`, `--runs`).\n"
        "Real `v6alt` processes converting 30,000 items read from stdin (half\n"
        "Yggdrasil, half global addresses) to /dev/null: wall-clock time and the\n"
        "process's CPU time (less disturbed by other load), interpreter start\n"
        'included; `v6alt --version` is the startup baseline that "processing"\n'
        "subtracts. Target (issue 2): 30,000 items in well under a second of\n"
        "processing.\n\n" + section_body,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=30_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    results, startup = measure(args.count, args.runs)
    body = table(results, startup, args.count)
    print(body, end="")
    if args.write_readme:
        write_readme(body)


if __name__ == "__main__":
    main()
