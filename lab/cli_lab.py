"""``v6alt lab up | status | down``: the mesh lab from the command line.

Progress lines go to stderr as each step finishes; the result (a host table and
a table of the servers on the hosts, or JSON with ``--json``) goes to stdout.
Exit status: 0 ok; 1 the lab is not up/healthy (a recorded server that is not
running counts), a bring-up step failed or timed out, or a namespace it would
create belongs to someone else; 2 bad usage, not root, or ``ip``/``yggdrasil``
missing (the message names the apt command).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Final, TextIO

from v6alt import __version__
from v6alt.cli_common import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    PROG,
    Streams,
    SubParsers,
    add_command,
    dump_json,
)

from .errors import LabError
from .lab import DEFAULT_RUN_DIR, DEFAULT_TIMEOUT, Lab
from .service_status import describe_endpoints
from .status import LabStatus
from .topology import DEFAULT_PREFIX, MAX_NODES, count_hosts

__all__ = ["register"]

_EPILOG: Final = """\
commands:
  up      create N hosts (network namespaces v6lab-a, v6lab-b, ...) joined by veth
          links, start a Yggdrasil node in each, wait until every host reaches
          every other over Yggdrasil; a lab already up is reported, not duplicated;
          --with xmpp also runs a v6alt sidecar and Prosody 13 (mod_v6alt) per host
  status  each host's namespace, Yggdrasil address, v6.alt name and peers, and the
          servers started on it (kind, running or DOWN, pid, what to connect to)
  down    stop the nodes and delete what the lab recorded making (only that)

exit status: 0 ok; 1 lab not up/healthy (a recorded server down counts), a step
  failed, or a namespace is not the lab's; 2 bad usage, not root, or a required
  package is missing.
see docs/lab.md.
"""


def register(subparsers: SubParsers) -> None:
    """Add the ``lab`` command and its ``up``/``status``/``down`` subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    # Every level of `v6alt` takes --version (v6alt.cli_common.add_command adds it
    # to the commands; these actions are plain sub-parsers).
    common.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    common.add_argument(
        "--run-dir",
        default=str(DEFAULT_RUN_DIR),
        metavar="DIR",
        help=f"state file, configs, sockets and logs (default {DEFAULT_RUN_DIR})",
    )
    common.add_argument(
        "--prefix",
        default=DEFAULT_PREFIX,
        help=f"namespace name prefix (default {DEFAULT_PREFIX!r})",
    )
    common.add_argument("--json", action="store_true", help="print the result as JSON")

    parser = add_command(
        subparsers,
        "lab",
        summary="a Yggdrasil mesh of network namespaces on this machine",
        description="Real Yggdrasil nodes in network namespaces on this machine (needs root).",
        handler=None,
        epilog=_EPILOG,
    )
    actions = parser.add_subparsers(title="lab commands", dest="lab_command", metavar="ACTION")
    actions.required = True

    up = actions.add_parser(
        "up", parents=[common], help="bring the lab up", description="Bring the lab up."
    )
    up.add_argument(
        "--nodes",
        type=int,
        metavar="N",
        help=f"hosts, 1-{MAX_NODES} (default: as the lab that is up, else 2)",
    )
    up.add_argument(
        "--topology",
        choices=("chain", "star"),
        help="chain: a-b-c-... (a reaches c only through b); star: a is peered with every "
        "host (default: as the lab that is up, else chain)",
    )
    up.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"seconds to wait for the mesh (default {DEFAULT_TIMEOUT:g})",
    )
    up.add_argument(
        "--with",
        dest="services",
        action="append",
        choices=("xmpp",),
        default=[],
        help="also run servers on every host; xmpp: a v6alt sidecar and a Prosody 13 with "
        "mod_v6alt for the host's <label>.v6.alt domain (MUC on groups.<label>.v6.alt)",
    )
    up.set_defaults(handler=_run_up)

    status = actions.add_parser(
        "status",
        parents=[common],
        help="show the lab and its servers",
        description="Show the lab's hosts and the servers on them, checked live.",
    )
    status.set_defaults(handler=_run_status)

    down = actions.add_parser(
        "down", parents=[common], help="tear the lab down", description="Tear the lab down."
    )
    down.set_defaults(handler=_run_down)


