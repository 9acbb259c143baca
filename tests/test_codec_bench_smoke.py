"""The codec benchmark runs (tiny sizes); its numbers are judged by hand, not here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "codec_bench.py"


def test_codec_bench_smoke() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--count", "300", "--repeat", "1", "--json"],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    rows = json.loads(out.stdout)
    assert {row["operation"] for row in rows} == {
        "encode(IPv6Address)",
        "encode(str)",
        "decode strict",
        "decode lenient",
    }
    assert len(rows) == 12
    assert all(int(row["ops_per_s"]) > 0 for row in rows)
