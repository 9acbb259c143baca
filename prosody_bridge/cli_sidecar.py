"""``v6alt sidecar``: run the DNS server and lookup service for Prosody.

Registered by the core CLI as a plugin command. Twisted is imported only when
the command runs, so ``v6alt --help`` works with the core alone, and a missing
Twisted is a one-line usage error instead of a traceback.
"""

from __future__ import annotations

import argparse
from typing import Final

from v6alt.cli_common import EXIT_OK, EXIT_USAGE, Streams, SubParsers, add_command, parse_listen

__all__ = ["register"]

_EPILOG: Final = """\
DNS: authoritative for v6.alt (AAAA, SOA/NS at the apex) and the ip6.arpa
PTR names of allowed addresses, over UDP and TCP; other zones are REFUSED
unless sidecar.forwarders is set. Lookup service: HTTP+JSON, GET /v1/health,
/v1/resolve?name=, /v1/peer?name=&address=, /v1/name?address= (docs/dns.md).
Signals: SIGTERM/SIGINT stop, SIGHUP reloads the config file (policy and
forwarders; listen addresses need a restart).

exit status: 0 stopped normally, 1 a listener could not start, 2 bad
arguments, bad config (key path and reason on stderr) or Twisted missing.
"""


def _workers(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of workers from 1 to 64")
    return int(text)


def register(subparsers: SubParsers) -> None:
    parser = add_command(
        subparsers,
        "sidecar",
        summary="run the v6.alt DNS server and lookup service (needs v6alt[sidecar])",
        description=(
            "Serve v6.alt names over DNS and the lookup service the Prosody module\n"
            "asks, from the v6alt config (the sidecar: section) and policy."
        ),
        handler=_run,
        epilog=_EPILOG,
    )
    parser.add_argument("--config", metavar="FILE", help="YAML config file (default: defaults)")
    parser.add_argument(
        "--dns", metavar="HOST:PORT", type=parse_listen, help="override sidecar.dns_listen"
    )
    parser.add_argument(
        "--lookup", metavar="HOST:PORT", type=parse_listen, help="override sidecar.lookup_listen"
    )
    parser.add_argument(
        "--print-systemd-unit",
        action="store_true",
        help="print a hardened systemd unit running this install's v6alt on --config "
        "(default /etc/v6alt/sidecar.yaml) and exit",
    )
    parser.add_argument(
        "--workers",
        metavar="N",
        type=_workers,
        default=1,
        help="UDP DNS worker processes sharing the port (SO_REUSEPORT); default 1",
    )


def _run(args: argparse.Namespace, streams: Streams) -> int:
    if args.print_systemd_unit:
        return _print_unit(args, streams)
    try:
        import twisted  # noqa: F401
    except ImportError:
        streams.error("sidecar", "Twisted is not installed: pip install 'v6alt[sidecar]'")
        return EXIT_USAGE
    from .sidecar import SidecarOptions, run

    return run(SidecarOptions(args.config, args.dns, args.lookup, args.workers))


def _print_unit(args: argparse.Namespace, streams: Streams) -> int:
    from pathlib import Path

    from .systemd_unit import DEFAULT_CONFIG, render_unit

    config = str(Path(args.config).absolute()) if args.config else DEFAULT_CONFIG
    try:
        unit = render_unit(config=config)
    except ValueError as error:
        streams.error("sidecar", f"cannot write a systemd unit: {error}")
        return EXIT_USAGE
    streams.stdout.write(unit)
    return EXIT_OK
