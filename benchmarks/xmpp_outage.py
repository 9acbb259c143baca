"""The outage rows of benchmarks/e2e_xmpp.py: a two-host XMPP lab, one outage, its table.

``outage_row`` cuts the link a-b (``link``) or stops b's Prosody (``server``)
for a given time while messages are sent, restores it, takes "route back"
from a TCP connect from a to b's s2s port (``RouteWatch``), and measures the
time from route back to each queued message's delivery.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from v6alt.lab import Lab
from v6alt.lab.xmpp.outage import RouteWatch
from v6alt.lab.xmpp.restart import start_prosody, stop_prosody
from v6alt.lab.xmpp.services import XmppSite, start_xmpp
from v6alt.lab.xmpp.users import XmppUser

TARGET_SECONDS = 5.0
MESSAGES_PER_SIDE = 6
# Yggdrasil re-peers a link that came back on its own retry schedule, which
# backs off with the length of the cut: a few seconds after a 1-2 min cut,
# minutes after a 10 min one. Route back is waited for this long.
ROUTE_WAIT = 1200.0
RESTART_LEAD = 10.0  # seconds before the end of a server outage that b's Prosody starts again
_runs = iter(range(1000))


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
    back = watch.wait(ROUTE_WAIT)
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
