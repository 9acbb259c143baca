"""The DNS benchmark runs (one short point, against a real sidecar and unbound, past the
reply cache so the sidecar's uncached path answers); its numbers are judged by hand in
benchmarks/README.md, not here."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("twisted", reason="the sidecar needs v6alt[sidecar]")

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "dns_perf.py"


@pytest.mark.integration
def test_dns_perf_smoke() -> None:
    if shutil.which("dnsperf") is None:
        pytest.skip("dnsperf is not installed (scripts/install-deps.sh bench)")
    if shutil.which("unbound") is None and not Path("/usr/sbin/unbound").exists():
        pytest.skip("unbound is not installed (apt-get install unbound)")
    # 20,000 names: far more than the reply cache holds (8,192), cycled in order, so
    # only the names at the start of each dnsperf run can still be in the cache.
    command = [sys.executable, str(SCRIPT), "--names", "20000", "--workers", "1", "--seconds"]
    command += ["1", "--repeat", "1", "--latency-seconds", "1", "--rate", "2000", "--json"]
    out = subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
    rows = json.loads(out.stdout)
    assert [(r["names"], r["workers"], r["server"]) for r in rows] == [
        (20000, 1, "unbound"),
        (20000, 1, "sidecar"),
    ]
    assert all(r["qps"] > 0 and r["p99_ms"] > 0 and r["rss_mib"] > 0 for r in rows)
    sidecar = rows[1]
    assert sidecar["cache_hits"] < 0.5  # mostly the uncached path answered
