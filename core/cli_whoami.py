"""``v6alt whoami``: this host's mesh addresses, names, and the kernel's source.

Exit 0 when there is a mesh address and no warning about the source, 1 when
there is none or such a warning fired (the check failed), 2 on usage errors.
A trust warning (the name is an address of a routed 300::/8 subnet) is
printed but fails nothing: the name works, peers just pin its keys.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from ipaddress import IPv6Address
from typing import Any, Final

from .cli_common import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Streams,
    SubParsers,
    add_command,
    dump_json,
)
from .codec import decode, encode, to_address
from .errors import V6AltNameError
from .hostinfo import (
    MESH_RANGES,
    HostInfoError,
    HostReport,
    RouteGet,
    ip_route_get,
    mesh_kind,
    read_if_inet6,
    survey,
)

__all__ = ["register_whoami", "report_lines", "report_to_json"]

_ADDRESS_FLAGS_SHOWN: Final = ("temporary", "optimistic", "dadfailed", "deprecated", "tentative")

_EPILOG: Final = """\
Peers bind a v6.alt server name to the source address they see, and the
kernel, not the server, picks that address. On a host with several mesh
addresses the server name must be the name of the kernel's choice.

A name in a routed Yggdrasil subnet (300::/8) gets a warning naming the
node's 200::/8 address instead: any host on the subnet's LAN can take
the address, so peers pin the server's keys. It does not change the
exit status.

exit status: 0 ok; 1 no mesh address, or a warning about the source
  address (the check failed); 2 bad usage.
"""


def register_whoami(
    subparsers: SubParsers,
    *,
    read_addresses: Callable[[], str] = read_if_inet6,
    route_get: RouteGet = ip_route_get,
) -> None:
    """Add ``whoami``; the two readers are injectable for tests."""
    parser = add_command(
        subparsers,
        "whoami",
        summary="this host's mesh addresses, their names, and the kernel's source address",
        description=(
            "List this host's Yggdrasil (200::/7), cjdns (fc00::/8) and global (2000::/3)\n"
            "addresses with their v6.alt names, and the source address the kernel uses\n"
            "towards 200::/7 and 2000::/3 (asked with 'ip -6 route get'; nothing is sent)."
        ),
        handler=functools.partial(_run, read_addresses=read_addresses, route_get=route_get),
        epilog=_EPILOG,
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--towards",
        action="append",
        metavar="ADDR",
        help="probe the source towards this mesh address instead of the defaults (repeatable)",
    )
    parser.add_argument(
        "--name",
        metavar="NAME",
        help="the v6.alt server name in use: warn exactly when the kernel does not pick its "
        "address as source",
    )


def _run(
    args: argparse.Namespace,
    streams: Streams,
    *,
    read_addresses: Callable[[], str],
    route_get: RouteGet,
) -> int:
    try:
        probes = [to_address(text) for text in args.towards] if args.towards else None
        server_address = decode(args.name) if args.name is not None else None
    except V6AltNameError as exc:
        streams.error("whoami", str(exc))
        return EXIT_USAGE
    for address in [*(probes or ()), *([server_address] if server_address is not None else [])]:
        if mesh_kind(address) is None:
            ranges = ", ".join(str(n) for n in MESH_RANGES.values())
            streams.error("whoami", f"{address} is in none of the mesh ranges {ranges}")
            return EXIT_USAGE
    try:
        report = survey(read_addresses(), route_get, probes, server_address)
    except HostInfoError as exc:
        # The host could not be examined, so the check cannot pass.
        streams.error("whoami", str(exc))
        return EXIT_CHECK_FAILED
    if args.json:
        dump_json(report_to_json(report), streams.stdout)
    else:
        streams.stdout.writelines(line + "\n" for line in report_lines(report))
    return EXIT_OK if report.ok else EXIT_CHECK_FAILED


def _name(address: IPv6Address | None) -> str | None:
    return encode(address) if address is not None else None


def report_to_json(report: HostReport) -> dict[str, Any]:
    """The ``--json`` document (schema in docs/cli.md)."""
    return {
        "ok": report.ok,
        "server_name": _name(report.server_address),
        "addresses": [
            {
                "address": str(a.address),
                "name": a.name,
                "kind": a.kind.value if a.kind is not None else None,
                "interface": a.interface,
                "prefix_length": a.prefix_length,
                "flags": list(a.flag_names),
            }
            for a in report.addresses
        ],
        "sources": [
            {
                "range": str(check.network),
                "kind": check.kind.value,
                "probe": str(check.probe),
                "source": str(check.source) if check.source is not None else None,
                "name": _name(check.source),
                "interface": check.route.interface if check.route is not None else None,
                "no_route": check.no_route_reason,
                "never_dial": check.never_dial,
                "warning": check.warning,
            }
            for check in report.sources
        ],
        "warnings": list(report.warnings),
        "trust_warnings": list(report.trust_warnings),
    }


def report_lines(report: HostReport) -> list[str]:
    """The human-readable report, one string per line."""
    lines = []
    if report.addresses:
        lines.append("mesh addresses:")
        rows = [
            (
                a.kind.value if a.kind is not None else "",
                str(a.address),
                a.name,
                a.interface + _flag_suffix(a.flag_names),
            )
            for a in report.addresses
        ]
        lines.extend(_table(rows))
    else:
        ranges = ", ".join(str(n) for n in MESH_RANGES.values())
        lines.append(f"no mesh address ({ranges}) on this host")
    if report.sources:
        lines.append("kernel source address:")
        for check in report.sources:
            where = f"  towards {check.network} (route to {check.probe}): "
            if check.source is not None:
                via = (
                    f" via {check.route.interface}" if check.route and check.route.interface else ""
                )
                lines.append(f"{where}{check.source}  {encode(check.source)}{via}")
            elif check.route is not None:
                lines.append(f"{where}route has no source address")
            else:
                lines.append(f"{where}no route ({check.no_route_reason})")
    lines.extend(f"warning: {warning}" for warning in report.warnings)
    lines.extend(f"warning: {warning}" for warning in report.trust_warnings)
    return lines


def _flag_suffix(flags: tuple[str, ...]) -> str:
    shown = [f for f in flags if f in _ADDRESS_FLAGS_SHOWN]
    return f" [{', '.join(shown)}]" if shown else ""


def _table(rows: list[tuple[str, str, str, str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return [
        "  "
        + "".join(cell.ljust(width + 2) for cell, width in zip(row[:3], widths, strict=True))
        + row[3]
        for row in rows
    ]
