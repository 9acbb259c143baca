"""The sidecar-abuse benchmark runs (every attack, small and short, against a sidecar and
unbound); its numbers are judged by hand in benchmarks/README.md."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("twisted", reason="the sidecar needs v6alt[sidecar]")

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "sidecar_abuse.py"


@pytest.mark.integration
def test_sidecar_abuse_smoke() -> None:
    if shutil.which("unbound") is None and not Path("/usr/sbin/unbound").exists():
        pytest.skip("unbound is not installed (apt-get install unbound)")
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--seconds", "1.5", "--json"],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    rows = json.loads(out.stdout)
    both = ["tcp-trickle", "tcp-connections", "tcp-pipeline", "tcp-half-close", "udp-log-flood"]
    expected = [(a, s) for a in both for s in ("sidecar", "unbound")]
    expected += [
        (a, "sidecar") for a in ("http-body", "http-pipeline", "http-slow-headers", "http-oversize")
    ]
    assert [(r["attack"], r["server"]) for r in rows] == expected
    sidecar = {r["attack"]: r for r in rows if r["server"] == "sidecar"}
    assert all(r["asked"] > 0 and r["answered"] > 0 for r in sidecar.values())
    half_close = sidecar["tcp-half-close"]["outcome"]
    assert half_close["answered after half-close"] == half_close["queries sent"]
    assert sidecar["udp-log-flood"]["log_lines"] <= 21
    assert set(sidecar["http-body"]["outcome"]) <= {"MB of body sent", "status 405"}
    oversize = sidecar["http-oversize"]["outcome"]
    assert set(oversize) == {"70 kB query: 414", "20 kB headers: 431"}
