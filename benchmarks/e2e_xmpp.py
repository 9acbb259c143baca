"""End-to-end XMPP over a real Yggdrasil lab: cold first message, delivery after outages.

Run (root; yggdrasil, Prosody 13, openssl, tshark, slixmpp and Twisted installed):

    python benchmarks/e2e_xmpp.py [--cold-runs 3] [--outage link,server]
                                  [--sweep 5,10,30,60,120,600] [--cut N]
                                  [--dead-peers 1000 --returning 100] [--wait 120]
                                  [--tcp tcp_rto_max_ms=5000,...] [--json] [--write-readme]

- **cold first message**: a fresh two-host lab with fresh Prosody servers and
  sidecars (``start_xmpp``), both users logged in; the time from sending the
  first message a -> b until b's client has it, then the first reply b -> a.
- **outage sweep** (one lab per ``--outage`` kind, every ``--sweep`` length
  in it, in order): ``link`` cuts the underlay link a-b, while each side
  sends a message every length/6 s; ``server`` stops b's Prosody (b's port
  then refuses connections; it is started again shortly before the end and
  bob logs in again, its s2s port kept refusing a until the end), while a
  sends. Then the route is restored and a TCP connect from a to b's s2s port
  is tried every 50 ms (``RouteWatch``): the first one that succeeds is
  "route back". Per length: from route back to the first and last queued
  message delivered (target last <= 5 s), lost (not there ``--wait`` s
  later), doubled.
- **dead peers** (``--dead-peers N --returning M``): alice on a sends one
  message to each of N v6.alt domains: N - M are unrouted addresses in
  200::/7 that never answer, M are addresses in b's Yggdrasil subnet that
  start listening (a bare TCP listener, added to b's loopback) at random
  times once every peer is stalled. Reported: the delay from a listener's
  start to the first probe reaching it, a's probe attempts per second
  (SYNs on a's TUN, by ``tshark``) and the CPU of a's Prosody and Yggdrasil;
  then one link cut between a and b (``--dead-cut`` s) with all the dead
  peers still stalled, measured as in the sweep.

Every lab has its own run directory and namespace prefix (``v6e-b<n>p<pid>-``).
``--write-readme`` replaces the "End-to-end XMPP" section of benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from report import machine_line, spread, write_section
from xmpp_dead_peers import dead_peers_run, dead_table
from xmpp_outage import _deliver, outage_row, outage_table, xmpp_lab

HEADING = "## End-to-end XMPP"
SYSCTL_DIR = Path("/proc/sys/net/ipv4")


def _prosody_version() -> str:
    argv = ["setpriv", "--reuid=prosody", "--regid=prosody", "--init-groups", "prosodyctl", "about"]
    out = subprocess.run(argv, capture_output=True, text=True).stdout
    return next((line.strip() for line in out.splitlines() if line.startswith("Prosody ")), "?")


def cold_run(sysctls: dict[str, str]) -> dict[str, float]:
    with xmpp_lab(sysctls) as x:
        first = _deliver(x.alice, x.bob, "cold a->b")
        reply = _deliver(x.bob, x.alice, "cold b->a")
        warm = _deliver(x.alice, x.bob, "warm a->b")
    return {"first": first, "reply": reply, "warm": warm}


def sweep(kind: str, lengths: list[float], sysctls: dict[str, str], wait: float) -> list[Any]:
    rows = []
    with xmpp_lab(sysctls) as x:
        for length in lengths:
            rows.append(outage_row(x, kind, length, wait, "sweep"))
            print(f"{kind} outage: {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def table(
    cold: list[dict[str, float]], rows: list[dict[str, Any]], dead: dict[str, Any] | None,
    sysctls: dict[str, str],
) -> str:  # fmt: skip
    tcp = ", ".join(f"`{k}={v}`" for k, v in sysctls.items()) or "kernel TCP defaults"
    lines = [machine_line(_prosody_version()) + f"; {tcp}; a shared, busy machine", ""]
    if cold:
        lines += ["| cold (fresh servers), seconds | median (min-max) | runs |", "|---|---:|---:|"]
        for key, label in (("first", "first message a -> b"), ("reply", "first reply b -> a"),
                           ("warm", "next message a -> b")):  # fmt: skip
            lines.append(f"| {label} | {spread([r[key] for r in cold])} | {len(cold)} |")
        lines.append("")
    if rows:
        lines += [*outage_table(rows), ""]
    if dead is not None:
        lines += [*dead_table(dead), "", "With them all still stalled:", "",
                  *outage_table([dead["cut"]]), ""]  # fmt: skip
    return "\n".join(lines)


SECTION_TEXT = """\
`sudo python benchmarks/e2e_xmpp.py --outage link,server --sweep 5,10,30,60,120,600
--dead-peers 1000 --returning 100 --write-readme` (root; yggdrasil, Prosody 13,
openssl, tshark, `v6alt[sidecar]` and slixmpp; about an hour). Two lab
hosts, each a real Yggdrasil node with a v6alt sidecar and Prosody 13 +
mod_v6alt with the documented configuration (defaults: probes at most 300
per second, each stalled peer every 2 s or, with more than 600 waiting,
every n / 300 s); slixmpp users on their own server. Cold: fresh servers,
time from sending the first message to the other client having it.
Outages: `link` cuts the underlay link between the hosts while both send;
`server` stops b's Prosody while a sends (b's port refuses connections
until the end; b's Prosody is started again 10 s before it and bob logs in
again). "Route back" is the first TCP connect from a to b's s2s port that
succeeds after the link returns or the port opens (tried every 50 ms).
Target: the last queued message delivered <= 5 s after route back,
nothing lost, nothing twice. Dead peers: one message from a to each of
1,000 v6.alt domains, 900 of them unrouted addresses in 200::/7 and 100 in
b's Yggdrasil subnet whose listeners start at random times within 60 s
once all are stalled.

