"""``v6alt check matrix|xmpp|local``: the federation tester's command line."""

from __future__ import annotations

import argparse

from v6alt.cli_common import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    Streams,
    SubParsers,
    UsageError,
    add_command,
    dump_json,
    parse_listen,
)
from v6alt.config import ConfigError, load_config
from v6alt.errors import V6AltNameError, abridge
from v6alt.policy import Policy

__all__ = ["register"]

_EPILOG = (
    "exit status: 0 every check passed, 1 a check failed, 2 usage or input error.\n"
    "Progress goes to stderr (one line per network step); the report to stdout.\n"
    "docs/check.md describes every check and the --json schema."
)


def _resolver(text: str) -> tuple[str, int]:
    return parse_listen(text)  # raises argparse.ArgumentTypeError naming the problem


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 300:
        raise argparse.ArgumentTypeError(f"{text} is outside 0-300 seconds")
    return value


def _common(parser: argparse.ArgumentParser, *, network: bool = True) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument(
        "--timeout",
        type=_timeout,
        default=5.0,
        metavar="SECONDS",
        help="timeout of each network step (default 5)",
    )
    if network:
        parser.add_argument(
            "--config",
            metavar="FILE",
            help="v6alt config (YAML) whose policy to apply (default: defaults)",
        )
        parser.add_argument(
            "--resolver",
            type=_resolver,
            metavar="HOST:PORT",
            help="DNS server for DNS names (default: /etc/resolv.conf)",
        )
        parser.add_argument(
            "--ca-file", metavar="PEM", help="extra CA certificates trusted for CA verdicts"
        )


def register(subparsers: SubParsers) -> None:
    parser = add_command(
        subparsers,
        "check",
        summary="test federation of a Matrix or XMPP server, or this host",
        description="A federation tester that works from inside the mesh and knows v6.alt.",
        handler=None,
        epilog=_EPILOG,
    )
    commands = parser.add_subparsers(title="what to check", dest="check_command", metavar="WHAT")
    commands.required = True
    matrix = add_command(
        commands,
        "matrix",
        summary="a Matrix server name",
        description="Resolve NAME as Synapse would, then check policy, TCP, TLS, the "
        "federation version endpoint and the server's signing keys at every address.",
        handler=_run_matrix,
        epilog=_EPILOG,
    )
    matrix.add_argument("name", metavar="NAME", help="server name: host[:port]")
    _common(matrix)
    xmpp = add_command(
        commands,
        "xmpp",
        summary="an XMPP domain (server-to-server)",
        description="Resolve DOMAIN, open a server-to-server stream, check features, "
        "STARTTLS and the certificate at every address.",
        handler=_run_xmpp,
        epilog=_EPILOG,
    )
    xmpp.add_argument("domain", metavar="DOMAIN")
    xmpp.add_argument(
        "--from",
        dest="sender",
        metavar="DOMAIN",
        help="stream 'from' (default: the v6.alt name of the source address "
        "the kernel picks towards the server)",
    )
    _common(xmpp)
    local = add_command(
        commands,
        "local",
        summary="this host's v6alt setup",
        description="Check the Synapse module in homeserver.yaml, the sidecar, the source "
        "address towards the mesh, trusted_key_servers and the federation listener.",
        handler=_run_local,
        epilog=_EPILOG,
    )
    local.add_argument(
        "--homeserver-config",
        metavar="PATH",
        help="homeserver.yaml (default: /etc/matrix-synapse/homeserver.yaml when it exists)",
    )
    local.add_argument(
        "--sidecar-config", metavar="PATH", help="the sidecar's YAML config (default: the defaults)"
    )
    local.add_argument(
        "--prosody-config",
        metavar="PATH",
        help="prosody.cfg.lua, read with Prosody's own loader (default: Prosody is not checked)",
    )
    _common(local, network=False)


def _options(args: argparse.Namespace, streams: Streams) -> object:
    from .options import Options
    from .report import Progress

    policy = Policy()
    if getattr(args, "config", None):
        try:
            policy = Policy(load_config(args.config))
        except ConfigError as exc:
            # A whole-file error already starts with the file name.
            where = f"--config {abridge(args.config)}: " if exc.path else "--config "
            raise UsageError(f"{where}{exc}") from None
    return Options(
        timeout=args.timeout,
        resolver=getattr(args, "resolver", None),
        policy=policy,
        cafile=getattr(args, "ca_file", None),
        progress=Progress(None if args.quiet else streams.stderr),
    )


def _finish(report: object, args: argparse.Namespace, streams: Streams) -> int:
    from .report import Report, render_human, render_json

    assert isinstance(report, Report)
    if args.json:
        dump_json(render_json(report), streams.stdout)
    else:
        render_human(report, streams.stdout)
    return EXIT_OK if report.ok else EXIT_CHECK_FAILED


def _run_matrix(args: argparse.Namespace, streams: Streams) -> int:
    from .matrix import check_matrix
    from .options import Options

    options = _options(args, streams)
    assert isinstance(options, Options)
    try:
        report = check_matrix(args.name, options)
    except V6AltNameError as exc:
        raise UsageError(str(exc)) from None
    return _finish(report, args, streams)


def _run_xmpp(args: argparse.Namespace, streams: Streams) -> int:
    from .options import Options
    from .xmpp import check_xmpp

    options = _options(args, streams)
    assert isinstance(options, Options)
    try:
        report = check_xmpp(args.domain, options, args.sender)
    except V6AltNameError as exc:
        raise UsageError(str(exc)) from None
    return _finish(report, args, streams)


def _run_local(args: argparse.Namespace, streams: Streams) -> int:
    from .local import check_local
    from .options import Options

    options = _options(args, streams)
    assert isinstance(options, Options)
    report = check_local(options, args.homeserver_config, args.sidecar_config, args.prosody_config)
    return _finish(report, args, streams)
