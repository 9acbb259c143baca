"""Resident memory the Synapse module adds to a homeserver.

Run as root (network namespaces), in a venv with matrix-synapse and v6alt:

    python benchmarks/synapse_rss.py [--runs 3] [--settle 5] [--json]

Starts the tests' homeserver (docs/synapse-homeserver.yaml, SQLite) in a
namespace of its own, alternately with the module and with ``modules: []``,
waits ``--settle`` seconds after it answers, makes one client request and
reads VmRSS of the Synapse process. Reports the medians and their
difference. Target (issue 3): the module adds under 5 MB.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from v6alt.lab.matrix.homeserver import Homeserver
from v6alt.lab.netns import FlatHost, FlatNet


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def one_run(host: FlatHost, with_module: bool, settle: float) -> int:
    extra = None if with_module else {"modules": []}
    base = Path(tempfile.mkdtemp(prefix="v6s-rss-"))
    hs = Homeserver(base / "hs", host.address, netns=host.netns, extra=extra)
    hs.start()
    try:
        time.sleep(settle)
        hs.register("rss", "v6alt-bench-password")
        return rss_kib(hs.pid)
    finally:
        hs.stop()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import synapse

    samples: dict[bool, list[int]] = {True: [], False: []}
    with FlatNet("v6s-rss-") as net:
        host = net.add_host("a", "202:6a1f:77::1")
        for _ in range(args.runs):
            for with_module in (False, True):
                samples[with_module].append(one_run(host, with_module, args.settle))
    without = statistics.median(samples[False]) / 1024
    with_ = statistics.median(samples[True]) / 1024
    if args.json:
        print(json.dumps({"without_mib": without, "with_mib": with_, "added_mib": with_ - without}))
        return
    print(f"Synapse {synapse.__version__}, {args.runs} runs each, median VmRSS")
    print("| homeserver | RSS (MiB) |")
    print("|---|---:|")
    print(f"| without the module | {without:.1f} |")
    print(f"| with the module | {with_:.1f} |")
    verdict = "ok" if with_ - without < 5 else "over target"
    print(f"| added by the module | {with_ - without:.1f} ({verdict}, target < 5) |")


if __name__ == "__main__":
    main()