"""


def write_readme(text: str, findings: str) -> None:
    """Replace (or append) only this section of benchmarks/README.md."""
    write_section(HEADING, f"{SECTION_TEXT}{text}\n{findings}")


def _parse_tcp(text: str) -> dict[str, str]:
    if text == "-":
        return {}
    settings = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not value.isdigit():
            raise ValueError(f"{item!r} is not NAME=NUMBER")
        if not (SYSCTL_DIR / key).exists():
            raise ValueError(f"this kernel has no net.ipv4.{key}")
        settings[key] = value
    return settings


def _lengths(text: str) -> list[float]:
    values = [float(item) for item in text.split(",") if item]
    if not values or any(v < 1 for v in values):
        raise ValueError(f"{text!r} is not a list of lengths of at least 1 s")
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--cold-runs", type=int, default=3, metavar="N")
    parser.add_argument("--outage", default="link", help="link, server or link,server (link)")
    parser.add_argument("--sweep", default="", metavar="S,S,...", help="outage lengths, s")
    parser.add_argument("--cut", type=float, metavar="S", help="one length (= --sweep S)")
    parser.add_argument("--dead-peers", type=int, default=0, metavar="N")
    parser.add_argument("--returning", type=int, default=100, metavar="M")
    parser.add_argument("--spread", type=float, default=60.0, metavar="S",
                        help="returning peers start listening within S s (60)")  # fmt: skip
    parser.add_argument("--dead-cut", type=float, default=30.0, metavar="S")
    parser.add_argument("--tcp", default="-", metavar="SETTINGS",
                        help="net.ipv4 sysctls in every lab namespace, e.g. "
                        "'tcp_rto_max_ms=5000'; '-' = kernel defaults")  # fmt: skip
    parser.add_argument("--wait", type=float, default=120.0, metavar="S",
                        help="seconds after route back to wait for the messages (120)")  # fmt: skip
    parser.add_argument("--findings", type=Path, help="text after the tables in the README")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("e2e_xmpp.py: needs root (network namespaces)", file=sys.stderr)
        return 2
    try:
        sysctls = _parse_tcp(args.tcp)
        lengths = _lengths(args.sweep) if args.sweep else ([args.cut] if args.cut else [])
        kinds = [k for k in args.outage.split(",") if k]
        if any(k not in ("link", "server") for k in kinds):
            raise ValueError(f"--outage {args.outage!r}: use link, server or link,server")
        if args.dead_peers and not 0 < args.returning < args.dead_peers:
            raise ValueError("--returning must be between 0 and --dead-peers")
    except ValueError as error:
        print(f"e2e_xmpp.py: {error}", file=sys.stderr)
        return 2
    cold = []
    for i in range(args.cold_runs):
        cold.append(cold_run(sysctls))
        print(f"cold run {i + 1}: " + ", ".join(f"{k} {v:.3f} s" for k, v in cold[-1].items()),
              file=sys.stderr, flush=True)  # fmt: skip
    rows = [row for kind in kinds if lengths for row in sweep(kind, lengths, sysctls, args.wait)]
    dead = None
    if args.dead_peers:
        dead = dead_peers_run(args.dead_peers, args.returning, args.spread, args.dead_cut,
                              sysctls, args.wait)  # fmt: skip
        print(f"dead peers: {json.dumps(dead)}", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({"cold": cold, "outages": rows, "dead_peers": dead}, indent=2))
        return 0
    text = table(cold, rows, dead, sysctls)
    print(text)
    if args.write_readme:
        findings = args.findings.read_text() if args.findings else ""
        write_readme(text, findings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
