"""The ``v6alt`` command: entry point, parser, dispatch.

Every subcommand is one registrar function (see :mod:`v6alt.cli_common`).
The core's own are listed in :data:`CORE_COMMANDS`. Commands that live in
other packages (the sidecar, the lab, ...) are entry points of the group
:data:`ENTRY_POINT_GROUP` (declared in pyproject.toml), loaded only when the
parser is built, so the core neither imports nor names them and stays pure; a
registrar module must import its heavy dependencies (Twisted, ...) inside its
handler, not at the top, so ``v6alt --help`` works with only the core
installed.

Exit codes: 0 ok, 1 a check failed, 2 usage or input error (one line on
stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from contextlib import redirect_stderr, redirect_stdout
from importlib.metadata import EntryPoint, entry_points
from io import TextIOWrapper
from typing import Any, Final, TextIO, cast

from . import __version__
from .cli_codec import register_decode, register_encode
from .cli_common import (
    EXIT_CHECK_FAILED,
    EXIT_USAGE,
    PROG,
    Registrar,
    Streams,
)
from .cli_config import register_config
from .cli_pins import register_pins
from .cli_whoami import register_whoami
from .errors import V6AltError

__all__ = ["CORE_COMMANDS", "ENTRY_POINT_GROUP", "build_parser", "main"]

CORE_COMMANDS: Final[tuple[Registrar, ...]] = (
    register_encode,
    register_decode,
    register_whoami,
    register_config,
    register_pins,
)

# The entry-point group of the commands outside the core; each entry point's
# value is a registrar ("module:function"). Help lists them after the core's,
# sorted by entry-point name: installed metadata keeps no declaration order
# (setuptools writes entry_points.txt sorted), so the name is the one stable key.
ENTRY_POINT_GROUP: Final = "v6alt.commands"


def _plugin_entry_points() -> list[EntryPoint]:
    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def _load_plugin(entry_point: EntryPoint) -> Registrar | None:
    module_name = entry_point.module
    try:
        registrar: Registrar = entry_point.load()
    except ModuleNotFoundError as exc:
        # Only the plugin's own absence (an optional part not installed) is
        # tolerated; a missing import inside an installed plugin is a bug and
        # must show.
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            return None
        raise
    return registrar


def build_parser(
    commands: Sequence[Registrar] = CORE_COMMANDS,
    plugins: Sequence[EntryPoint] | None = None,
) -> argparse.ArgumentParser:
    """The top-level parser with every available subcommand registered.

    *plugins* defaults to the installed entry points of :data:`ENTRY_POINT_GROUP`.
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "v6alt: every IPv6 address has a host name under .v6.alt, so Matrix and\n"
            "XMPP servers on IPv6 meshes (Yggdrasil, cjdns) federate without DNS or a\n"
            "public CA."
        ),
        epilog=(
            "exit status: 0 ok, 1 a check failed, 2 usage or input error.\n"
            "'v6alt COMMAND --help' explains each command."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    subparsers.required = True
    for registrar in commands:
        registrar(subparsers)
    for entry_point in _plugin_entry_points() if plugins is None else plugins:
        plugin = _load_plugin(entry_point)
        if plugin is not None:
            plugin(subparsers)
    return parser


#: The longest line ``v6alt`` writes to stderr; a longer one (argparse echoing a
#: huge bad value, say) is cut there and ends with how long it was.
MAX_STDERR_LINE: Final = 1000


class _BoundedLines:
    """A text stream that cuts every line written through it to MAX_STDERR_LINE."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._column = 0

    def write(self, text: str) -> int:
        pieces = text.split("\n")
        for index, piece in enumerate(pieces):
            room = MAX_STDERR_LINE - self._column
            if room > 0:
                self._stream.write(piece[:room])
            self._column += len(piece)
            if index < len(pieces) - 1:
                if self._column > MAX_STDERR_LINE:
                    self._stream.write(f"... (a line of {self._column:,} characters, cut)")
                self._stream.write("\n")
                self._column = 0
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _bounded(streams: Streams) -> Streams:
    stderr = cast(TextIO, _BoundedLines(streams.stderr))
    return Streams(streams.stdin, streams.stdout, stderr)


def _system_streams() -> Streams:
    # Undecodable input bytes reach the codec (which rejects them with a
    # reason) instead of raising in the middle of a bulk run; output that
    # cannot be encoded is escaped rather than crashing the error report.
    if isinstance(sys.stdin, TextIOWrapper):
        sys.stdin.reconfigure(errors="surrogateescape")
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    return Streams(sys.stdin, sys.stdout, sys.stderr)


def main(
    argv: Sequence[str] | None = None,
    *,
    streams: Streams | None = None,
    commands: Sequence[Registrar] = CORE_COMMANDS,
) -> int:
    """Run ``v6alt`` and return the exit code (the console script exits with it)."""
    real = streams is None
    io = _bounded(_system_streams() if streams is None else streams)
    arguments = sys.argv[1:] if argv is None else list(argv)
    try:
        with redirect_stdout(io.stdout), redirect_stderr(io.stderr):
            # argparse prints --help/--version/usage errors and raises SystemExit.
            args = build_parser(commands).parse_args(arguments)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        code: int = args.handler(args, io)
        io.stdout.flush()
    except V6AltError as exc:  # UsageError and any input error a handler let through
        io.stderr.write(f"{PROG}: {exc}\n")
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (`v6alt encode - | head`): stop quietly. Point
        # stdout at /dev/null so the interpreter's final flush cannot fail.
        if real:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_CHECK_FAILED
    except KeyboardInterrupt:
        return 130
    return code
