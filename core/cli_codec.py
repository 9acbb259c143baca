"""``v6alt encode`` and ``v6alt decode``: addresses <-> names, in bulk too.

Results are streamed one line per item as they are computed, so a pipe of
any length runs in constant memory; a bad item is reported on stderr and the
rest still go through (exit 2 at the end).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import Final, TextIO

from .cli_common import EXIT_OK, EXIT_USAGE, Streams, SubParsers, UsageError, add_command
from .codec import decode, encode, to_address
from .errors import EXCERPT_LIMIT, V6AltNameError

__all__ = ["MAX_ITEM_LENGTH", "register_decode", "register_encode"]

STDIN_MARK: Final = "-"
#: The longest item (a line of stdin, or an argument) that is converted; a
#: name has at most 253 characters, an address 47 with brackets. A longer
#: line is one bad item, read through in chunks, never held whole.
MAX_ITEM_LENGTH: Final = 1024
_SKIP_CHUNK: Final = 1 << 16
# Printable ASCII without quote or backslash is its own JSON string body.
_JSON_PLAIN: Final = re.compile(r"[ !#-\[\]-~]*")

# item -> address; raises V6AltNameError with the reason.
Converter = Callable[[str], IPv6Address]

_BULK_HELP: Final = (
    "'-' as the only argument reads one item per line from stdin (blank lines skipped;"
    f" lines over {MAX_ITEM_LENGTH} characters are bad items)"
)


@dataclass(frozen=True)
class _Overlong:
    """An item longer than :data:`MAX_ITEM_LENGTH`: only its start is kept."""

    start: str
    length: int

    @property
    def shown(self) -> str:
        return f"{self.start[:EXCERPT_LIMIT]!r}..."

    @property
    def reason(self) -> str:
        return (
            f"a line of {self.length:,} characters; no name or address is longer "
            f"than {MAX_ITEM_LENGTH}"
        )


Item = str | _Overlong


def _epilog(output_note: str, example: str) -> str:
    return (
        "output: one line per item, in input order; with --json one JSON list of\n"
        '  {"input": ..., "address": ..., "name": ...} objects, and\n'
        '  {"input": ..., "error": ...} for a bad item.' + output_note + "\n"
        "exit status: 0 all items converted; 2 a bad item or bad usage (each bad item\n"
        "  gets one line 'v6alt: <input>: <reason>' on stderr, the others are printed).\n"
        f"\nexample:\n  {example}\n"
    )


def register_encode(subparsers: SubParsers) -> None:
    parser = add_command(
        subparsers,
        "encode",
        summary="IPv6 addresses -> v6.alt names",
        description="Print the canonical v6.alt name of each IPv6 address.",
        handler=_run_encode,
        epilog=_epilog("", "v6alt encode 2001:db8::1    ->  eaaq3o-e.v6.alt"),
    )
    parser.add_argument(
        "items", nargs="+", metavar="ADDR", help=f"IPv6 address, [brackets] allowed; {_BULK_HELP}"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list")


def register_decode(subparsers: SubParsers) -> None:
    parser = add_command(
        subparsers,
        "decode",
        summary="v6.alt names -> IPv6 addresses",
        description=(
            "Print the IPv6 address of each v6.alt name ([subdomains.]<label>.v6.alt).\n"
            "Strict by default: only the canonical lowercase spelling is a name, since\n"
            "server names are compared as strings. --lenient accepts what deployed peers\n"
            "accept (any case, any single-hyphen or unhyphenated spelling, pad bits)."
        ),
        handler=_run_decode,
        epilog=_epilog(
            "\n  'name' is the canonical name of the address.",
            "v6alt decode eaaq3o-e.v6.alt    ->  2001:db8::1",
        ),
    )
    parser.add_argument("items", nargs="+", metavar="NAME", help=f"v6.alt name; {_BULK_HELP}")
    parser.add_argument(
        "--lenient", action="store_true", help="accept every spelling deployed peers accept"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list")


def _lenient_decode(item: str) -> IPv6Address:
    return decode(item, lenient=True)


def _run_encode(args: argparse.Namespace, streams: Streams) -> int:
    items = _items(args.items, streams.stdin)
    return convert_items(items, to_address, streams, as_json=args.json, print_name=True)


def _run_decode(args: argparse.Namespace, streams: Streams) -> int:
    converter: Converter = _lenient_decode if args.lenient else decode
    items = _items(args.items, streams.stdin)
    return convert_items(items, converter, streams, as_json=args.json, print_name=False)


def _items(arguments: list[str], stdin: TextIO) -> Iterable[Item]:
    if STDIN_MARK not in arguments:
        return [_bounded(a) for a in arguments]
    if len(arguments) != 1:
        raise UsageError("'-' (read items from stdin) must be the only argument")
    return _stdin_items(stdin)


def _bounded(text: str) -> Item:
    return text if len(text) <= MAX_ITEM_LENGTH else _Overlong(text[:MAX_ITEM_LENGTH], len(text))


def _stdin_items(stdin: TextIO) -> Iterator[Item]:
    """One item per line, each read with a bounded length (constant memory)."""
    while True:
        line = stdin.readline(MAX_ITEM_LENGTH + 1)
        if not line:
            return
        if len(line) > MAX_ITEM_LENGTH and not line.endswith("\n"):
            length = len(line)
            while True:  # read the rest of the line through, keeping nothing
                chunk = stdin.readline(_SKIP_CHUNK)
                if not chunk:
                    break
                if chunk.endswith("\n"):
                    length += len(chunk) - 1
                    break
                length += len(chunk)
            yield _Overlong(line.lstrip()[:MAX_ITEM_LENGTH], length)
            continue
        stripped = line.strip()
        if stripped:
            yield stripped


def convert_items(
    items: Iterable[Item],
    convert: Converter,
    streams: Streams,
    *,
    as_json: bool,
    print_name: bool,
) -> int:
    """Convert and print every item; report bad ones on stderr; return the exit code.

    Without ``as_json`` each good item prints one line: the name when
    ``print_name``, else the address (only what is printed is computed: text
    forms of addresses cost as much as the codec itself).
    """
    write = streams.stdout.write
    failed = False
    separator = "[\n"
    for item in items:
        if isinstance(item, _Overlong):
            failed = True
            streams.error(item.shown, item.reason)
            if as_json:
                write(separator + json.dumps({"input": item.shown, "error": item.reason}))
                separator = ",\n"
            continue
        try:
            address = convert(item)
        except V6AltNameError as exc:
            failed = True
            streams.error(item, str(exc))
            if as_json:
                write(separator + json.dumps({"input": item, "error": str(exc)}))
                separator = ",\n"
            continue
        if as_json:
            # address and name are ASCII without quotes or backslashes by
            # construction; only the input needs escaping.
            quoted = f'"{item}"' if _JSON_PLAIN.fullmatch(item) else json.dumps(item)
            write(
                f'{separator}{{"input": {quoted}, '
                f'"address": "{address}", "name": "{encode(address)}"}}'
            )
            separator = ",\n"
        else:
            write(encode(address) + "\n" if print_name else f"{address}\n")
    if as_json:
        write("[]\n" if separator == "[\n" else "\n]\n")
    return EXIT_USAGE if failed else EXIT_OK
