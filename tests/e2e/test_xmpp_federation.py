"""XMPP over real Yggdrasil: Prosody 13 + mod_v6alt + sidecar on every lab host.

Users are slixmpp clients connected to their own server on the namespace's
loopback; everything between servers goes over the mesh, addressed by v6.alt
names only.
"""

from __future__ import annotations

from v6alt import decode

from .conftest import Mesh, MeshFactory


def _message_both_ways(mesh: Mesh) -> None:
    first, last = mesh.sites[0], mesh.sites[-1]
    alice, bob = mesh.user(first, "alice"), mesh.user(last, "bob")
    alice.send(bob.jid, "hello from " + first.domain)
    received = bob.wait_message("hello from " + first.domain, timeout=60)
    assert received["from"].split("/")[0] == alice.jid
    bob.send(alice.jid, "hello from " + last.domain)
    received = alice.wait_message("hello from " + last.domain, timeout=60)
    assert received["from"].split("/")[0] == bob.jid


def test_messages_both_ways_between_two_hosts(mesh: MeshFactory) -> None:
    lab = mesh(nodes=2)
    a, b = lab.sites
    assert decode(a.domain) == a.host.ygg_address
    assert decode(b.domain) == b.host.ygg_address
    _message_both_ways(lab)


def test_muc_on_a_subdomain_joined_from_the_other_server(mesh: MeshFactory) -> None:
    lab = mesh(nodes=2)
    a, b = lab.sites
    room = f"lobby@{a.muc_domain}"
    local, remote = lab.user(a, "anna"), lab.user(b, "boris")
    local.join(room, "anna")
    local.wait_for(lambda e: e["event"] == "joined" and e["room"] == room, 30, "local join")
    remote.join(room, "boris")
    # A refused join is a presence error: fail at once, showing it.
    joined = remote.wait_for(
        lambda e: e["event"] in ("joined", "presence-error"), 60, "remote join"
    )
    assert joined == {**joined, "event": "joined", "room": room}
    local.groupchat(room, "welcome, boris")
    seen = remote.wait_message("welcome, boris", timeout=60)
    assert seen["from"] == f"{room}/anna" and seen["type"] == "groupchat"
    remote.groupchat(room, "thanks, anna")
    seen = local.wait_message("thanks, anna", timeout=60)
    assert seen["from"] == f"{room}/boris"


def test_chain_a_reaches_c_only_through_b(mesh: MeshFactory) -> None:
    lab = mesh(nodes=3, topology="chain")
    a, b, c = lab.hosts
    assert c.ygg_address not in a.peers_up(), "a and c must not be direct Yggdrasil peers"
    assert b.ygg_address in a.peers_up()
    _message_both_ways(lab)  # first site (a) <-> last site (c)
    assert lab.leaks() == []


def test_no_dns_or_foreign_traffic_leaves_any_host(mesh: MeshFactory) -> None:
    lab = mesh(nodes=2)
    a, b = lab.sites
    _message_both_ways(lab)
    room = f"leakcheck@{b.muc_domain}"
    user = lab.user(a, "carol")
    user.join(room, "carol")
    user.wait_for(lambda e: e["event"] == "joined", 60, "join")
    captured = lab.stop_captures()
    # The captures saw the federation itself: s2s on 5269 between the two Yggdrasil addresses.
    s2s = [
        p
        for p in captured["a"]
        if 5269 in (p.sport, p.dport) and {p.src, p.dst} == {a.host.ygg_address, b.host.ygg_address}
    ]
    assert s2s, "no s2s packets between the Yggdrasil addresses were captured"
    # The sidecar was asked over loopback (lookup service), never over the mesh.
    assert any(p.dport == 5380 and p.dst == p.src for p in captured["a"])
    assert lab.leaks() == []
