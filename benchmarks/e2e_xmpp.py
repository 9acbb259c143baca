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
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import Any

from report import machine_line, spread, write_section

from v6alt.codec import encode
from v6alt.lab import Lab
from v6alt.lab.xmpp.outage import Listeners, RouteWatch, SynCapture
from v6alt.lab.xmpp.restart import start_prosody, stop_prosody
from v6alt.lab.xmpp.services import XmppSite, start_xmpp
from v6alt.lab.xmpp.users import XmppUser

HEADING = "## End-to-end XMPP"
TARGET_SECONDS = 5.0
MESSAGES_PER_SIDE = 6
SEND_BATCH = 50  # messages to new dead peers per second
RESTART_LEAD = 10.0  # seconds before the end of a server outage that b's Prosody starts again
SYSCTL_DIR = Path("/proc/sys/net/ipv4")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_runs = iter(range(1000))


def _prosody_version() -> str:
    argv = ["setpriv", "--reuid=prosody", "--regid=prosody", "--init-groups", "prosodyctl", "about"]
    out = subprocess.run(argv, capture_output=True, text=True).stdout
    return next((line.strip() for line in out.splitlines() if line.startswith("Prosody ")), "?")


@dataclass
class XmppLab:
    lab: Lab
    sites: list[XmppSite]
    alice: XmppUser
    bob: XmppUser
    closed: list[XmppUser] = field(default_factory=list)

    def login(self, index: int) -> XmppUser:
        name, site = ("alice", "bob")[index], self.sites[index]
        return XmppUser(site.host, f"{name}@{site.domain}", "pw-" + name)

    def received(self) -> Counter[str]:
        users = [self.alice, self.bob, *self.closed]
        return Counter(e["body"] for u in users for e in u.messages())

    def first_arrivals(self) -> dict[str, float]:
        arrived: dict[str, float] = {}
        for user in (self.alice, self.bob, *self.closed):
            for event in user.messages():
                arrived.setdefault(event["body"], float(event["at"]))
        return arrived


@contextmanager
def xmpp_lab(sysctls: dict[str, str]) -> Iterator[XmppLab]:
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
        ctx = XmppLab(lab, sites, users[0], users[1])
        yield ctx
    finally:
        for user in [*users, *(ctx.closed if "ctx" in locals() else [])]:
            user.close()
        lab.down()


def _deliver(sender: XmppUser, receiver: XmppUser, body: str, timeout: float = 120) -> float:
    started = time.monotonic()
    sender.send(receiver.jid, body)
    return float(receiver.wait_message(body, timeout=timeout)["at"]) - started


def cold_run(sysctls: dict[str, str]) -> dict[str, float]:
    with xmpp_lab(sysctls) as x:
        first = _deliver(x.alice, x.bob, "cold a->b")
        reply = _deliver(x.bob, x.alice, "cold b->a")
        warm = _deliver(x.alice, x.bob, "warm a->b")
    return {"first": first, "reply": reply, "warm": warm}


def _sleep_until(at: float) -> None:
    time.sleep(max(0.0, at - time.monotonic()))


def _port_rule(x: XmppLab, op: str) -> None:
    """Refuse (TCP reset) or accept again new connections to b's s2s port."""
    x.sites[1].host.exec(["ip6tables", op, "INPUT", "-p", "tcp", "--dport", "5269",
                          "--syn", "-j", "REJECT", "--reject-with", "tcp-reset"])  # fmt: skip


