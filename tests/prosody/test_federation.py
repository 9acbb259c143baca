"""Two Prosody 13 servers on two mesh addresses federate under their v6.alt names."""

from __future__ import annotations

from .conftest import SiteFactory, messages_both_ways

A_ADDRESS = "200:7670::a"
B_ADDRESS = "200:7670::b"


def test_messages_both_ways(site: SiteFactory) -> None:
    a, b = site("a", A_ADDRESS), site("b", B_ADDRESS)
    alice, bob = a.user("alice"), b.user("bob")

    messages_both_ways(alice, bob, "hello from a", "hello from b")

    # Dialled at the decoded address without DNS, trusted by address, not by a CA.
    assert f"Dialling {b.domain} at [{B_ADDRESS}]:5269" in a.server.log_text()
    assert f"Dialling {a.domain} at [{A_ADDRESS}]:5269" in b.server.log_text()
    assert f"Trusting {b.domain} at [{B_ADDRESS}] (ip_bound)" in a.server.log_text()
    assert f"Trusting {a.domain} at [{A_ADDRESS}] (ip_bound)" in b.server.log_text()


def test_muc_on_v6alt_subdomain_joined_from_other_server(site: SiteFactory) -> None:
    a, b = site("a", A_ADDRESS), site("b", B_ADDRESS)
    alice, bob = a.user("alice"), b.user("bob")
    room = f"lounge@groups.{a.domain}"

    alice.join(room, "alice")
    alice.wait_for(lambda e: e["event"] == "joined" and e["room"] == room, 30, "local join")
    bob.join(room, "bob")
    bob.wait_for(lambda e: e["event"] == "joined" and e["room"] == room, 30, "remote join")

    bob.groupchat(room, "hello room from b")
    alice.wait_message("hello room from b")
    alice.groupchat(room, "hello room from a")
    bob.wait_message("hello room from a")

    # The subdomain resolves to the address of its label; the component is
    # trusted by that address in both directions.
    assert f"Dialling groups.{a.domain} at [{A_ADDRESS}]:5269" in b.server.log_text()
    assert f"Trusting groups.{a.domain} at [{A_ADDRESS}] (ip_bound)" in b.server.log_text()
