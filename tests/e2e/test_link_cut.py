"""The underlay cut for 60 s while XMPP and Matrix messages go both ways: all arrive, once each.

One lab carries both protocols through the same cut, as a host running
Prosody and Synapse side by side meets it. The users stay connected to their
own servers (XMPP c2s on each namespace's loopback, the Matrix client API on
a unix socket); only the veth link between the two hosts goes down.

- XMPP: the s2s streams over Yggdrasil stall; mod_v6alt notices (no answer
  to its ping), closes them, holds what is sent, and resends everything once
  a probe reaches the peer again.
- Matrix: each homeserver fails to reach the other and backs off (stock
  Synapse: 10 min); the v6alt module's probe must deliver the queued events
  once the link returns.

Everything sent during the cut must arrive after the link returns, once. The
seconds from link return to the first and last delivery are printed
(``pytest -s``); ``benchmarks/e2e_xmpp.py`` and ``benchmarks/e2e_matrix.py``
measure them against the targets.
"""

from __future__ import annotations

import re
import time
from collections import Counter

from v6alt.lab.matrix.client import MatrixUser
from v6alt.lab.matrix.mesh import start_homeservers
from v6alt.lab.xmpp.users import XmppUser

from .conftest import MeshFactory
from .matrix_support import missing_for_matrix

CUT_SECONDS = 60.0
MESSAGES_PER_SIDE = 6
DELIVERY_TIMEOUT = 300.0  # a failure bound, not a speed target
JOIN_TIMEOUT = 120.0


def _xmpp_bodies(user: XmppUser, prefix: str) -> Counter[str]:
    return Counter(e["body"] for e in user.messages() if e["body"].startswith(prefix))


def _matrix_cut(texts: list[str]) -> Counter[str]:
    return Counter(t for t in texts if t.startswith("cut "))


def test_link_cut_loses_nothing_and_duplicates_nothing(mesh: MeshFactory) -> None:
    missing = missing_for_matrix()
    assert missing is None, f"the Matrix half cannot run: {missing}"
    lab = mesh(nodes=2)
    a, b = lab.sites
    hs_a, hs_b = start_homeservers(lab.lab, lab.hosts, lambda line: None)
    alice, bob = lab.user(a, "alice"), lab.user(b, "bob")
    m_alice: MatrixUser = hs_a.register("alice", "pw-alice")
    m_bob: MatrixUser = hs_b.register("bob", "pw-bob")

    # Every connection is up before the cut, as on a mesh that has been running.
    room = m_alice.create_room(invite=[m_bob.user_id])
    m_bob.join(room, timeout=JOIN_TIMEOUT)
    m_alice.send_text(room, "before the cut (a)")
    m_bob.wait_text(room, "before the cut (a)", timeout=JOIN_TIMEOUT)
    m_bob.send_text(room, "before the cut (b)")
    m_alice.wait_text(room, "before the cut (b)", timeout=JOIN_TIMEOUT)
    alice.send(bob.jid, "before the cut (a)")
    bob.wait_message("before the cut (a)", timeout=60)
    bob.send(alice.jid, "before the cut (b)")
    alice.wait_message("before the cut (b)", timeout=60)

    lab.lab.set_link("a", "b", up=False)
    cut_at = time.monotonic()
    sent_a: list[str] = []
    sent_b: list[str] = []
    for i in range(MESSAGES_PER_SIDE):
        time.sleep(max(0.0, cut_at + i * CUT_SECONDS / MESSAGES_PER_SIDE - time.monotonic()))
        sent_a.append(f"cut a->b #{i}")
        alice.send(bob.jid, sent_a[-1])
        m_alice.send_text(room, sent_a[-1])
        sent_b.append(f"cut b->a #{i}")
        bob.send(alice.jid, sent_b[-1])
        m_bob.send_text(room, sent_b[-1])
    time.sleep(max(0.0, cut_at + CUT_SECONDS - time.monotonic()))
    # Nothing can have crossed a cut link: each side sees only its own messages.
    assert _xmpp_bodies(bob, "cut ") == Counter() and _xmpp_bodies(alice, "cut ") == Counter()
    assert _matrix_cut(m_bob.texts(room)) == Counter(sent_b)
    assert _matrix_cut(m_alice.texts(room)) == Counter(sent_a)
    lab.lab.set_link("a", "b", up=True)
    restored_at = time.monotonic()

    # Matrix first: its times are taken when a poll sees the message, while the
    # XMPP client stamps each message as it arrives, so waiting here skews neither.
    seen = [m_bob.wait_seen(room, body, timeout=DELIVERY_TIMEOUT) for body in sent_a]
    seen += [m_alice.wait_seen(room, body, timeout=DELIVERY_TIMEOUT) for body in sent_b]
    last = [bob.wait_message(body, timeout=DELIVERY_TIMEOUT) for body in sent_a]
    last += [alice.wait_message(body, timeout=DELIVERY_TIMEOUT) for body in sent_b]
    arrived = [e["at"] for e in last]
    print(
        f"\nlink cut {CUT_SECONDS:g} s, after the link returned: XMPP first queued message "
        f"{min(arrived) - restored_at:.1f} s, last {max(arrived) - restored_at:.1f} s; "
        f"Matrix first {min(seen) - restored_at:.1f} s, last {max(seen) - restored_at:.1f} s"
    )
    # A late duplicate would come after the originals: give it time to show up.
    time.sleep(5)
    assert _xmpp_bodies(bob, "cut ") == Counter(sent_a)
    assert _xmpp_bodies(alice, "cut ") == Counter(sent_b)
    assert not [e for u in (alice, bob) for e in u.drain() if e["event"] == "error"]
    everything = Counter(sent_a + sent_b)
    assert _matrix_cut(m_alice.texts(room)) == everything
    assert _matrix_cut(m_bob.texts(room)) == everything
    # XMPP was delivered by the recovery, not by a late TCP retransmission.
    for here, there in ((a, b), (b, a)):
        log = here.files.prosody_log.read_text(errors="replace")
        assert f"s2s to {there.domain}: no answer to a ping" in log
        assert re.search(f"s2s to {re.escape(there.domain)}: .* answers again after", log)
    assert lab.leaks() == []
