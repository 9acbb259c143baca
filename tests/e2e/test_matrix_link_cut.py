"""Matrix across a 60 s underlay cut: every message arrives afterwards, once each.

The users keep talking to their own homeservers (the client API is a unix
socket), only the veth link between the hosts goes down. Each homeserver
fails to reach the other, backs off (stock Synapse: 10 min), and the v6alt
module's probe must deliver the queued events once the link returns. The
seconds from link return to the last delivery are printed (``pytest -s``);
``benchmarks/e2e_matrix.py`` measures them against the 10 s target.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from .matrix_support import MatrixMeshFactory, matrix_mesh

__all__ = ["matrix_mesh"]

pytestmark = pytest.mark.integration
CUT_SECONDS = 60.0
MESSAGES_PER_SIDE = 6
DELIVERY_TIMEOUT = 300.0  # a failure bound, not a speed target


def _cut(texts: list[str]) -> Counter[str]:
    return Counter(t for t in texts if t.startswith("cut "))


def test_link_cut_loses_nothing_and_duplicates_nothing(matrix_mesh: MatrixMeshFactory) -> None:
    mesh = matrix_mesh(nodes=2)
    a, b = mesh.servers
    alice, bob = mesh.user(a), mesh.user(b)
    room = alice.create_room(invite=[bob.user_id])
    bob.join(room, timeout=120)
    alice.send_text(room, "before the cut (a)")
    bob.wait_text(room, "before the cut (a)", timeout=120)
    bob.send_text(room, "before the cut (b)")
    alice.wait_text(room, "before the cut (b)", timeout=120)

    mesh.lab.set_link("a", "b", up=False)
    cut_at = time.monotonic()
    sent_a, sent_b = [], []
    for i in range(MESSAGES_PER_SIDE):
        time.sleep(max(0.0, cut_at + i * CUT_SECONDS / MESSAGES_PER_SIDE - time.monotonic()))
        sent_a.append(f"cut a->b #{i}")
        alice.send_text(room, sent_a[-1])
        sent_b.append(f"cut b->a #{i}")
        bob.send_text(room, sent_b[-1])
    time.sleep(max(0.0, cut_at + CUT_SECONDS - time.monotonic()))
    # Nothing can have crossed a cut link.
    assert _cut(bob.texts(room)) == Counter(sent_b)
    assert _cut(alice.texts(room)) == Counter(sent_a)
    mesh.lab.set_link("a", "b", up=True)
    restored_at = time.monotonic()

    seen = [bob.wait_seen(room, body, timeout=DELIVERY_TIMEOUT) for body in sent_a]
    seen += [alice.wait_seen(room, body, timeout=DELIVERY_TIMEOUT) for body in sent_b]
    print(
        f"\nMatrix link cut {CUT_SECONDS:g} s: first queued message "
        f"{min(seen) - restored_at:.1f} s, last {max(seen) - restored_at:.1f} s "
        "after the link returned"
    )
    # A late duplicate would come after the originals: give it time to show up.
    time.sleep(5)
    everything = Counter(sent_a + sent_b)
    assert _cut(alice.texts(room)) == everything
    assert _cut(bob.texts(room)) == everything
    assert mesh.leaks() == []
