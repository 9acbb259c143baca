"""End-to-end Matrix over a real Yggdrasil lab: cold invite, delivery after outages, dead peers.

Run (root; yggdrasil, openssl and matrix-synapse installed in this interpreter):

    python benchmarks/e2e_matrix.py [--cold-runs 3] [--cut 60] [--cut-runs 1] [--wait 180]
        [--outage link,server] [--sweep 5,10,30,60,120,600]
        [--dead-peers 1000 --returning 100 --returning-window 60 --dead-peers-outage 30]
        [--rows-out FILE] [--from-rows FILE] [--json] [--write-readme]

- **cold invite -> first message**: a fresh two-host lab with fresh
  homeservers (``v6alt.lab.matrix.mesh``, Synapse + the v6alt module,
  server names = the hosts' v6.alt names); the time from creating the room
  on a with bob@b invited until b has the invite, until bob has joined (over
  federation), and until alice's first message is in b's timeline.
- **link return -> delivery** (without ``--outage``): the underlay link a-b
  is cut for ``--cut`` seconds while each side sends a message every
  ``cut/6`` s; the time from link return until the last queued message is in
  the other side's timeline.
- **outage sweep** (``--outage link|server|link,server --sweep ...``): one
  lab; for each kind and length, the link a-b is cut (messages both ways) or
  b's Synapse is stopped (messages a -> b) while 6 messages per side are
  sent, then restored. "Route back" is when a TCP connect from a's namespace
  to b's federation port first succeeds (``matrix_outage.RouteProbe``, tried
  every 0.05 s); delivery is timed from there (target: last message <= 5 s),
  counting messages lost (not there ``--wait`` s later) or duplicated.
- **dead peers** (``--dead-peers N --returning M``): N - M unrouted v6.alt
  destinations in 200::/8 and M at addresses of b's Yggdrasil subnet are
  written into a's ``destinations`` table as backed off; each of the M starts
  a TCP listener at a random time within ``--returning-window`` s; the delay
  from listen to the first probe connecting, a's connection attempts per
  second (its namespace's ``Tcp: ActiveOpens``) and a's Synapse CPU; then
  an outage of each kind and each ``--dead-peers-outage`` length (s) with the dead ones
  still there.

Every lab has its own run directory and namespace prefix (``v6m-b<run>p<pid>-``).
``--rows-out`` appends each result as a JSON line as soon as it is measured;
``--from-rows`` renders the table from such a file without running anything.
``--write-readme`` replaces the "End-to-end Matrix" section of benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import report
from matrix_outage import (
    Restartable,
    RouteProbe,
    active_opens,
    cpu_seconds,
    dead_addresses,
    listener_delays,
    returning_listeners,
    seed_dead_peers,
    subnet_addresses,
)

from v6alt.lab import Lab
from v6alt.lab.matrix.client import MatrixUser
from v6alt.lab.matrix.mesh import LabSynapse, start_homeservers

HEADING = "## End-to-end Matrix"
TARGET_SECONDS = 10.0
OUTAGE_TARGET_SECONDS = 5.0
#: How long the route may take to come back after an outage (Yggdrasil's own
#: reconnect backoff), and before the next outage.
ROUTE_WAIT_S = 1200.0
MESSAGES_PER_SIDE = 6
POLL_SECONDS = 0.1
_runs = iter(range(1000))


def _synapse_version() -> str:
    from synapse import __version__

    return str(__version__)


@contextmanager
def matrix_lab() -> Iterator[tuple[Lab, MatrixUser, MatrixUser, list[LabSynapse]]]:
    run, pid = next(_runs), os.getpid()
    lab = Lab(run_dir=f"/run/v6alt-e2em-bench-{run}-{pid}", prefix=f"v6m-b{run}p{pid}-")
    try:
        hosts = lab.up(nodes=2)
        servers = start_homeservers(lab, hosts, lambda line: None)
        a, b = servers
        yield lab, a.register("alice", "pw-alice"), b.register("bob", "pw-bob"), servers
    finally:
        lab.down()


def _seen(user: MatrixUser, room: str, body: str, timeout: float = 120) -> float:
    deadline = time.monotonic() + timeout
    while body not in user.texts(room):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{body!r} not seen by {user.user_id} in {timeout:g} s")
        time.sleep(POLL_SECONDS)
    return time.monotonic()


def invite_round(alice: MatrixUser, bob: MatrixUser) -> tuple[str, dict[str, float]]:
    """A room on a inviting bob; seconds from ``createRoom`` to invite, join, first message."""
    started = time.monotonic()
    room = alice.create_room(invite=[bob.user_id])
    via = bob.wait_invite(room, timeout=120)
    invited = time.monotonic()
    assert via, "the invite names no server to join through"
    bob.join(room, timeout=120)
    joined = time.monotonic()
    alice.send_text(room, "first a->b")
    first = _seen(bob, room, "first a->b")
    return room, {
        "invite": invited - started,
        "join": joined - started,
        "first": first - started,
    }


def cold_round(alice: MatrixUser, bob: MatrixUser) -> dict[str, float]:
    """:func:`invite_round`, then the first reply b -> a (seconds from its send)."""
    room, times = invite_round(alice, bob)
    sent = time.monotonic()
    bob.send_text(room, "reply b->a")
    times["reply"] = _seen(alice, room, "reply b->a") - sent
    return times


def cold_run() -> dict[str, float]:
    with matrix_lab() as (_, alice, bob, _servers):
        return cold_round(alice, bob)


def _arrivals(pairs: list[tuple[MatrixUser, str]], room: str, deadline: float) -> dict[str, float]:
    """When each body was first in its receiver's timeline, polling until ``deadline``."""
    arrived: dict[str, float] = {}
    while len(arrived) < len(pairs) and time.monotonic() <= deadline:
        texts = {user.user_id: set(user.texts(room)) for user in {u for u, _ in pairs}}
        now = time.monotonic()
        for user, body in pairs:
            if body not in arrived and body in texts[user.user_id]:
                arrived[body] = now
        time.sleep(POLL_SECONDS)
    return arrived


