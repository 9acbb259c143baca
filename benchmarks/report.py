"""What the benchmark scripts share: their sections of README.md and the tables in them."""

from __future__ import annotations

import json
import os
import platform
import statistics
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

README = Path(__file__).with_name("README.md")


def write_section(heading: str, body: str, readme: Path = README) -> None:
    """Replace the section under the line ``heading`` (up to the next ``## ``), or append it."""
    current = readme.read_text() if readme.exists() else "# Benchmarks\n"
    section = f"{heading}\n\n{body}"
    start = current.find(f"\n{heading}\n")
    if start < 0:
        readme.write_text(current.rstrip("\n") + "\n\n" + section)
        return
    end = current.find("\n## ", start + 1)
    rest = "" if end < 0 else current[end:]
    readme.write_text(current[: start + 1] + section + rest)


def emit(rows: Any, table: Callable[[], str], *, json_only: bool, heading: str | None) -> int:
    """A benchmark's output: its rows as JSON only, or its table (also written under
    ``heading`` in README.md when given); the script's exit code."""
    if json_only:
        print(json.dumps(rows))
        return 0
    text = table()
    print()
    print(text)
    if heading is not None:
        write_section(heading, text)
    return 0


def spread(values: Iterable[float]) -> str:
    """``median (min-max)`` with three decimals."""
    data = list(values)
    return f"{statistics.median(data):.3f} ({min(data):.3f}-{max(data):.3f})"


def machine_line(server: str) -> str:
    """The line above a table: Python, the server measured, kernel, cores."""
    return (
        f"Python {platform.python_version()}, {server}, kernel {platform.release()}, "
        f"{os.cpu_count()} cores"
    )


def link_cut_table(
    cut: float, messages_per_side: int, target: float, runs: Sequence[tuple[str, dict[str, Any]]]
) -> list[str]:
    """The link-cut table of the end-to-end benchmarks: one row per (label, result).

    A result has ``first`` and ``last`` (seconds after the link returned; ``last``
    None when not everything arrived within ``wait``), ``lost`` and ``duplicated``.
    """
    lines = [
        f"| link cut {cut:g} s, {messages_per_side} messages each way | "
        "first delivered after return, s | last delivered, s | lost | duplicated | "
        f"target last <= {target:g} s |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for label, r in runs:
        ok = r["last"] is not None and r["last"] <= target and not r["lost"]
        first = "-" if r["first"] is None else f"{r['first']:.1f}"
        last = f"not all within {r['wait']:g}" if r["last"] is None else f"{r['last']:.1f}"
        lines.append(
            f"| {label} | {first} | {last} | {r['lost']} | {r['duplicated']} | "
            f"{'ok' if ok else 'missed'} |"
        )
    return lines