def _progress(stream: TextIO) -> Callable[[str], None]:
    def write(message: str) -> None:
        stream.write(f"lab: {message}\n")
        stream.flush()

    return write


def _lab(args: argparse.Namespace, streams: Streams) -> Lab:
    return Lab(run_dir=args.run_dir, prefix=args.prefix, progress=_progress(streams.stderr))


def _fail(streams: Streams, error: Exception, code: int) -> int:
    streams.stderr.write(f"{PROG} lab: {error}\n")
    return code


def _write_table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")


def _print_status(status: LabStatus, streams: Streams, as_json: bool) -> None:
    if as_json:
        dump_json(status.to_dict(), streams.stdout)
        return
    out = streams.stdout
    if not status.up and not status.hosts:
        out.write(f"lab is down (nothing recorded in {status.run_dir})\n")
        return
    health = "healthy" if status.healthy else "NOT healthy"
    out.write(
        f"lab is {'up' if status.up else 'partly up'}, {health}: {count_hosts(status.nodes)}, "
        f"{status.topology}, run dir {status.run_dir}\n"
    )
    rows = [("HOST", "NAMESPACE", "YGGDRASIL ADDRESS", "V6.ALT NAME", "PEERS UP")]
    for h in status.hosts:
        peers = f"{','.join(h.peers_up) or '-'} ({len(h.peers_up)}/{len(h.peers_expected)})"
        rows.append((h.host, h.netns, h.ygg_address or "-", h.name or "-", peers))
    _write_table(rows, out)
    services = [("HOST", "SERVICE", "STATE", "PID", "CONNECT (port N: on the host's address)")]
    for h in status.hosts:
        for s in h.services:
            state = "running" if s.running else "DOWN"
            pid = "-" if s.pid is None else str(s.pid)
            where = describe_endpoints(s.endpoints, h.ygg_address)
            services.append((h.host, s.kind, state, pid, where))
    if len(services) > 1:
        _write_table(services, out)
    for problem in status.problems:
        out.write(f"problem: {problem}\n")


def _run_up(args: argparse.Namespace, streams: Streams) -> int:
    try:
        lab = _lab(args, streams)
        nodes, topology = args.nodes, args.topology
        if nodes is None or topology is None:
            # A bare `lab up` accepts the lab that is up, whatever its size.
            lab.require_root()
            existing = lab.load_state()
            if nodes is None:
                nodes = existing.nodes if existing else 2
            if topology is None:
                topology = existing.topology if existing else "chain"
        lab.up(nodes=nodes, topology=topology, timeout=args.timeout)
        sites = []
        if "xmpp" in args.services:
            from .xmpp.services import start_xmpp  # Prosody and the sidecar only when asked for

            sites = start_xmpp(lab)
        status = lab.status()
    except LabError as error:
        return _fail(streams, error, error.exit_code)
    if args.json:
        data = status.to_dict()
        data["xmpp"] = [
            {"host": s.host.host, "domain": s.domain, "muc": s.muc_domain, "dir": str(s.files.tree)}
            for s in sites
        ]
        dump_json(data, streams.stdout)
    else:
        _print_status(status, streams, False)
        for site in sites:
            streams.stdout.write(
                f"xmpp {site.host.host}: {site.domain} (MUC {site.muc_domain}), c2s [::1]:5222 "
                f"inside {site.host.netns}, files {site.files.tree}\n"
            )
    return EXIT_OK if status.healthy else EXIT_CHECK_FAILED


def _run_status(args: argparse.Namespace, streams: Streams) -> int:
    try:
        status = _lab(args, streams).status()
    except LabError as error:
        return _fail(streams, error, error.exit_code)
    _print_status(status, streams, args.json)
    return EXIT_OK if status.healthy else EXIT_CHECK_FAILED


def _run_down(args: argparse.Namespace, streams: Streams) -> int:
    try:
        report = _lab(args, streams).down()
    except LabError as error:
        return _fail(streams, error, error.exit_code)
    if args.json:
        dump_json(
            {
                "stopped": report.stopped,
                "deleted_links": report.deleted_links,
                "deleted_netns": report.deleted_netns,
                "removed_files": report.removed_files,
                "left_alone": report.left_alone,
            },
            streams.stdout,
        )
    return EXIT_OK if report.clean else EXIT_CHECK_FAILED
