"""Every level of `v6alt`, the installed plugin commands included, takes --help
and --version the same way."""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterator

import pytest

import v6alt
from v6alt.cli import build_parser, main
from v6alt.cli_common import Streams


def _paths(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield (*prefix, name)
                yield from _paths(child, (*prefix, name))


PATHS = sorted(_paths(build_parser()))


def _run(*argv: str) -> tuple[int, str, str]:
    streams = Streams(io.StringIO(), io.StringIO(), io.StringIO())
    code = main(list(argv), streams=streams)
    assert isinstance(streams.stdout, io.StringIO) and isinstance(streams.stderr, io.StringIO)
    return code, streams.stdout.getvalue(), streams.stderr.getvalue()


def test_the_plugin_commands_are_there() -> None:
    # In the test envs every part is installed: the walk covers them all.
    names = {path[0] for path in PATHS}
    assert {"lab", "check", "sidecar", "prosody-module-path"} <= names
    assert ("lab", "up") in PATHS and ("check", "local") in PATHS


@pytest.mark.parametrize("path", PATHS, ids=[" ".join(p) for p in PATHS])
def test_version_at_every_level(path: tuple[str, ...]) -> None:
    assert _run(*path, "--version") == (0, f"v6alt {v6alt.__version__}\n", "")


@pytest.mark.parametrize("path", PATHS, ids=[" ".join(p) for p in PATHS])
def test_help_at_every_level(path: tuple[str, ...]) -> None:
    code, out, err = _run(*path, "--help")
    assert (code, err) == (0, "")
    assert out.startswith("usage: v6alt " + " ".join(path))
