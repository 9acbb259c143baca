"""Matrix over real Yggdrasil: a room across two homeservers, and across a chain of three.

Every homeserver is a real Synapse with the v6alt module, its server name the
v6.alt name of its host's Yggdrasil address; nothing resolves a name through
DNS. A packet capture runs in every namespace throughout: no DNS query may
leave a host and no packet may go anywhere but the mesh and the underlay.
"""

from __future__ import annotations

from collections import Counter

import pytest

from .matrix_support import MatrixMeshFactory, matrix_mesh

__all__ = ["matrix_mesh"]

pytestmark = pytest.mark.integration
DELIVERY_TIMEOUT = 120.0  # a failure bound, not a speed target


def test_room_across_two_homeservers_messages_both_ways(matrix_mesh: MatrixMeshFactory) -> None:
    mesh = matrix_mesh(nodes=2)
    a, b = mesh.servers
    assert a.server_name == mesh.hosts[0].name and b.server_name == mesh.hosts[1].name
    alice, bob = mesh.user(a), mesh.user(b)
    room = alice.create_room(invite=[bob.user_id])
    bob.join(room, timeout=DELIVERY_TIMEOUT)

    alice.send_text(room, f"from {a.server_name}")
    bob.wait_text(room, f"from {a.server_name}", timeout=DELIVERY_TIMEOUT)
    bob.send_text(room, f"from {b.server_name}")
    alice.wait_text(room, f"from {b.server_name}", timeout=DELIVERY_TIMEOUT)

    assert alice.joined_members(room) == sorted([alice.user_id, bob.user_id])
    for user in (alice, bob):
        assert Counter(user.texts(room)) == Counter(
            [f"from {a.server_name}", f"from {b.server_name}"]
        )
    assert mesh.leaks() == []


def test_chain_room_with_three_servers_every_message_everywhere(
    matrix_mesh: MatrixMeshFactory,
) -> None:
    mesh = matrix_mesh(nodes=3, topology="chain")
    host_a, _host_b, host_c = mesh.hosts
    # A and C are not peered: their traffic is routed by Yggdrasil through B.
    assert host_c.ygg_address not in host_a.peers_up()
    assert host_a.ygg_address not in host_c.peers_up()
    users = [mesh.user(server) for server in mesh.servers]
    room = users[0].create_room(invite=[u.user_id for u in users[1:]])
    for user in users[1:]:
        user.join(room, timeout=DELIVERY_TIMEOUT)

    sent = []
    for user, server in zip(users, mesh.servers, strict=True):
        sent.append(f"hello from {server.server_name}")
        user.send_text(room, sent[-1])
    for user in users:
        for body in sent:
            user.wait_text(room, body, timeout=DELIVERY_TIMEOUT)

    for user in users:
        assert user.joined_members(room) == sorted(u.user_id for u in users)
        assert Counter(user.texts(room)) == Counter(sent)
    assert mesh.leaks() == []
