"""The underlay cut for 60 s while messages are sent both ways: all arrive, once each.

The slixmpp users stay connected to their own servers (c2s is on each
namespace's loopback); only the veth link between the two hosts goes down,
so the s2s streams over Yggdrasil stall. mod_v6alt notices (no answer to
its ping), closes them, holds what is sent, and resends everything once a
probe reaches the peer again; everything sent during the cut must arrive
after the link returns, once. The seconds from link return to the last
delivery are printed (``pytest -s``); ``benchmarks/e2e_xmpp.py`` measures
them against the target.
"""

from __future__ import annotations

import re
import time
from collections import Counter

from v6alt.lab.xmpp.users import XmppUser

from .conftest import MeshFactory

CUT_SECONDS = 60.0
MESSAGES_PER_SIDE = 6
DELIVERY_TIMEOUT = 300.0  # a failure bound, not a speed target


def _bodies(user: XmppUser, prefix: str) -> Counter[str]:
    return Counter(e["body"] for e in user.messages() if e["body"].startswith(prefix))


def test_link_cut_loses_nothing_and_duplicates_nothing(mesh: MeshFactory) -> None:
    lab = mesh(nodes=2)
    a, b = lab.sites
    alice, bob = lab.user(a, "alice"), lab.user(b, "bob")
    # Both s2s connections are up before the cut, as on a mesh that has been running.
    alice.send(bob.jid, "before the cut (a)")
    bob.wait_message("before the cut (a)", timeout=60)
    bob.send(alice.jid, "before the cut (b)")
    alice.wait_message("before the cut (b)", timeout=60)

    lab.lab.set_link("a", "b", up=False)
    cut_at = time.monotonic()
    sent_a, sent_b = [], []
    for i in range(MESSAGES_PER_SIDE):
        time.sleep(max(0.0, cut_at + i * CUT_SECONDS / MESSAGES_PER_SIDE - time.monotonic()))
        sent_a.append(f"cut a->b #{i}")
        alice.send(bob.jid, sent_a[-1])
        sent_b.append(f"cut b->a #{i}")
        bob.send(alice.jid, sent_b[-1])
    time.sleep(max(0.0, cut_at + CUT_SECONDS - time.monotonic()))
    # Nothing can have crossed a cut link.
    assert _bodies(bob, "cut ") == Counter() and _bodies(alice, "cut ") == Counter()
    lab.lab.set_link("a", "b", up=True)
    restored_at = time.monotonic()

    last = [bob.wait_message(body, timeout=DELIVERY_TIMEOUT) for body in sent_a]
    last += [alice.wait_message(body, timeout=DELIVERY_TIMEOUT) for body in sent_b]
    delivered_after = max(e["at"] for e in last) - restored_at
    first_after = min(e["at"] for e in last) - restored_at
    print(
        f"\nlink cut {CUT_SECONDS:g} s: first queued message {first_after:.1f} s, "
        f"last {delivered_after:.1f} s after the link returned"
    )
    # A late duplicate would come after the originals: give it time to show up.
    time.sleep(5)
    assert _bodies(bob, "cut ") == Counter(sent_a)
    assert _bodies(alice, "cut ") == Counter(sent_b)
    assert not [e for u in (alice, bob) for e in u.drain() if e["event"] == "error"]
    # Delivered by the recovery, not by a late TCP retransmission.
    for here, there in ((a, b), (b, a)):
        log = here.files.prosody_log.read_text(errors="replace")
        assert f"s2s to {there.domain}: no answer to a ping" in log
        assert re.search(f"s2s to {re.escape(there.domain)}: .* answers again after", log)
    assert lab.leaks() == []
