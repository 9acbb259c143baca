"""The metrics-cost benchmark runs (one short run per load); its numbers are judged by hand."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client", reason="the sidecar needs v6alt[sidecar]")

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "metrics_cost.py"


@pytest.mark.integration
def test_metrics_cost_smoke() -> None:
    if shutil.which("dnsperf") is None:
        pytest.skip("dnsperf is not installed (scripts/install-deps.sh bench)")
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--seconds", "1", "--repeat", "1", "--rates", "2000,max",
         "--scrape-interval", "0.2", "--no-baseline", "--json"],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    rows = json.loads(out.stdout)
    assert [(r["load"], r["sidecar"]) for r in rows] == [
        ("2000", "metrics"),
        ("2000", "metrics, scraped"),
        ("max", "metrics"),
        ("max", "metrics, scraped"),
    ]
    assert all(r["qps"] > 0 for r in rows)
    scraped = [r for r in rows if r["sidecar"] == "metrics, scraped"]
    assert all(r["scrapes"] >= 2 and r["scrape_bytes"] > 1000 for r in scraped)