def cut_run(cut: float, wait: float) -> dict[str, Any]:
    with matrix_lab() as (lab, alice, bob, _servers):
        room, _ = invite_round(alice, bob)
        bob.send_text(room, "before b->a")
        _seen(alice, room, "before b->a")
        lab.set_link("a", "b", up=False)
        cut_at = time.monotonic()
        pairs: list[tuple[MatrixUser, str]] = []
        for i in range(MESSAGES_PER_SIDE):
            time.sleep(max(0.0, cut_at + i * cut / MESSAGES_PER_SIDE - time.monotonic()))
            alice.send_text(room, f"cut a->b {i}")
            pairs.append((bob, f"cut a->b {i}"))
            bob.send_text(room, f"cut b->a {i}")
            pairs.append((alice, f"cut b->a {i}"))
        time.sleep(max(0.0, cut_at + cut - time.monotonic()))
        lab.set_link("a", "b", up=True)
        restored = time.monotonic()
        arrived = _arrivals(pairs, room, restored + wait)
        time.sleep(5)  # room for a late duplicate
        lost, duplicated = _lost_and_doubled(alice, bob, room, pairs, "cut ")
    times = [arrived[body] - restored for _, body in pairs if body in arrived]
    return {
        "first": min(times) if times else None,
        "last": max(times) if len(times) == len(pairs) else None,
        "lost": lost,
        "duplicated": duplicated,
        "wait": wait,
    }


