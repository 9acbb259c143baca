"""``v6alt demo``: federate over v6.alt names on a two-host Yggdrasil mesh, step by step.

Not root: only the Matrix half runs, two homeservers on ``[::1]``
(:mod:`v6alt.lab.matrix.loopback`), and the first line says why.

Steps are printed as they happen (to stdout, or to stderr with ``--json``,
which prints the result object on stdout). Exit status: 0 the demo ran; 1 a
step failed (everything it made is removed unless ``--keep``); 2 bad usage
or a package missing (the message names the install command);
130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Final

from v6alt.cli_common import EXIT_OK, EXIT_USAGE, PROG, Streams, SubParsers, add_command, dump_json

from .demo import DEMO_PREFIX, DEMO_RUN_DIR, not_root_reason, run_demo
from .errors import LabError

__all__ = ["register"]

EXIT_INTERRUPTED: Final = 130

_EPILOG: Final = """\
what it does:
  1. checks for root, iproute2, yggdrasil (>= 0.5), Prosody 13, openssl, slixmpp
  2. brings up two hosts (namespaces v6demo-a, v6demo-b) with a Yggdrasil node each
  3. starts a v6alt sidecar and Prosody 13 with mod_v6alt on each host, serving
     the host's own v6.alt name as its XMPP domain
  4. creates a user on each server
  5. sends an XMPP message from a to b and a reply, over Yggdrasil
  6. the same for Matrix when matrix-synapse and v6alt's lab homeserver support
     are installed; otherwise says so
  then removes everything (or, with --keep, leaves it up and prints how to connect)

not root: no namespaces or Yggdrasil, and Prosody cannot be started as its own
  user, so only the Matrix half runs: two Synapses with the v6alt module on [::1],
  server names a-e.v6.alt:18448 and a-e.v6.alt:18449, a room and a message across

exit status: 0 ok; 1 a step failed; 2 bad usage, a package missing or a port taken;
  130 interrupted. See docs/lab.md ("v6alt demo").
"""


def register(subparsers: SubParsers) -> None:
    parser = add_command(
        subparsers,
        "demo",
        summary="two Yggdrasil hosts federating XMPP (and Matrix) over v6.alt names",
        description=(
            "Bring up two Yggdrasil hosts in network namespaces, an XMPP server on each,\n"
            "send a message across using only v6.alt names, and tear it down (needs root;\n"
            "without it, only the Matrix half runs, on loopback)."
        ),
        handler=_run,
        epilog=_EPILOG,
    )
    parser.add_argument(
        "--keep", action="store_true", help="leave the lab up and print how to connect a client"
    )
    parser.add_argument(
        "--run-dir",
        default=str(DEMO_RUN_DIR),
        metavar="DIR",
        help=f"the demo lab's state, configs and logs (default {DEMO_RUN_DIR})",
    )
    parser.add_argument(
        "--prefix", default=DEMO_PREFIX, help=f"namespace name prefix (default {DEMO_PREFIX!r})"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds to wait for the mesh (default 60)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def _run(args: argparse.Namespace, streams: Streams) -> int:
    shown = streams.stderr if args.json else streams.stdout

    def say(line: str) -> None:
        shown.write(line + "\n")
        shown.flush()

    if not_root_reason() is not None:
        return _run_on_loopback(args, streams, say)

    try:
        result = run_demo(
            say, keep=args.keep, run_dir=Path(args.run_dir), prefix=args.prefix,
            timeout=args.timeout,
        )  # fmt: skip
    except LabError as error:
        streams.stderr.write(f"{PROG} demo: {error}\n")
        return error.exit_code
    except KeyboardInterrupt:
        left = "the lab is left up (--keep)" if args.keep else "everything it made was removed"
        streams.stderr.write(f"{PROG} demo: interrupted; {left}\n")
        return EXIT_INTERRUPTED
    if args.json:
        dump_json(dataclasses.asdict(result), streams.stdout)
    return EXIT_OK


def _run_on_loopback(args: argparse.Namespace, streams: Streams, say: Callable[[str], None]) -> int:
    """Not root: the Matrix half on [::1] (see docs/lab.md, "Without root")."""
    try:
        from .matrix.loopback import NOT_ROOT_REASON, result_dict, run_loopback_demo
    except ImportError as error:  # the module imports Twisted and Synapse's helpers
        streams.stderr.write(
            f"{PROG} demo: not root, and the Matrix half on loopback cannot run either: "
            f"{error}; install matrix-synapse (pip install matrix-synapse) or run as root\n"
        )
        return EXIT_USAGE
    say(f"{PROG} demo: {NOT_ROOT_REASON}")
    try:
        result = run_loopback_demo(say, keep=args.keep, timeout=max(args.timeout, 120.0))
    except LabError as error:
        streams.stderr.write(f"{PROG} demo: {error}\n")
        return error.exit_code
    except KeyboardInterrupt:
        left = "the homeservers are left up (--keep)" if args.keep else "everything was removed"
        streams.stderr.write(f"{PROG} demo: interrupted; {left}\n")
        return EXIT_INTERRUPTED
    if args.json:
        dump_json(result_dict(result), streams.stdout)
    return EXIT_OK
