"""What every ``v6alt`` subcommand shares: streams, exit codes, registration.

A subcommand is one *registrar*: a function that takes the subparsers object
and adds its parser with :func:`add_command`, which binds the handler. The
handler gets the parsed arguments and the :class:`Streams` and returns the
exit code; it never calls ``sys.exit`` and never touches ``sys.std*``, so the
whole CLI runs in-process in tests.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import ip_address
from typing import TYPE_CHECKING, Any, Final, TextIO, TypeAlias

from .errors import V6AltError, excerpt

__all__ = [
    "EXIT_CHECK_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "PROG",
    "Handler",
    "Registrar",
    "Streams",
    "SubParsers",
    "UsageError",
    "add_command",
    "dump_json",
    "host_port",
    "parse_listen",
]

PROG: Final = "v6alt"
EXIT_OK: Final = 0
EXIT_CHECK_FAILED: Final = 1
EXIT_USAGE: Final = 2


@dataclass(frozen=True)
class Streams:
    """The three standard streams a command may use."""

    stdin: TextIO
    stdout: TextIO
    stderr: TextIO

    def error(self, subject: str, reason: str) -> None:
        """Write the one-line ``v6alt: <subject>: <reason>`` form to stderr."""
        self.stderr.write(f"{PROG}: {subject}: {reason}\n")


class UsageError(V6AltError):
    """Arguments that parse but do not make sense together (exit 2)."""


if TYPE_CHECKING:
    SubParsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
else:  # not subscriptable at run time
    SubParsers = argparse._SubParsersAction

Handler = Callable[[argparse.Namespace, Streams], int]
Registrar = Callable[[SubParsers], None]


def add_command(
    subparsers: SubParsers,
    name: str,
    *,
    summary: str,
    description: str,
    handler: Handler | None,
    epilog: str | None = None,
) -> argparse.ArgumentParser:
    """Add one subcommand parser with ``--help``, ``--version`` and its handler.

    ``handler=None`` is for a command that only groups subcommands (like
    ``config``); it must then add its own required subparsers.
    """
    from . import __version__

    parser = subparsers.add_parser(
        name,
        help=summary,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    if handler is not None:
        parser.set_defaults(handler=handler)
    return parser


def dump_json(data: Any, stream: TextIO) -> None:
    """Write one JSON document (indented, key order kept) and a newline."""
    stream.write(json.dumps(data, indent=2) + "\n")


def host_port(host: str, port: int) -> str:
    """``host:port`` with IPv6 literals in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_BRACKETED: Final = re.compile(r"\[([0-9A-Fa-f:.]+)\]:([0-9]{1,5})")
_PLAIN: Final = re.compile(r"([^:\[\]]+):([0-9]{1,5})")


def parse_listen(text: str) -> tuple[str, int]:
    """``[v6]:port`` or ``v4:port`` -> (host, port), as the config's listen keys; argparse type."""
    bracketed = _BRACKETED.fullmatch(text)
    match = bracketed or _PLAIN.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{excerpt(text)} is not HOST:PORT (IPv6 literals in brackets: [::1]:5353)"
        )
    host, port = match.group(1), int(match.group(2))
    try:
        address = ip_address(host)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{excerpt(text)}: {excerpt(host)} is not an IP address"
        ) from None
    if (address.version == 6) != (bracketed is not None):
        raise argparse.ArgumentTypeError(
            f"{excerpt(text)}: IPv6 literals go in brackets, IPv4 without"
        )
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"{excerpt(text)}: port {port} is outside 1-65535")
    return host, port
