"""The dead-peers run of benchmarks/e2e_xmpp.py: many unreachable v6.alt peers, a few return.

alice on a sends one message to each of N v6.alt domains: N - M unrouted
addresses in 200::/7 that never answer, M addresses in b's Yggdrasil subnet
that start listening (``Listeners``, b's own Prosody stopped meanwhile) at
random times once every peer is stalled. Measured: the delay from each
listener's start to the first probe reaching it, a's connection attempts
(``SynCapture`` on a's TUN), the CPU of a's Prosody and Yggdrasil; then one
link cut a-b with the dead peers still stalled.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import Any

from report import spread
from xmpp_outage import _restart_b, outage_row, xmpp_lab

from v6alt.codec import encode
from v6alt.lab.xmpp.outage import Listeners, SynCapture
from v6alt.lab.xmpp.restart import stop_prosody

SEND_BATCH = 50  # messages to new dead peers per second
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


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
