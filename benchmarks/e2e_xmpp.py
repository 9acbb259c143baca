"""End-to-end XMPP over a real Yggdrasil lab: cold first message, link return to delivery.

Run (root; yggdrasil, Prosody 13, openssl, slixmpp and Twisted installed):

    python benchmarks/e2e_xmpp.py [--cold-runs 3] [--cut 60] [--cut-runs 1] [--wait 180]
                                  [--tcp - tcp_rto_max_ms=5000 ...] [--json] [--write-readme]

- **cold first message**: a fresh two-host lab with fresh Prosody servers and
  sidecars (``start_xmpp``), both users logged in; the time from sending the
  first message a -> b until b's client has it (s2s connect over Yggdrasil,
  TLS, the sidecar lookups, certificate trust by address), then the first
  reply b -> a (a second s2s connection, the other way).
- **link return to delivery**: with both s2s connections up, the underlay
  link a-b is cut for ``--cut`` seconds while each side sends a message every
  ``cut/6`` s; the time from link return until the last queued message is
  delivered (target <= 10 s), counting messages lost (not there ``--wait``
  s after the return) or duplicated. ``--tcp`` gives one run per setting:
  ``net.ipv4`` sysctls set in every lab namespace before the servers start
  (``-`` = kernel defaults; ``tcp_rto_max_ms`` needs Linux >= 6.15).

Every lab has its own run directory and namespace prefix (``v6e-b<pid>-``).
``--write-readme`` replaces the "End-to-end XMPP" section of benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from report import link_cut_table, machine_line, spread, write_section

from v6alt.lab import Lab
from v6alt.lab.xmpp.services import XmppSite, start_xmpp
from v6alt.lab.xmpp.users import XmppUser

HEADING = "## End-to-end XMPP"
TARGET_SECONDS = 10.0
MESSAGES_PER_SIDE = 6
SYSCTL_DIR = Path("/proc/sys/net/ipv4")
DEFAULT_TCP = ["-", "tcp_rto_max_ms=5000", "tcp_rto_max_ms=5000,tcp_retries2=30"]
_runs = iter(range(1000))


def _prosody_version() -> str:
    argv = ["setpriv", "--reuid=prosody", "--regid=prosody", "--init-groups", "prosodyctl", "about"]
    out = subprocess.run(argv, capture_output=True, text=True).stdout
    return next((line.strip() for line in out.splitlines() if line.startswith("Prosody ")), "?")


@contextmanager
def xmpp_lab(sysctls: dict[str, str]) -> Iterator[tuple[Lab, list[XmppSite], list[XmppUser]]]:
    run = next(_runs)
    lab = Lab(
        run_dir=f"/run/v6alt-e2ebench-{run}-{os.getpid()}", prefix=f"v6e-b{run}p{os.getpid()}-"
    )
    users: list[XmppUser] = []
    try:
        hosts = lab.up(nodes=2)
        for host in hosts:  # before the servers start: new sockets take the settings
            for key, value in sysctls.items():
                host.exec(["sysctl", "-q", "-w", f"net.ipv4.{key}={value}"])
        sites = start_xmpp(lab)
        for site, name in zip(sites, ("alice", "bob"), strict=True):
            users.append(XmppUser(site.host, site.register(name, "pw-" + name), "pw-" + name))
        yield lab, sites, users
    finally:
        for user in users:
            user.close()
        lab.down()


def _deliver(sender: XmppUser, receiver: XmppUser, body: str) -> float:
    started = time.monotonic()
    sender.send(receiver.jid, body)
    return float(receiver.wait_message(body, timeout=120)["at"]) - started


def cold_run() -> dict[str, float]:
    with xmpp_lab({}) as (_, _, (alice, bob)):
        first = _deliver(alice, bob, "cold a->b")
        reply = _deliver(bob, alice, "cold b->a")
        warm = _deliver(alice, bob, "warm a->b")
    return {"first": first, "reply": reply, "warm": warm}


def _arrivals(users: tuple[XmppUser, XmppUser], sent: list[str], deadline: float) -> dict[str, Any]:
    """First arrival time of each sent body (either user), waiting until ``deadline``."""
    while True:
        arrived: dict[str, Any] = {}
        for user in users:
            for event in user.messages():
                arrived.setdefault(event["body"], event["at"])
        if all(body in arrived for body in sent) or time.monotonic() > deadline:
            return arrived
        time.sleep(0.05)


def cut_run(cut: float, sysctls: dict[str, str], wait: float) -> dict[str, Any]:
    with xmpp_lab(sysctls) as (lab, _, (alice, bob)):
        _deliver(alice, bob, "before a->b")
        _deliver(bob, alice, "before b->a")
        lab.set_link("a", "b", up=False)
        cut_at = time.monotonic()
        sent: list[str] = []
        for i in range(MESSAGES_PER_SIDE):
            time.sleep(max(0.0, cut_at + i * cut / MESSAGES_PER_SIDE - time.monotonic()))
            sent.append(f"cut a->b {i}")
            alice.send(bob.jid, sent[-1])
            sent.append(f"cut b->a {i}")
            bob.send(alice.jid, sent[-1])
        time.sleep(max(0.0, cut_at + cut - time.monotonic()))
        lab.set_link("a", "b", up=True)
        restored = time.monotonic()
        arrived = _arrivals((alice, bob), sent, restored + wait)
        time.sleep(3)  # room for a late duplicate
        counts = Counter(
            e["body"] for u in (alice, bob) for e in u.messages() if e["body"].startswith("cut ")
        )
    times = [arrived[body] - restored for body in sent if body in arrived]
    expected = Counter(sent)
    return {
        "sysctls": sysctls,
        "first": min(times) if times else None,
        "last": max(times) if len(times) == len(sent) else None,
        "lost": sum((expected - counts).values()),
        "duplicated": sum((counts - expected).values()),
        "wait": wait,
    }


def table(cold: list[dict[str, float]], cuts: list[dict[str, Any]], cut: float) -> str:
    lines = [
        machine_line(_prosody_version()),
        "",
        "| cold (fresh servers), seconds | median (min-max) | runs |",
        "|---|---:|---:|",
    ]
    for key, label in (("first", "first message a -> b"), ("reply", "first reply b -> a"),
                       ("warm", "next message a -> b")):  # fmt: skip
        lines.append(f"| {label} | {spread([r[key] for r in cold])} | {len(cold)} |")
    rows = [
        (", ".join(f"`{k}={v}`" for k, v in r["sysctls"].items()) or "kernel defaults", r)
        for r in cuts
    ]
    lines += ["", *link_cut_table(cut, MESSAGES_PER_SIDE, TARGET_SECONDS, rows)]
    return "\n".join(lines) + "\n"


SECTION_TEXT = """\
`sudo python benchmarks/e2e_xmpp.py --write-readme` (root; yggdrasil, Prosody 13,
openssl, `v6alt[sidecar]` and slixmpp; about 8 minutes). Two lab hosts, each a
real Yggdrasil node with a v6alt sidecar and Prosody 13 + mod_v6alt serving its
own v6.alt name; slixmpp users connected to their own server. Cold: fresh
servers, time from sending the first message to the other client having it.
Link cut: the underlay veth between the hosts is down for 60 s while messages
are sent both ways, then restored; the time from restore to the last delivery,
one run per TCP setting (`--tcp`, `-` = kernel defaults). Target: <= 10 s,
nothing lost, nothing twice.