def _lost_and_doubled(
    alice: MatrixUser, bob: MatrixUser, room: str, pairs: list[tuple[MatrixUser, str]], prefix: str
) -> tuple[int, int]:
    """Each body once in both timelines (the sender's own and the receiver's)."""
    expected = Counter(body for _, body in pairs)
    lost = duplicated = 0
    for user in (alice, bob):
        counts = Counter(t for t in user.texts(room) if t.startswith(prefix))
        lost += sum((expected - counts).values())
        duplicated += sum((counts - expected).values())
    return lost, duplicated


# -- outage sweep (--outage, --sweep) ---------------------------------------------


@dataclass
class MeshPair:
    lab: Lab
    a: LabSynapse
    b: Restartable
    alice: MatrixUser
    bob: MatrixUser
    room: str


def _settle(pair: MeshPair, label: str) -> None:
    """Both directions deliver before the next outage starts."""
    pair.bob.send_text(pair.room, f"settle {label} b->a")
    pair.alice.send_text(pair.room, f"settle {label} a->b")
    _seen(pair.alice, pair.room, f"settle {label} b->a", timeout=ROUTE_WAIT_S)
    _seen(pair.bob, pair.room, f"settle {label} a->b", timeout=ROUTE_WAIT_S)


def outage_run(
    pair: MeshPair, kind: str, length: float, wait: float, dead_peers: int = 0
) -> dict[str, Any]:
    """One outage of ``kind`` (``link``: the a-b underlay is cut; ``server``: b's
    Synapse is stopped) for ``length`` s while messages are sent; seconds from the
    route being back (a TCP connect from a to b's federation port succeeds) to
    delivery."""
    label = f"{kind}{'+dead' if dead_peers else ''} {length:g}"
    _settle(pair, label)
    senders = [(pair.alice, pair.bob, "a->b")]
    if kind == "link":
        senders.append((pair.bob, pair.alice, "b->a"))
        pair.lab.set_link("a", "b", up=False)
    else:
        pair.b.stop()
    down_at = time.monotonic()
    pairs: list[tuple[MatrixUser, str]] = []
    for i in range(MESSAGES_PER_SIDE):
        time.sleep(max(0.0, down_at + i * length / MESSAGES_PER_SIDE - time.monotonic()))
        for sender, receiver, direction in senders:
            body = f"outage {label} {direction} {i}"
            sender.send_text(pair.room, body)
            pairs.append((receiver, body))
    time.sleep(max(0.0, down_at + length - time.monotonic()))
    # Yggdrasil re-peers on its own schedule: after a long cut its reconnect
    # backoff (doubling, up to about an hour) can keep the route away for minutes.
    probe = RouteProbe(pair.a.host, pair.b.server.host.ygg_address, timeout=ROUTE_WAIT_S)
    if kind == "link":
        pair.lab.set_link("a", "b", up=True)
    else:
        pair.b.start()
    restored = time.monotonic()
    route_back = probe.wait()
    if kind == "server":
        pair.b.wait_ready()
    base = route_back if route_back is not None else restored
    arrived = _arrivals(pairs, pair.room, base + wait)
    time.sleep(5)  # room for a late duplicate
    lost, duplicated = _lost_and_doubled(pair.alice, pair.bob, pair.room, pairs, f"outage {label} ")
    times = [arrived[body] - base for _, body in pairs if body in arrived]
    return {
        "kind": "outage",
        "outage": kind,
        "dead_peers": dead_peers,
        "length": length,
        "messages": len(pairs),
        "route_back": None if route_back is None else route_back - restored,
        "first": min(times) if times else None,
        "last": max(times) if len(times) == len(pairs) else None,
        "lost": lost,
        "duplicated": duplicated,
        "wait": wait,
    }


