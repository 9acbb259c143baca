"""`v6alt sidecar` argument handling; runs with or without Twisted installed."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from v6alt.cli_common import parse_listen


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[::1]:5353", ("::1", 5353)),
        ("[2001:db8::53]:53", ("2001:db8::53", 53)),
        ("127.0.0.1:5380", ("127.0.0.1", 5380)),
    ],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(
    "text",
    ["::1:5353", "[::1]", "[::1]:0", "1.2.3.4:65536", "localhost:53", "[127.0.0.1]:53", ":53"],
)
def test_parse_listen_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_listen(text)


def run_cli(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_sidecar_without_twisted_exits_2() -> None:
    # The core importable, Twisted hidden (as on a core-only install).
    result = run_cli(
        "import sys; sys.modules['twisted'] = None\n"
        "from v6alt.cli import main\n"
        "sys.exit(main(['sidecar']))\n"
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "v6alt: sidecar: Twisted is not installed: pip install 'v6alt[sidecar]'"
    ]


def test_bad_listen_argument_exits_2() -> None:
    result = run_cli(
        "import sys\nfrom v6alt.cli import main\nsys.exit(main(['sidecar', '--dns', '::1:53']))\n"
    )
    assert result.returncode == 2
    assert "is not HOST:PORT" in result.stderr


def test_help_lists_the_sidecar() -> None:
    result = run_cli("import sys\nfrom v6alt.cli import main\nsys.exit(main(['--help']))\n")
    assert result.returncode == 0 and "sidecar" in result.stdout
