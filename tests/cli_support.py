"""Helpers shared by the CLI tests: run `v6alt` in-process and sample data."""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address

import pytest

import v6alt
from tests.vectors import VECTORS
from v6alt.cli import CORE_COMMANDS, main
from v6alt.cli_common import Registrar, Streams

ADDRESSES = [address for address, _ in VECTORS]
NAMES = [name for _, name in VECTORS]


@dataclass
class Result:
    code: int
    out: str
    err: str


def run(*argv: str, stdin: str = "", commands: Sequence[Registrar] = CORE_COMMANDS) -> Result:
    streams = Streams(io.StringIO(stdin), io.StringIO(), io.StringIO())
    code = main(list(argv), streams=streams, commands=commands)
    assert isinstance(streams.stdout, io.StringIO) and isinstance(streams.stderr, io.StringIO)
    err = streams.stderr.getvalue()
    assert "Traceback" not in err
    return Result(code, streams.stdout.getvalue(), err)


def codec_reason(function: Callable[[str], object], item: str) -> str:
    """The codec's own message for a bad item (the CLI must pass it through)."""
    with pytest.raises(v6alt.V6AltNameError) as info:
        function(item)
    return str(info.value)


def random_addresses(count: int) -> list[IPv6Address]:
    rng = random.Random(20261121)
    return [
        IPv6Address(rng.getrandbits(128) >> rng.choice((0, 0, 16, 64, 100))) for _ in range(count)
    ]
