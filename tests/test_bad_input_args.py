"""A huge bad argument to any command: one bounded line on stderr, exit 2."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from v6alt.cli import MAX_STDERR_LINE, main
from v6alt.cli_common import Streams

HUGE = "x" * 100_000

CASES = {
    "check-matrix": ["check", "matrix", HUGE],
    "check-matrix-v6alt": ["check", "matrix", HUGE + ".v6.alt"],
    "check-xmpp": ["check", "xmpp", HUGE],
    "check-resolver": ["check", "matrix", "ai-e.v6.alt", "--resolver", HUGE],
    "check-matrix-config": ["check", "matrix", "ai-e.v6.alt", "--config", "/tmp/" + HUGE],
    "check-local-homeserver": ["check", "local", "--homeserver-config", HUGE],
    "whoami-name": ["whoami", "--name", HUGE],
    "whoami-towards": ["whoami", "--towards", HUGE],
    "sidecar-dns": ["sidecar", "--dns", HUGE],
    "sidecar-config": ["sidecar", "--config", HUGE],
    "config-check": ["config", "check", HUGE],
    "encode": ["encode", HUGE],
    "decode": ["decode", HUGE + ".v6.alt"],
    "decode-label": ["decode", "-" * 500 + ".v6.alt"],
    "install": ["prosody-module-path", "--install", "/etc/passwd/" + HUGE],
    "lab-nodes": ["lab", "up", "--nodes", HUGE],
    "unknown-command": [HUGE],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_huge_argument_gives_bounded_lines_and_exit_2(case: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "v6alt", *CASES[case]],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines and all(len(line) <= MAX_STDERR_LINE + 60 for line in lines), [
        len(line) for line in lines
    ]
    assert len(done.stderr) < 4000
    assert lines[-1].startswith("v6alt")


def test_a_config_path_is_abridged_keeping_its_end(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 200) / "missing.yaml"
    streams = Streams(io.StringIO(), io.StringIO(), io.StringIO())
    assert main(["config", "check", str(deep)], streams=streams) == 2
    assert isinstance(streams.stderr, io.StringIO)
    line = streams.stderr.getvalue()
    assert line.endswith("missing.yaml (" + f"{len(str(deep)):,} characters): no such file\n")
    assert len(line) < 250


def test_stderr_lines_are_cut_whatever_writes_them() -> None:
    from v6alt.cli import _BoundedLines

    sink = io.StringIO()
    bounded = _BoundedLines(sink)
    bounded.write("short\n")
    bounded.write("a" * 700)
    bounded.write("b" * 700 + "\nnext")
    bounded.write(" line\n")
    first, second, third, end = sink.getvalue().split("\n")
    assert first == "short" and third == "next line" and end == ""
    assert second == "a" * 700 + "b" * 300 + "... (a line of 1,400 characters, cut)"
