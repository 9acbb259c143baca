"""What mod_v6alt refuses: wrong addresses for v6.alt names; other domains keep Prosody's checks."""

from __future__ import annotations

from v6alt.codec import encode

from .conftest import SiteFactory
from .servers import Mesh

A_ADDRESS = "200:7670::a"
B_ADDRESS = "200:7670::b"
IMPOSTOR_ADDRESS = "200:7670::c"
C_ADDRESS = "200:7670::d"


def test_v6alt_domain_from_another_address_is_refused(lab: Mesh, site: SiteFactory) -> None:
    b = site("b", B_ADDRESS)
    impostor = lab.add_node("m", IMPOSTOR_ADDRESS)
    claimed = encode("200:7670::99")

    answer = impostor.open_stream(b.node.address, claimed, b.domain)

    assert "<policy-violation" in answer
    assert f"{IMPOSTOR_ADDRESS} is not the address of {claimed}" in answer
    assert "<starttls" not in answer  # refused before any feature is offered
    assert f"Refusing v6.alt peer {claimed} at [{IMPOSTOR_ADDRESS}]" in b.server.log_text()

    # The same peer under the name of its own address gets the normal features.
    own = impostor.open_stream(b.node.address, encode(IMPOSTOR_ADDRESS), b.domain)
    assert "<starttls" in own
    assert "stream:error" not in own


def test_self_signed_non_v6alt_peer_is_still_refused(site: SiteFactory) -> None:
    a = site("a", A_ADDRESS)
    c = site("c", C_ADDRESS, domain="c.v6p.test")  # a DNS name, self-signed certificate
    alice, carol = a.user("alice"), c.user("carol")

    carol.send(alice.jid, "from a self-signed DNS domain")

    error = carol.wait_error(alice.jid)
    assert "certificate is self-signed" in error["text"]
    log = a.server.log_text()
    assert "Forbidding insecure connection to/from c.v6p.test" in log
    assert "Trusting c.v6p.test" not in log
    assert not alice.received("from a self-signed DNS domain")
    # The refusing side still federates with v6.alt peers: c's own outgoing
    # check trusted a by its address.
    assert f"Trusting {a.domain} at [{A_ADDRESS}] (ip_bound)" in c.server.log_text()


def test_v6alt_name_of_a_never_dial_address_is_not_dialled(site: SiteFactory) -> None:
    a = site("a", A_ADDRESS)
    alice = a.user("alice")
    unique_local = encode("fd00::1")  # ULA: never dialled by default

    alice.send(f"someone@{unique_local}", "to a ULA name")

    error = alice.wait_error(f"someone@{unique_local}")
    assert "v6.alt policy" in error["text"]
    assert f"Not dialling {unique_local}: never-dial" in a.server.log_text()

    # Joining a room there fails the same way, as an error to the join's presence.
    room = f"lobby@groups.{unique_local}"
    alice.join(room, "alice")
    refused = alice.wait_for(lambda e: e["event"] == "presence-error", 30, "the refused join")
    assert refused["from"] == f"{room}/alice" and "v6.alt policy" in refused["text"]
