"""Wall-clock time of ``v6alt lab up`` and ``v6alt lab down`` (root, yggdrasil installed).

Run:  python benchmarks/lab_bringup.py [--runs R] [--nodes 2 3] [--topology chain]
                                       [--json] [--write-readme]

Each run is the real command in a subprocess, with its own run directory and
namespace prefix (so a lab someone already has up is never touched): ``up``
from nothing to "every host reaches every other over Yggdrasil", then
``down``. The progress lines on stderr are time-stamped as they arrive, which
splits ``up`` into setup (namespaces, links, nodes started and addressed),
peering (all Yggdrasil peerings up) and routing (all pairs answer ICMPv6 echo).
``--write-readme`` replaces the "Lab bring-up" section of benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from report import write_section

HEADING = "## Lab bring-up"


def _yggdrasil_version() -> str:
    try:
        out = subprocess.run(["yggdrasil", "-version"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return "not installed"
    for line in out.splitlines():
        if line.startswith("Build version:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _lab(action: str, run_dir: Path, prefix: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "v6alt", "lab", action, "--run-dir", str(run_dir),
            "--prefix", prefix, *extra]  # fmt: skip


def one_run(nodes: int, topology: str, run_dir: Path, prefix: str) -> dict[str, float]:
    """Bring a lab up and down once; seconds for each phase."""
    start = time.monotonic()
    proc = subprocess.Popen(
        _lab("up", run_dir, prefix, "--nodes", str(nodes), "--topology", topology),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    last_started = last_peering = None
    lines: list[str] = []
    for line in proc.stderr:
        lines.append(line)
        now = time.monotonic() - start
        if " is up on ygg-" in line:
            last_started = now
        elif "Yggdrasil peering up" in line:
            last_peering = now
    code = proc.wait()
    up = time.monotonic() - start
    if code != 0:
        subprocess.run(_lab("down", run_dir, prefix), capture_output=True)
        raise SystemExit(f"lab up failed (exit {code}):\n{''.join(lines)}")
    start = time.monotonic()
    subprocess.run(_lab("down", run_dir, prefix), check=True, capture_output=True)
    down = time.monotonic() - start
    setup = last_started or 0.0
    peering = (last_peering or setup) - setup
    routing = up - setup - peering
    return {"up": up, "setup": setup, "peering": peering, "routing": routing, "down": down}


def bench(runs: int, node_counts: list[int], topology: str) -> list[dict[str, Any]]:
    pid = os.getpid()
    rows: list[dict[str, Any]] = []
    for nodes in node_counts:
        samples = []
        for i in range(runs):
            sample = one_run(nodes, topology, Path(f"/run/v6alt-labbench-{pid}"), f"v6lab-b{pid}-")
            done = f"up {sample['up']:.2f} s, down {sample['down']:.2f} s"
            print(f"{nodes} nodes, run {i + 1}: {done}", file=sys.stderr)
            samples.append(sample)
        row: dict[str, Any] = {"nodes": nodes, "topology": topology, "runs": runs}
        for key in ("up", "setup", "peering", "routing", "down"):
            values = [s[key] for s in samples]
            row[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"Python {platform.python_version()}, yggdrasil {_yggdrasil_version()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end\n\n"
        "| hosts | topology | runs | `lab up` median (min-max) | setup | peering | routing "
        "| `lab down` median |\n|---:|---|---:|---|---:|---:|---:|---:|\n"
    )
    body = ""
    for r in rows:
        up = r["up"]
        body += (
            f"| {r['nodes']} | {r['topology']} | {r['runs']} | {up['median']:.2f} s "
            f"({up['min']:.2f}-{up['max']:.2f}) | {r['setup']['median']:.2f} s | "
            f"{r['peering']['median']:.2f} s | {r['routing']['median']:.2f} s | "
            f"{r['down']['median']:.2f} s |\n"
        )
    return head + body


SECTION_TEXT = """\
`sudo python benchmarks/lab_bringup.py --runs 5 --write-readme` (root and
`yggdrasil` needed; options `--nodes 2 3`, `--topology chain|star`, `--json`).
Wall-clock time of the real `v6alt lab up` command, from nothing until every
host has answered ICMPv6 echo from every other host over Yggdrasil, and of
`v6alt lab down`. `up` is split into setup (namespaces, veth links, nodes
started in order and each holding its 200::/7 address), peering (until every
link is a Yggdrasil peering that is up) and routing (until every pair of hosts
reaches each other). Both waits are Yggdrasil's own: a node makes its first
outgoing peer dial about 1 s after it starts, and answers the first packets
to a new destination only after its path search (about 2 s), however often
the probe sends. No target is set; the lab is for tests and the demo, and
this tells them what to expect.

"""


def write_readme(text: str) -> None:
    """Replace (or append) only this section of benchmarks/README.md."""
    write_section(HEADING, f"{SECTION_TEXT}{text}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--nodes", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--topology", choices=("chain", "star"), default="chain")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("lab_bringup: needs root (the lab creates network namespaces)", file=sys.stderr)
        return 2
    rows = bench(args.runs, args.nodes, args.topology)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(table(rows), end="")
    if args.write_readme:
        write_readme(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
