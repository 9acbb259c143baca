"""Two real Synapse homeservers federate with v6.alt server names.

A and B live in their own network namespaces on one 200::/7 link; their
server names are the canonical v6.alt names of their addresses, they have
self-signed certificates and no DNS at all. Nothing is mocked: if the
module does not resolve, trust and connect, these tests fail.
"""

from __future__ import annotations

import re

import pytest

pytest.importorskip("synapse.app.homeserver", reason="matrix-synapse is not installed")
from v6alt.codec import decode

from .homeserver import Homeserver, quote
from .matrix import has_message, send, shared_room

pytestmark = pytest.mark.integration


def test_server_names_are_v6alt_names_of_the_addresses(pair: tuple[Homeserver, Homeserver]) -> None:
    a, b = pair
    assert a.server_name.endswith(".v6.alt") and b.server_name.endswith(".v6.alt")
    assert decode(a.server_name) == a.address and decode(b.server_name) == b.address
    assert a.address != b.address


def test_profile_query_across(pair: tuple[Homeserver, Homeserver], users: dict[str, str]) -> None:
    a, b = pair
    status, body = a.request(
        "GET", f"/_matrix/client/v3/profile/{quote(b.user_id('bob'))}", token=users["alice"]
    )
    assert status == 200, body
    assert body.get("displayname") == "bob"
    status, body = b.request(
        "GET", f"/_matrix/client/v3/profile/{quote(a.user_id('alice'))}", token=users["bob"]
    )
    assert status == 200, body
    assert body.get("displayname") == "alice"


def test_room_invite_join_and_messages_both_ways(
    pair: tuple[Homeserver, Homeserver], users: dict[str, str]
) -> None:
    a, b = pair
    alice, bob = users["alice"], users["bob"]
    room_id = shared_room(a, alice, b, bob, "bob")
    send(a, alice, room_id, "hello from A")
    b.wait_for("A's message on B", lambda: has_message(b, bob, room_id, "hello from A"))
    send(b, bob, room_id, "hello from B")
    a.wait_for("B's message on A", lambda: has_message(a, alice, room_id, "hello from B"))

    status, body = a.request(
        "GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/joined_members", token=alice
    )
    assert status == 200, body
    assert set(body["joined"]) == {a.user_id("alice"), b.user_id("bob")}


def test_server_keys_fetched_directly_from_the_peer(pair: tuple[Homeserver, Homeserver]) -> None:
    a, b = pair
    status, own = b.request("GET", "/_matrix/key/v2/server")
    assert status == 200, own
    # A's key query endpoint (trusted_key_servers: []) must fetch them from B itself.
    status, body = a.request("GET", f"/_matrix/key/v2/query/{quote(b.server_name)}")
    assert status == 200, body
    [keys] = body["server_keys"]
    assert keys["server_name"] == b.server_name
    assert keys["verify_keys"] == own["verify_keys"]
    assert b.server_name in keys["signatures"]


def test_no_dns_srv_or_well_known_for_v6alt_names(
    pair: tuple[Homeserver, Homeserver], users: dict[str, str]
) -> None:
    """Each namespace's only DNS server is a recorder: it sees DNS names, never v6.alt."""
    a, b = pair
    test_profile_query_across(pair, users)
    # A DNS name does go to DNS (SRV, then A/AAAA): proof that the recorder records.
    status, _ = a.request(
        "GET", "/_matrix/client/v3/profile/@x:dns-canary.test", token=users["alice"]
    )
    assert status >= 400
    a.wait_for("the canary in the DNS log", lambda: "dns-canary.test" in a.dns_log.read_text())
    for hs, peer in ((a, b), (b, a)):
        queried = hs.dns_log.read_text().split()
        assert not [n for n in queried if n.lower().endswith(".v6.alt")], queried
        log = hs.log_text()
        name = re.escape(peer.server_name)
        assert f"v6alt: no .well-known/SRV lookup for {peer.server_name}" in log
        assert not re.search(rf"Fetching https://{name}/\.well-known", log)
        assert re.search(
            rf"v6alt: TLS peer {re.escape(str(peer.address))} accepted for {name}", log
        )