def dead_peers_run(pair: MeshPair, dead: int, returning: int, window: float) -> dict[str, Any]:
    """Seed ``dead`` + ``returning`` backed-off v6.alt destinations on a; the
    returning ones start listening at random times within ``window`` s."""
    rng = random.Random(15)
    dead_names = seed_dead_peers(pair.a, dead_addresses(dead, rng))
    back = subnet_addresses(pair.b.server.host, returning, rng)
    seed_dead_peers(pair.a, back)
    opens0, cpu0, t0 = active_opens(pair.a.host), cpu_seconds(pair.a.pid), time.monotonic()
    listeners = returning_listeners(pair.b.server.host, back, 5.0, window, seed=15)
    delays, never = listener_delays(listeners)
    opens1, cpu1, t1 = active_opens(pair.a.host), cpu_seconds(pair.a.pid), time.monotonic()
    # Steady state: only the dead ones are left to probe.
    time.sleep(30)
    opens2, cpu2, t2 = active_opens(pair.a.host), cpu_seconds(pair.a.pid), time.monotonic()
    return {
        "kind": "dead_peers",
        "dead": len(dead_names),
        "returning": returning,
        "window": window,
        "delays": sorted(delays),
        "never": never,
        "attempts_per_s": (opens1 - opens0) / (t1 - t0),
        "cpu": (cpu1 - cpu0) / (t1 - t0),
        "steady_attempts_per_s": (opens2 - opens1) / (t2 - t1),
        "steady_cpu": (cpu2 - cpu1) / (t2 - t1),
    }


def _record(rows_out: str | None, row: dict[str, Any]) -> None:
    print(json.dumps(row), flush=True)
    if rows_out:
        with open(rows_out, "a") as out:
            out.write(json.dumps(row) + "\n")


