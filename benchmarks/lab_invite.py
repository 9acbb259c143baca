"""Cold invite to first message on the lab: the v6alt module against stock Synapse.

Run (root; yggdrasil, openssl, unbound and matrix-synapse installed in this interpreter):

    python benchmarks/lab_invite.py [--runs 10] [--json] [--write-readme]

One two-host lab (real Yggdrasil nodes, ``v6alt.lab``); for every run, on
the same two hosts and the same mesh addresses, fresh homeservers of each
kind in turn (the order alternates from run to run):

- **module**: Synapse + the v6alt module, server names = the hosts' v6.alt
  names, self-signed certificates trusted by address
  (``v6alt.lab.matrix.mesh``);
- **stock**: Synapse without the module, server names ``a.lab.example`` and
  ``b.lab.example`` whose AAAA records (the hosts' mesh addresses) an unbound
  in each host's namespace serves, certificates from a test CA both trust,
  verified (``v6alt.lab.matrix.stock``).

Each run measures e2e_matrix.py's cold round: the time from creating the room
on a with bob@b invited until b has the invite, until bob has joined (over
federation), until alice's first message is in b's timeline; then bob's first
reply. No server has talked to the other before; the mesh route is warm (the
lab pings across when it comes up). Target (issue 5): module / stock <= 1.0
for the first message.

The lab's run directory is ``/run/v6alt-stockbench-<pid>``, its namespaces
``v6k-<pid>-a`` and ``v6k-<pid>-b``; everything is removed at the end.
``--write-readme`` replaces the "Cold invite: module vs stock Synapse" section
of benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Callable, Sequence

from e2e_matrix import cold_round, machine_line
from report import spread, write_section

from v6alt.lab import Lab, LabHost
from v6alt.lab.matrix.mesh import LabSynapse, start_homeservers
from v6alt.lab.matrix.stock import start_stock_homeservers, stop_lab_homeservers

HEADING = "## Cold invite: module vs stock Synapse"
TARGET_RATIO = 1.0
KINDS = ("module", "stock")
Starter = Callable[[Lab, Sequence[LabHost], Callable[[str], None]], list[LabSynapse]]
STARTERS: dict[str, Starter] = {"module": start_homeservers, "stock": start_stock_homeservers}
ROWS = (
    ("invite", "invite seen on b"),
    ("join", "bob joined (over federation)"),
    ("first", "first message a -> b seen on b"),
    ("reply", "first reply b -> a (from its send)"),
)


def _quiet(line: str) -> None:
    pass


def one_round(lab: Lab, hosts: Sequence[LabHost], kind: str) -> dict[str, float]:
    """Fresh homeservers of ``kind`` on ``hosts``, one cold round, then they are removed."""
    try:
        a, b = STARTERS[kind](lab, hosts, _quiet)
        return cold_round(a.register("alice", "pw-alice"), b.register("bob", "pw-bob"))
    finally:
        stop_lab_homeservers(lab)


def measure(runs: int, progress: Callable[[str], None]) -> dict[str, list[dict[str, float]]]:
    pid = os.getpid()
    lab = Lab(run_dir=f"/run/v6alt-stockbench-{pid}", prefix=f"v6k-{pid}-")
    results: dict[str, list[dict[str, float]]] = {kind: [] for kind in KINDS}
    try:
        hosts = lab.up(nodes=2)
        for run in range(runs):
            for kind in KINDS if run % 2 == 0 else KINDS[::-1]:
                times = one_round(lab, hosts, kind)
                results[kind].append(times)
                progress(f"run {run + 1}/{runs} {kind}: first message {times['first']:.3f} s")
    finally:
        lab.down()
    return results


def ratio(results: dict[str, list[dict[str, float]]], key: str) -> float:
    module = statistics.median(r[key] for r in results["module"])
    return module / statistics.median(r[key] for r in results["stock"])


def table(results: dict[str, list[dict[str, float]]]) -> str:
    runs = len(results["module"])
    lines = [
        machine_line(),
        "",
        f"| cold (fresh homeservers), seconds from the invite, {runs} runs each | "
        "v6alt module, median (min-max) | stock Synapse, median (min-max) | module / stock |",
        "|---|---:|---:|---:|",
    ]
    for key, label in ROWS:
        module, stock = ([r[key] for r in results[kind]] for kind in KINDS)
        lines.append(
            f"| {label} | {spread(module)} | {spread(stock)} | {ratio(results, key):.2f} |"
        )
    first = ratio(results, "first")
    verdict = "ok" if first <= TARGET_RATIO else "missed"
    lines += [
        "",
        f"Target: first message module / stock <= {TARGET_RATIO:.1f}: {first:.2f}, {verdict}.",
    ]
    return "\n".join(lines) + "\n"


SECTION_TEXT = """\
`sudo python benchmarks/lab_invite.py --write-readme` (root; yggdrasil,
openssl, unbound and `matrix-synapse` in the same venv as v6alt; about 2
minutes for the default 10 runs of each). One two-host lab; each run starts
fresh homeservers on the same two hosts (same Yggdrasil addresses), once with
the v6alt module and once stock, alternating which goes first, and measures
e2e_matrix.py's cold round: times from `createRoom` with bob invited on a.
Module: server names are the hosts' v6.alt names, self-signed certificates
trusted by address. Stock: Synapse without the module, server names
`a.lab.example` / `b.lab.example` whose AAAA records (the hosts' Yggdrasil
addresses) an unbound inside each host's namespace serves from local data
(`resolv.conf` bind-mounted for the Synapse process only), certificates from a
test CA that both trust (`federation_custom_ca_list`,
`federation_verify_certificates: true`). Both have `trusted_key_servers: []`
and the same lab settings; no server has talked to the other before, the
Yggdrasil route is warm. Times include the benchmark's polling of the client
API (every 0.1 s).

"""

FINDINGS = """
Within the target. The whole difference is in the first contact of each
server with the other, before any event moves: stock Synapse first asks for
`https://<name>/.well-known/matrix/server`, and with nothing on port 443 that
connection is refused, which Twisted's `HostnameEndpoint` reports only at its
next connection-attempt tick (0.3 s); then the SRV lookups
(`_matrix-fed._tcp`, `_matrix._tcp`, NXDOMAIN from the local unbound at once)
and the AAAA lookup. a pays it when it sends the invite to b, b when it
fetches a's signing key, so the invite reaches b about 0.6 s later than with
the module, and everything after it (join over federation, first message,
reply) takes the same time on both. The module answers a v6.alt name from
the name itself: no well-known request, no SRV or AAAA query. The baseline
is stock Synapse at its cheapest: a well-known that is served (another TLS
connection) or a port 443 that drops packets (a connect timeout) would cost
it more, and so would a DNS server that is not on the same host.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=10, help="runs of each kind (default 10)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args(argv)
    if args.runs < 1:
        print(f"lab_invite: --runs {args.runs}: needs at least 1", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("lab_invite: needs root (the lab creates network namespaces)", file=sys.stderr)
        return 2
    results = measure(args.runs, lambda line: print(line, file=sys.stderr))
    if args.json:
        print(json.dumps({"runs": results, "ratio_first": ratio(results, "first")}, indent=2))
    else:
        print(table(results), end="")
    if args.write_readme:
        write_section(HEADING, SECTION_TEXT + table(results) + FINDINGS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