def outage_row(x: XmppLab, kind: str, length: float, wait: float, tag: str) -> dict[str, Any]:
    """One outage of ``kind`` for ``length`` s; times from route back to delivery."""
    b_address = str(x.sites[1].host.ygg_address)
    _deliver(x.alice, x.bob, f"{tag} warm a->b {length:g}")
    _deliver(x.bob, x.alice, f"{tag} warm b->a {length:g}")
    time.sleep(1)  # the pings after the warm-ups are answered
    if kind == "link":
        x.lab.set_link("a", "b", up=False)
    else:
        _port_rule(x, "-I")
        stop_prosody(x.lab, "b")
        x.closed.append(x.bob)
    start = time.monotonic()
    restart_at = start + max(1.0, length - RESTART_LEAD)
    sent: list[str] = []
    senders = [(x.alice, "a->b")] + ([(x.bob, "b->a")] if kind == "link" else [])
    for i in range(MESSAGES_PER_SIDE):
        _sleep_until(start + i * length / MESSAGES_PER_SIDE)
        for sender, direction in senders:
            to = x.bob.jid if sender is x.alice else x.alice.jid
            sent.append(f"{tag} {kind} {length:g} {direction} {i}")
            sender.send(to, sent[-1])
        if kind == "server" and time.monotonic() >= restart_at and x.bob in x.closed:
            x.bob = _restart_b(x)
    if kind == "server" and x.bob in x.closed:
        _sleep_until(restart_at)
        x.bob = _restart_b(x)
    _sleep_until(start + length - 1.0)
    watch = RouteWatch(x.sites[0].host, b_address)
    _sleep_until(start + length)
    restored = time.monotonic()
    if kind == "link":
        x.lab.set_link("a", "b", up=True)
    else:
        _port_rule(x, "-D")
    back = watch.wait(wait)
    deadline = (back or restored) + wait
    while not all(body in x.first_arrivals() for body in sent) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(3)  # room for a late duplicate
    arrived, counts = x.first_arrivals(), x.received()
    times = [arrived[body] - (back or restored) for body in sent if body in arrived]
    expected = Counter(sent)
    got = Counter({body: counts[body] for body in sent})
    return {
        "kind": kind,
        "length": length,
        "outage": (back or restored) - start,
        "back_after_restore": None if back is None else back - restored,
        "first": min(times) if times else None,
        "last": max(times) if len(times) == len(sent) else None,
        "messages": len(sent),
        "lost": sum((expected - got).values()),
        "duplicated": sum((got - expected).values()),
        "wait": wait,
    }


def _restart_b(x: XmppLab) -> XmppUser:
    start_prosody(x.lab, "b")
    return x.login(1)