"""

FINDINGS = """
Within the target with the kernel's TCP defaults, nothing lost or doubled.
During the cut each server's ping to the other goes unanswered for 15 s
(`v6alt_s2s_stall_timeout`); mod_v6alt closes the stalled stream, holds
what is sent, and probes the peer's port every 2 s. The first probe that
connects after the return (the probe interval plus Yggdrasil re-peering)
resends the unconfirmed stanzas, marked, and the held ones over a fresh
connection; the receiver drops a marked stanza it already had (the closed
stream's kernel may still deliver its copy). Without this, the streams
survive the cut and TCP's retransmission backoff (doubling, up to 120 s)
delivered the queued messages 47-51 s after the return, and with only
`tcp_rto_max_ms` lowered the kernel declared the connections dead within
the cut and the 12 messages in them were lost. The other rows show the
result no longer depends on the kernel's TCP settings (`tcp_rto_max_ms`
needs Linux 6.15 or newer). Details: `docs/prosody.md`, "Link cuts and
stalled streams".
"""


def write_readme(text: str) -> None:
    """Replace (or append) only this section of benchmarks/README.md."""
    write_section(HEADING, f"{SECTION_TEXT}{text}{FINDINGS}")


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


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--cold-runs", type=int, default=3, metavar="N")
    parser.add_argument("--cut", type=float, default=60.0, metavar="S", help="seconds (60)")
    parser.add_argument("--cut-runs", type=int, default=1, metavar="N")
    parser.add_argument(
        "--tcp", nargs="+", default=DEFAULT_TCP, metavar="SETTINGS",
        help="per cut run, net.ipv4 sysctls set in every lab namespace, e.g. "
        "'tcp_rto_max_ms=5000,tcp_retries2=30'; '-' = kernel defaults "
        f"(default: {' '.join(DEFAULT_TCP)})",
    )  # fmt: skip
    parser.add_argument(
        "--wait", type=float, default=180.0, metavar="S",
        help="seconds after the link returns to wait for the queued messages (180)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("e2e_xmpp.py: needs root (network namespaces)", file=sys.stderr)
        return 2
    try:
        settings = [_parse_tcp(text) for text in args.tcp]
    except ValueError as error:
        print(f"e2e_xmpp.py: --tcp: {error}", file=sys.stderr)
        return 2
    cold = []
    for i in range(args.cold_runs):
        cold.append(cold_run())
        print(f"cold run {i + 1}: " + ", ".join(f"{k} {v:.3f} s" for k, v in cold[-1].items()),
              file=sys.stderr, flush=True)  # fmt: skip
    cuts = []
    for sysctls in settings:
        for _ in range(args.cut_runs):
            cuts.append(cut_run(args.cut, sysctls, args.wait))
            print(f"cut run: {cuts[-1]}", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({"cold": cold, "cut": cuts, "cut_seconds": args.cut}, indent=2))
    else:
        print(table(cold, cuts, args.cut))
    if args.write_readme:
        write_readme(table(cold, cuts, args.cut))
    return 0


if __name__ == "__main__":
    sys.exit(main())
