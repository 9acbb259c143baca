"""With its sidecar down a server refuses v6.alt federation, then recovers by itself."""

from __future__ import annotations

from .conftest import SiteFactory
from .servers import LOOKUP_URL, LabCa

A_ADDRESS = "200:7670::a"
B_ADDRESS = "200:7670::b"
C_ADDRESS = "200:7670::d"


def test_sidecar_killed_and_restarted(site: SiteFactory) -> None:
    a, b = site("a", A_ADDRESS), site("b", B_ADDRESS)
    alice, bob = a.user("alice"), b.user("bob")

    a.sidecar.kill()

    # Outgoing from a: nothing to dial without the lookup service.
    alice.send(bob.jid, "a while its sidecar is down")
    alice.wait_error(bob.jid)
    # Incoming to a: b can dial, but a cannot check b's address.
    bob.send(alice.jid, "b while a's sidecar is down")
    bob.wait_error(alice.jid)
    log = a.server.log_text()
    assert f"v6alt lookup service at {LOOKUP_URL} unavailable" in log
    assert f"Refusing v6.alt peer {b.domain} at [{B_ADDRESS}]" in log

    a.sidecar.start()

    bodies = [f"after recovery {n}" for n in range(5)]
    for body in bodies:
        alice.send(bob.jid, body)
    for body in bodies:
        bob.wait_message(body)
    bob.send(alice.jid, "b after recovery")
    alice.wait_message("b after recovery")
    # Failed closed: what was sent during the outage was bounced, not delivered late.
    assert not bob.received("a while its sidecar is down")
    assert not alice.received("b while a's sidecar is down")


def test_unanswering_sidecar_does_not_block_the_server(site: SiteFactory) -> None:
    a, b = site("a", A_ADDRESS), site("b", B_ADDRESS)
    alice, alina, bob = a.user("alice"), a.user("alina"), b.user("bob")

    a.sidecar.freeze()  # accepts connections, never answers
    alice.send(bob.jid, "to b while the sidecar hangs")
    alice.send(alina.jid, "local while the sidecar hangs")

    # The server keeps serving while the lookup waits: the local message is
    # through before the lookup has given up and bounced the remote one.
    alina.wait_message("local while the sidecar hangs")
    assert [event for event in alice.drain() if event["event"] == "error"] == []
    alice.wait_error(bob.jid)
    assert "unavailable (no answer within 2s)" in a.server.log_text()

    a.sidecar.freeze(False)
    alice.send(bob.jid, "after the sidecar answers again")
    bob.wait_message("after the sidecar answers again")


def test_other_domains_federate_while_the_sidecar_is_down(
    site: SiteFactory, private_ca: LabCa
) -> None:
    a = site("a", A_ADDRESS, trusted=private_ca)
    b = site("b", B_ADDRESS)
    # A DNS-named server whose certificate a trusts through an ordinary CA.
    c = site("c", C_ADDRESS, domain="c.v6p.test", issuer=private_ca)
    alice, bob, carol = a.user("alice"), b.user("bob"), c.user("carol")

    a.sidecar.kill()

    carol.send(alice.jid, "from a CA-verified DNS domain")
    alice.wait_message("from a CA-verified DNS domain")
    bob.send(alice.jid, "from v6.alt while a's sidecar is down")
    bob.wait_error(alice.jid)
    log = a.server.log_text()
    assert "Trusting c.v6p.test" not in log  # Prosody's own CA check let it in
    assert f"Refusing v6.alt peer {b.domain}" in log