def sweep(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with matrix_lab() as (lab, alice, bob, servers):
        a, b = servers
        pair = MeshPair(lab, a, Restartable(b), alice, bob, "")
        try:
            pair.room, _ = invite_round(alice, bob)
            for kind in args.outage:
                for length in args.sweep:
                    rows.append(outage_run(pair, kind, length, args.wait))
                    _record(args.rows_out, rows[-1])
            if args.dead_peers:
                rows.append(dead_peers_run(pair, args.dead_peers - args.returning,
                                           args.returning, args.returning_window))  # fmt: skip
                _record(args.rows_out, rows[-1])
                for kind in args.outage:
                    for length in args.dead_peers_outage:
                        row = outage_run(pair, kind, length, args.wait, dead_peers=args.dead_peers)
                        rows.append(row)
                        _record(args.rows_out, row)
        finally:
            pair.b.close()
    return rows


def machine_line() -> str:
    return report.machine_line(f"Synapse {_synapse_version()}")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def outage_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        f"| outage | length, s | route back after restore, s | first delivered after route "
        f"back, s | last delivered after route back, s | lost | duplicated | "
        f"target last <= {OUTAGE_TARGET_SECONDS:g} s |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        last = f"not all within {r['wait']:g}" if r["last"] is None else f"{r['last']:.1f}"
        ok = r["last"] is not None and r["last"] <= OUTAGE_TARGET_SECONDS and not r["lost"]
        ok = ok and not r["duplicated"]
        what = "link cut" if r["outage"] == "link" else "peer's Synapse stopped"
        what += f", {r['dead_peers']:,} unreachable peers" if r.get("dead_peers") else ""
        lines.append(
            f"| {what} ({r['messages']} messages) | {r['length']:g} | "
            f"{_seconds(r['route_back'])} | "
            f"{_seconds(r['first'])} | {last} | {r['lost']} | {r['duplicated']} | "
            f"{'ok' if ok else 'missed'} |"
        )
    return lines


def dead_peers_table(r: dict[str, Any], label: str = "") -> list[str]:
    delays = r["delays"]
    spread = "-"
    if delays:
        p95 = delays[min(len(delays) - 1, int(0.95 * len(delays)))]
        spread = f"{statistics.median(delays):.1f} / {p95:.1f} / {max(delays):.1f}"
    return [
        f"| {r['dead']} dead + {r['returning']} returning peers{label} | value |",
        "|---|---:|",
        f"| listen -> first probe connects, s (median / p95 / max) | {spread} |",
        f"| returning peers never probed within {r['window']:g} + 120 s | {r['never']} |",
        f"| connection attempts/s while they return | {r['attempts_per_s']:.0f} |",
        f"| connection attempts/s with only the dead left | {r['steady_attempts_per_s']:.0f} |",
        f"| sender's CPU while they return (share of one core) | {100 * r['cpu']:.0f} % |",
        f"| sender's CPU with only the dead left | {100 * r['steady_cpu']:.0f} % |",
    ]


def table(rows: list[dict[str, Any]]) -> str:
    cold = [r for r in rows if r["kind"] == "cold"]
    cuts = [r for r in rows if r["kind"] == "cut"]
    outages = sorted(
        (r for r in rows if r["kind"] == "outage"),
        key=lambda r: (r.get("dead_peers", 0), r["outage"] != "link", r["length"]),
    )
    dead = [r for r in rows if r["kind"] == "dead_peers"]
    lines = [machine_line() + "; shared with other work while it ran", ""]
    if cold:
        lines += [
            "| cold (fresh homeservers), seconds from the invite | median (min-max) | runs |",
            "|---|---:|---:|",
        ]
        for key, label in (("invite", "invite seen on b"), ("join", "bob joined (over federation)"),
                           ("first", "first message a -> b seen on b")):  # fmt: skip
            lines.append(f"| {label} | {report.spread([r[key] for r in cold])} | {len(cold)} |")
        lines.append(f"| first reply b -> a (from its send) | "
                     f"{report.spread([r['reply'] for r in cold])} | {len(cold)} |")  # fmt: skip
        lines.append("")
    if cuts:
        runs = [(f"run {number}", r) for number, r in enumerate(cuts, 1)]
        lines += [*report.link_cut_table(cuts[0]["cut"], MESSAGES_PER_SIDE, TARGET_SECONDS, runs)]
        lines.append("")
    if outages:
        lines += [*outage_table(outages), ""]
    for number, r in enumerate(dead, 1):
        lines += [*dead_peers_table(r, f" (run {number})" if len(dead) > 1 else ""), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


SECTION_TEXT = """\
`sudo python benchmarks/e2e_matrix.py --cold-runs 1 --outage link,server
--sweep 5,10,30,60,120,600 --dead-peers 1000 --returning 100 --write-readme`
(root; yggdrasil, openssl and `matrix-synapse` in the same venv as v6alt;
about 45 minutes, more when Yggdrasil is slow to re-peer after the 10 minute
cut). Two lab hosts, each a real Yggdrasil node with a Synapse +
the v6alt module whose server name is the host's own v6.alt name
(`v6alt.lab.matrix.mesh`). Cold: fresh homeservers that have never talked,
times from the invite on a.

Outages, one lab for the whole sweep: the underlay veth between the hosts is
down (link cut; messages sent both ways) or b's Synapse is stopped (messages
a -> b) for the given length, then restored. "Route back" is when a TCP
connect from a's namespace to b's federation port over Yggdrasil first
succeeds again (tried every 0.05 s); delivery times count from there to the
message in the other side's timeline (polled every 0.1 s). Target: the last
queued message <= 5 s after the route is back, nothing lost or duplicated.

Dead peers: 900 v6.alt destinations at unrouted addresses in 200::/8 and 100
at addresses of b's Yggdrasil subnet, all written into a's `destinations`
table as backed off; each of the 100 starts a TCP listener at a random time
5-60 s later. Connection attempts are a's namespace `Tcp: ActiveOpens`, CPU
is a's Synapse process (user + system). The outage rows marked "unreachable
peers" run after that, with the 900 still backed off.

"""


FINDINGS = """
Within the target at every length, for both kinds of outage, with nothing
lost or duplicated, also with 1,000 unreachable peers. Before (the previous
recovery, from the link's return): 16.9 s after a 10 s cut, 24.5 s after
30 s, 101 s after 120 s, and 73 s after the peer's Synapse was stopped for
about 30 s. The causes, all in Synapse's own schedule (docs/synapse.md, "Peers
that come back"): a transaction is retried after 4 s, 16 s, then every 60 s
and the destination is backed off only after 10 attempts, so the previous
recovery, which probed backed-off destinations only, was not looking; an
attempt made during a cut waits on a connection whose data the kernel resends
with exponential backoff (up to 2 minutes apart) or on Synapse's 60 s request
timeout. Now a destination with a transaction in flight is probed too (every
2 s): when a probe connects, connections stuck in retransmission backoff are
aborted and the retry sleep is ended, and the queued events go out on a fresh
connection within about a second.

The route's return is the mesh's own time: Yggdrasil re-peers 4-10 s after
the underlay link returns for cuts up to 2 minutes, but after the 10 minute
cut its reconnect backoff (doubling per failed attempt) kept the route away
for 427 s. The 10 minute link-cut row comes from a second lab run: the first
run waited only 180 s for the route and counted all 12 messages as lost at
that point (its server-stop rows ran while the second lab was up). The
rows with unreachable peers at 5, 60 and 120 s and the second dead-peer
measurement come from a third run (`--sweep "" --dead-peers-outage
5,60,120`). For a
stopped Synapse the route is back when it listens again; delivery is timed
from there, and the receiving side is polled only once its client API
answers, which is most of the 1-3 s.

1,000 unreachable peers: the probes run at the rate bound, 300 connection
attempts per second (each peer every 1,000 / 300 = 3.3 s), costing 5-6 %
of one core in the sending Synapse; every returning peer was found at most
3.2 s after it started listening, and a real peer behind the 900 dead ones
got its queued messages as fast as without them.
"""


def write_readme(text: str) -> None:
    report.write_section(HEADING, f"{SECTION_TEXT}{text}{FINDINGS}")


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--cut", type=float, default=60.0, help="seconds the link is down")
    parser.add_argument("--cut-runs", type=int, default=1)
    parser.add_argument("--outage", type=lambda t: [k for k in t.split(",") if k], default=[],
                        help="link, server or link,server: the outage sweep")  # fmt: skip
    parser.add_argument("--sweep", type=_floats, default=[5.0, 10.0, 30.0, 60.0, 120.0, 600.0])
    parser.add_argument("--dead-peers", type=int, default=0)
    parser.add_argument("--returning", type=int, default=100)
    parser.add_argument("--returning-window", type=float, default=60.0)
    parser.add_argument("--dead-peers-outage", type=_floats, default=[30.0])
    parser.add_argument("--wait", type=float, default=180.0, help="give up on delivery after")
    parser.add_argument("--rows-out", help="append each result as a JSON line to this file")
    parser.add_argument("--from-rows", help="only render the table from a --rows-out file")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args(argv)
    if args.from_rows:
        with open(args.from_rows) as rows_file:
            rows = [json.loads(line) for line in rows_file if line.strip()]
    else:
        if os.geteuid() != 0:
            print("e2e_matrix: needs root (the lab creates network namespaces)", file=sys.stderr)
            return 2
        bad = [k for k in args.outage if k not in ("link", "server")]
        if bad:
            print(f"e2e_matrix: --outage: {bad[0]!r} is not link or server", file=sys.stderr)
            return 2
        if args.dead_peers and args.dead_peers <= args.returning:
            print("e2e_matrix: --dead-peers must be more than --returning", file=sys.stderr)
            return 2
        rows = []
        for _ in range(args.cold_runs):
            rows.append({"kind": "cold", **cold_run()})
            _record(args.rows_out, rows[-1])
        if not args.outage and not args.dead_peers:
            for _ in range(args.cut_runs):
                rows.append({"kind": "cut", "cut": args.cut, **cut_run(args.cut, args.wait)})
                _record(args.rows_out, rows[-1])
        else:
            rows += sweep(args)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(table(rows), end="")
    if args.write_readme:
        write_readme(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
