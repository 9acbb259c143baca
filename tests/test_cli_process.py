"""`v6alt` as real processes: `python -m v6alt` and the installed script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import v6alt
from tests.cli_support import ADDRESSES, NAMES, codec_reason, random_addresses

# --- real processes ----------------------------------------------------------------


def installed_script() -> str:
    script = Path(sys.executable).parent / "v6alt"
    if not script.exists():
        pytest.skip(f"the v6alt script is not installed next to {sys.executable}")
    return str(script)


@pytest.fixture(params=["module", "script"])
def command(request: pytest.FixtureRequest) -> list[str]:
    if request.param == "module":
        return [sys.executable, "-m", "v6alt"]
    return [installed_script()]


def process(command: list[str], *argv: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*command, *argv],
        input=stdin.decode("utf-8", "surrogateescape"),
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=60,
        check=False,
    )
    assert "Traceback" not in done.stderr
    return done


def test_process_exit_codes(command: list[str], tmp_path: Path) -> None:
    assert process(command, "--version").stdout == f"v6alt {v6alt.__version__}\n"
    ok = process(command, "encode", *ADDRESSES)
    assert (ok.returncode, ok.stdout.splitlines()) == (0, NAMES)
    bad = process(command, "decode", "a-e.v6.alt", "nope")
    assert (bad.returncode, bad.stdout) == (2, "::1\n")
    assert bad.stderr == f"v6alt: nope: {codec_reason(v6alt.decode, 'nope')}\n"
    assert process(command).returncode == 2
    assert process(command, "encode", "--frob", "::1").returncode == 2
    config = tmp_path / "c.yaml"
    config.write_text("ip_bound_trust: maybe\n")
    checked = process(command, "config", "check", str(config))
    assert checked.returncode == 2 and checked.stderr.startswith(f"v6alt: config: {config}: ")
    config.write_text("")
    assert process(command, "config", "check", str(config)).returncode == 0


def test_process_bulk_stdin(command: list[str]) -> None:
    addresses = random_addresses(30_000)
    done = process(command, "encode", "-", stdin="".join(f"{a}\n" for a in addresses).encode())
    assert done.returncode == 0
    assert done.stdout.splitlines() == [v6alt.encode(a) for a in addresses]


def test_process_undecodable_stdin_is_a_bad_item(command: list[str]) -> None:
    done = process(command, "encode", "-", stdin=b"::1\n\xff\xfe\n2001:db8::1\n")
    assert done.returncode == 2
    assert done.stdout == "a-e.v6.alt\neaaq3o-e.v6.alt\n"
    assert done.stderr.startswith("v6alt: \\udcff\\udcfe: not an IPv6 address")
    assert done.stderr.count("\n") == 1


def test_process_closed_output_pipe_is_quiet(command: list[str], tmp_path: Path) -> None:
    # stdin comes from a file, so the child blocks only on its full stdout pipe.
    items = tmp_path / "addresses.txt"
    items.write_text("".join(f"{a}\n" for a in random_addresses(30_000)))
    with items.open() as stdin:
        proc = subprocess.Popen(
            [*command, "encode", "-"],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        assert proc.stdout.readline().endswith(".v6.alt\n")
        proc.stdout.close()
        assert proc.wait(timeout=60) == 1
        assert proc.stderr.read() == ""
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