def sweep(kind: str, lengths: list[float], sysctls: dict[str, str], wait: float) -> list[Any]:
    rows = []
    with xmpp_lab(sysctls) as x:
        for length in lengths:
            rows.append(outage_row(x, kind, length, wait, "sweep"))
            print(f"{kind} outage: {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _dead_addresses(count: int, avoid: set[IPv6Address], rng: random.Random) -> list[str]:
    addresses: list[str] = []
    while len(addresses) < count:
        address = IPv6Address(bytes([2]) + rng.randbytes(15))
        if address not in avoid and IPv6Address(address) not in IPv6Network("300::/8"):
            addresses.append(str(address))
    return addresses


def dead_peers_run(
    dead: int, returning: int, spread_s: float, cut: float, sysctls: dict[str, str], wait: float
) -> dict[str, Any]:
    rng = random.Random(15)
    with xmpp_lab(sysctls) as x:
        a_host, b_host = x.sites[0].host, x.sites[1].host
        subnet = IPv6Network(str(b_host.admin().get_self()["subnet"]))
        back_addresses = [str(subnet[i + 1]) for i in range(returning)]
        avoid = {a_host.ygg_address, b_host.ygg_address}
        never = _dead_addresses(dead - returning, avoid, rng)
        prosody_pid = next(s.pid for s in x.lab.up_state().services
                           if s.kind == "prosody" and s.host == "a")  # fmt: skip
        assert prosody_pid is not None
        capture = SynCapture(a_host, a_host.tun_ifname)
        try:
            log_start = len(x.sites[0].prosody_log())
            sent_at = time.monotonic()
            for i, address in enumerate([*never, *back_addresses]):
                x.alice.send(f"peer@{encode(address)}", "to a peer that does not answer")
                if i % SEND_BATCH == SEND_BATCH - 1:
                    time.sleep(1)  # the sidecar looks up each new domain once
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                stalled = x.sites[0].prosody_log()[log_start:].count("closing the stream, holding")
                if stalled >= dead:
                    break
                time.sleep(1)
            stalled_after = time.monotonic() - sent_at
            time.sleep(5)  # the first connection attempts' sockets are gone
            schedule = {address: rng.uniform(0, spread_s) for address in back_addresses}
            cpu = (_cpu_seconds(prosody_pid), _cpu_seconds(a_host.pid), time.monotonic(),
                   time.time())  # fmt: skip
            # b's own Prosody listens on every address: stopped while the
            # listeners on its subnet come back, started again after.
            stop_prosody(x.lab, "b")
            x.closed.append(x.bob)
            listeners = Listeners(b_host, schedule)
            time.sleep(spread_s + 15)
            listeners.close()
            window = time.monotonic() - cpu[2]
            prosody_cpu = (_cpu_seconds(prosody_pid) - cpu[0]) / window
            ygg_cpu = (_cpu_seconds(a_host.pid) - cpu[1]) / window
            attempts = [at for at, _, _ in capture.attempts() if cpu[3] <= at <= cpu[3] + window]
            per_second = Counter(int(at) for at in attempts)
            times = listeners.times()
            delays = [t["accept"] - t["listen"] for t in times.values() if "accept" in t]
            x.bob = _restart_b(x)
            cut_row = outage_row(x, "link", cut, wait, "dead")
        finally:
            capture.close()
    return {
        "dead": dead,
        "returning": returning,
        "stalled_after_s": stalled_after,
        "listened": sum(1 for t in times.values() if "listen" in t),
        "probed": len(delays),
        "delays": sorted(delays),
        "attempts_per_s": len(attempts) / window,
        "attempts_max_per_s": max(per_second.values(), default=0),
        "prosody_cpu": prosody_cpu,
        "yggdrasil_cpu": ygg_cpu,
        "window": window,
        "cut": cut_row,
    }


def _seconds(value: float | None, wait: float) -> str:
    return f"not all within {wait:g}" if value is None else f"{value:.1f}"


def outage_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| outage | length, s | measured outage, s | route back after restore, s | "
        "first delivered after route back, s | last delivered, s | messages | lost | "
        f"doubled | target last <= {TARGET_SECONDS:g} s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        ok = r["last"] is not None and r["last"] <= TARGET_SECONDS and not r["lost"]
        ok = ok and not r["duplicated"]
        back = "-" if r["back_after_restore"] is None else f"{r['back_after_restore']:.1f}"
        first = "-" if r["first"] is None else f"{r['first']:.1f}"
        lines.append(
            f"| {r['kind']} | {r['length']:g} | {r['outage']:.1f} | {back} | {first} | "
            f"{_seconds(r['last'], r['wait'])} | {r['messages']} | {r['lost']} | "
            f"{r['duplicated']} | {'ok' if ok else 'missed'} |"
        )
    return lines


def dead_table(d: dict[str, Any]) -> list[str]:
    delays = d["delays"]
    if delays:
        p95 = delays[min(len(delays) - 1, int(0.95 * len(delays)))]
        shown = f"{spread(delays)}, p95 {p95:.3f}"
    else:
        shown = "-"
    return [
        f"| {d['dead']} peers, {d['returning']} return | value |",
        "|---|---:|",
        f"| all stalled after sending, s | {d['stalled_after_s']:.1f} |",
        f"| returning peers listening / probed | {d['listened']} / {d['probed']} |",
        f"| listen to first probe, s: median (min-max) | {shown} |",
        f"| probe attempts per second (SYNs on a's TUN): mean, max in one second | "
        f"{d['attempts_per_s']:.0f}, {d['attempts_max_per_s']} |",
        f"| CPU of a's Prosody, of one core | {100 * d['prosody_cpu']:.1f} % |",
        f"| CPU of a's Yggdrasil, of one core | {100 * d['yggdrasil_cpu']:.1f} % |",
        f"| measured over, s | {d['window']:.0f} |",
    ]


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
openssl, tshark, `v6alt[sidecar]` and slixmpp; about 50 minutes). Two lab
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
