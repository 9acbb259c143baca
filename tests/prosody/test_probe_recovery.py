"""Probing v6.alt peers: a stopped server, a short cut, and many peers that never return.

As in test_stall_recovery.py, two servers on one bridge; a cut pulls a node's
port out of the bridge. Probes are logged at debug level ("v6alt probe of
[ADDRESS]:PORT"), which these tests count, with the log's one-second stamps.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from ipaddress import IPv6Address

import pytest

from v6alt.codec import encode
from v6alt.lab.xmpp.users import XmppUser

from .conftest import Site, SiteFactory
from .servers import INSTALLED, Mesh, wait_until
from .test_stall_recovery import LATE_COPIES, QUICK, _bodies, _connected, _errors, _wait_log

A_ADDRESS = "200:7670::a"
B_ADDRESS = "200:7670::b"
# Addresses routed to b, which does not forward: every packet to them is dropped.
DEAD_PREFIX = "200:7671::"
# More than the 256 iqs module:send_iq tracks per host: each peer's ping must be kept.
DEAD_PEERS = 300
PROBE_RATE = 50
PROBE = re.compile(r"^(\w{3} \d\d \d\d:\d\d:\d\d) .*v6alt probe of \[([0-9a-f:]+)\]:\d+", re.M)


def _probes(site: Site, start: int = 0, end: int | None = None) -> list[tuple[str, str]]:
    """(log second, address) of every probe attempt logged in ``[start, end)``."""
    return PROBE.findall(site.server.log_text()[start:end])


@pytest.mark.parametrize("release", ["13", "0.12"])
def test_a_stopped_peer_gets_its_held_stanzas_once_it_listens_again(
    lab: Mesh, site: SiteFactory, release: str, request: pytest.FixtureRequest
) -> None:
    # b keeps messages for a user who is offline, so none depends on bob
    # logging in again before a resends.
    offline = '\tmodules_enabled = { "offline" }'
    sender = INSTALLED if release == "13" else request.getfixturevalue("prosody012")
    a = site("a", A_ADDRESS, settings=QUICK, release=sender)
    b = site("b", B_ADDRESS, settings=QUICK, host_settings=offline)
    alice, bob = _connected(a, b)
    bob.close()
    b.server.stop()

    bodies = [f"while b is down #{i}" for i in range(4)]
    for body in bodies:
        alice.send(bob.jid, body)
    # Refused connections hold the stanzas instead of bouncing them.
    _wait_log(a, f"s2s to {b.domain}: connection failed: ")
    time.sleep(3)  # several probes, all refused
    assert _errors(alice) == []
    assert "answers again" not in a.server.log_text()

    b.server.restart()
    _wait_log(a, "answers again", 60)
    bob = XmppUser(b.node, bob.jid, "secret-bob")
    b.users.append(bob)
    for body in bodies:
        bob.wait_message(body, timeout=60)
    time.sleep(LATE_COPIES)
    assert _bodies(bob, "while b is down") == Counter(bodies)
    assert _errors(alice) == []


def test_a_cut_shorter_than_the_stall_timeout_replaces_the_stuck_stream(
    lab: Mesh, site: SiteFactory
) -> None:
    # The default stall timeout (15 s) is far longer than the cut: what
    # notices the return is a probe while the ping is unanswered.
    a, b = site("a", A_ADDRESS), site("b", B_ADDRESS)
    alice, bob = _connected(a, b)

    lab.set_link(b.node, up=False)
    bodies = [f"short cut #{i}" for i in range(3)]
    for body in bodies:
        alice.send(bob.jid, body)
    wait_until(lambda: len(_probes(a)) >= 2, 30, "probes of b while the ping is unanswered")
    # The cut ends about 7 s after the messages: after the stream's TCP
    # retransmission at about 6 s, long before the next one (about 12.6 s).
    time.sleep(3)
    lab.set_link(b.node, up=True)

    for body in bodies:
        bob.wait_message(body, timeout=60)
    log = a.server.log_text()
    assert f"s2s to {b.domain}: a ping unanswered for" in log
    assert "replacing the stream" in log
    # Delivered by the new stream before the stall timeout could act.
    assert "no answer to a ping" not in log
    time.sleep(LATE_COPIES)
    assert _bodies(bob, "short cut") == Counter(bodies)
    assert _errors(alice) == []


def test_many_dead_peers_do_not_delay_a_returning_one_and_probes_keep_to_the_rate(
    lab: Mesh, site: SiteFactory
) -> None:
    settings = QUICK + f"v6alt_s2s_probe_rate = {PROBE_RATE}\n"
    a, b = site("a", A_ADDRESS, settings=settings), site("b", B_ADDRESS, settings=QUICK)
    alice, bob = _connected(a, b)
    a.node.run(["ip", "-6", "route", "add", f"{DEAD_PREFIX}/64", "via", B_ADDRESS])

    dead = [str(IPv6Address(DEAD_PREFIX) + i + 1) for i in range(DEAD_PEERS)]
    for i, address in enumerate(dead):
        alice.send(f"peer@{encode(address)}", "to a peer that never answers")
        if i % 20 == 19:
            time.sleep(0.5)  # the sidecar looks each new domain up once
    wait_until(
        lambda: a.server.log_text().count("closing the stream, holding") >= DEAD_PEERS,
        120,
        f"{DEAD_PEERS} stalled peers",
    )
    lab.set_link(b.node, up=False)
    alice.send(bob.jid, "through the crowd")
    _wait_log(a, f"s2s to {b.domain}: no answer to a ping for 3s", 60)
    time.sleep(2)
    back = len(a.server.log_text())
    lab.set_link(b.node, up=True)
    # (The closed stream's kernel may deliver its copy first: wait for the probe.)
    answered = f"s2s to {b.domain}: [{B_ADDRESS}]:5269 answers again"
    _wait_log(a, answered, 120)
    recovered = a.server.log_text().find(answered)
    assert recovered > back
    bob.wait_message("through the crowd", timeout=60)

    # Fair turns: b answered within two rounds of the others after its return.
    per_peer = Counter(address for _, address in _probes(a, back, recovered))
    assert max(per_peer[address] for address in dead) <= 2
    # The bound: never more than the rate (+ a tenth of it as burst) in one second.
    probes = _probes(a)
    assert len({address for _, address in probes}) == DEAD_PEERS + 1
    assert max(Counter(second for second, _ in probes).values()) <= PROBE_RATE * 1.1
    time.sleep(LATE_COPIES)
    assert _bodies(bob, "through the crowd") == Counter(["through the crowd"])
    assert _errors(alice) == []


@pytest.mark.parametrize("release", ["13", "0.12"])
def test_a_bad_probe_option_is_named_and_the_default_used(
    lab: Mesh, site: SiteFactory, release: str, request: pytest.FixtureRequest
) -> None:
    # One validator for every option: the same lines from 13 (whose
    # get_option_number clamps) and 0.12 (whose get_option_number does not).
    chosen = INSTALLED if release == "13" else request.getfixturevalue("prosody012")
    bad = 'v6alt_s2s_probe_rate = -5\nv6alt_s2s_probe_after = "soon"\n'
    bad_host = '\tv6alt_s2s_stall_timeout = -1\n\tv6alt_s2s_hold_max = "many"'
    a = site("a", A_ADDRESS, settings=bad, host_settings=bad_host, release=chosen)
    _wait_log(a, "v6alt_s2s_probe_rate = -5 is not a number from 1 to 100000; using 300")
    _wait_log(a, "v6alt_s2s_probe_after = soon is not a number from 0.1 to 3600; using 2")
    _wait_log(a, "v6alt_s2s_stall_timeout = -1 is not a number of at least 0; using 15")
    _wait_log(a, "v6alt_s2s_hold_max = many is not a number of at least 1; using 1000")
