"""``v6alt check`` command line: help, usage errors (exit 2), in-process runs."""

from __future__ import annotations

import io

import pytest

from v6alt.cli import main
from v6alt.cli_common import Streams


def _run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), streams=Streams(io.StringIO(), out, err))
    return code, out.getvalue(), err.getvalue()


def test_help_lists_the_three_checks() -> None:
    code, out, _ = _run("check", "--help")
    assert code == 0
    for what in ("matrix", "xmpp", "local"):
        assert what in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("check", "matrix", "bad name!"), "not a valid DNS label"),
        (("check", "xmpp", "a..b"), "not a valid DNS label"),
        (("check", "matrix", "x.example", "--resolver", "nonsense"), "HOST:PORT"),
        (("check", "matrix", "x.example", "--timeout", "0"), "outside 0-300"),
        (("check", "matrix", "x.example", "--config", "/nonexistent/v6alt.yaml"), "--config"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args: tuple[str, ...], message: str) -> None:
    code, out, err = _run(*args)
    assert code == 2
    assert out == ""
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(("kind", "port"), [("matrix", 8448), ("xmpp", 5269)])
def test_never_dial_name_fails_without_network(kind: str, port: int) -> None:
    # ::1 is never dialled: the whole check runs without a packet sent.
    code, out, err = _run("check", kind, "a-e.v6.alt")
    assert code == 1
    assert f"[FAIL] policy [::1]:{port}: ::1: never-dial: loopback (::1/128); not dialled" in out
    assert "change: a-e.v6.alt points at ::1" in out
    assert err == ""  # no network step, so no progress line


def test_quiet_and_json() -> None:
    code, out, err = _run("check", "xmpp", "a-e.v6.alt", "--json", "--quiet")
    assert code == 1
    assert out.startswith("{") and '"kind": "xmpp"' in out
    assert err == ""
