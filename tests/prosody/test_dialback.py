"""Dialback from a peer that loads mod_dialback never tears down a working stream.

A peer with mod_dialback (the reference module's default) that gets a
``db:result`` claiming our name, over any stream, asks us over its working
stream with ``db:verify``. On a v6alt host without mod_dialback
(``modules_disabled``), mod_v6alt answers "invalid" (no key is its own) or
refuses that element alone, and every stream and every message stays up.
With mod_dialback (the documented configuration) it answers itself, and
mod_v6alt binds it to the address: test_dialback_address.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from v6alt.codec import encode

from .conftest import SiteFactory, messages_both_ways
from .servers import INSTALLED, Mesh, Node, ProsodyRelease

V6ALT_ADDRESS = "200:7670::21"
DIALBACK_PEER_ADDRESS = "200:7670::22"
FORGER_ADDRESS = "200:7670::23"
# mod_dialback on the peer's host, as the reference module's users have it.
WITH_DIALBACK = '\tmodules_enabled = { "dialback" }'
# The v6alt host without mod_dialback: mod_v6alt's own answers.
WITHOUT_DIALBACK = '\tmodules_disabled = { "dialback" }'


def forge(forger: Node, server: str, to_domain: str, claimed: str) -> str:
    """The forger, as its own (valid) name, claims ``claimed`` by dialback at ``server``."""
    script = Path(__file__).with_name("dialback_forger.py")
    own = encode(FORGER_ADDRESS)
    return forger.run([sys.executable, str(script), server, own, to_domain, claimed]).stdout


def dialled(log: str, domain: str) -> int:
    return log.count(f"Dialling {domain} at ")


@pytest.fixture(params=["13", "0.12"])
def v6alt_release(request: pytest.FixtureRequest) -> ProsodyRelease:
    """The v6alt server's Prosody: the installed 13, or 0.12 unpacked beside it."""
    if request.param == "13":
        return INSTALLED
    release: ProsodyRelease = request.getfixturevalue("prosody012")
    return release


@pytest.mark.parametrize("first", ["peer dials", "v6alt dials"])
def test_db_verify_from_a_dialback_peer_keeps_both_streams(
    lab: Mesh, site: SiteFactory, v6alt_release: ProsodyRelease, first: str
) -> None:
    a = site("a", V6ALT_ADDRESS, release=v6alt_release, host_settings=WITHOUT_DIALBACK)
    r = site("r", DIALBACK_PEER_ADDRESS, host_settings=WITH_DIALBACK)
    alice, rob = a.user("alice"), r.user("rob")
    if first == "peer dials":
        # r's own outgoing stream carries its db:verify and a's answer.
        messages_both_ways(rob, alice, "hello from the dialback peer", "hello back")
    else:
        # With mod_s2s_bidi, r asks over a's outgoing stream; r's mod_dialback
        # ignores an answer arriving on an incoming stream, so the forger
        # hears nothing back.
        messages_both_ways(alice, rob, "hello to the dialback peer", "hello back")
    a_dials = dialled(a.server.log_text(), r.domain)
    r_dials = dialled(r.server.log_text(), a.domain)

    forger = lab.add_node("f", FORGER_ADDRESS)
    alice.send(rob.jid, "in flight while a forger claims a")
    answer = forge(forger, DIALBACK_PEER_ADDRESS, r.domain, a.domain)
    rob.send(alice.jid, "in flight the other way")

    # The claim fails. r (mod_v6alt with mod_dialback) binds dialback to the
    # address: a.domain is not the forger's address, so r refuses the claim
    # itself, naming both addresses, and never asks a (which, before the
    # binding, answered r's db:verify "invalid" over the working stream).
    assert "type='error'" in answer or 'type="error"' in answer, answer
    assert "policy-violation" in answer
    assert "type='valid'" not in answer and 'type="valid"' not in answer
    assert f"is at [{V6ALT_ADDRESS}]" in r.server.log_text()
    assert "answering the dialback key check" not in a.server.log_text()
    # Nothing in flight was lost and both directions still work ...
    rob.wait_message("in flight while a forger claims a")
    alice.wait_message("in flight the other way")
    messages_both_ways(alice, rob, "after the forgery", "still here")
    # ... on the same streams: nobody closed one and dialled again.
    assert "unsupported-stanza-type" not in a.server.log_text()
    assert "unsupported-stanza-type" not in r.server.log_text()
    assert dialled(a.server.log_text(), r.domain) == a_dials
    assert dialled(r.server.log_text(), a.domain) == r_dials


def test_db_result_to_v6alt_server_is_refused_alone(
    lab: Mesh, site: SiteFactory, v6alt_release: ProsodyRelease
) -> None:
    a = site("a", V6ALT_ADDRESS, release=v6alt_release, host_settings=WITHOUT_DIALBACK)
    r = site("r", DIALBACK_PEER_ADDRESS, host_settings=WITH_DIALBACK)
    alice, rob = a.user("alice"), r.user("rob")
    messages_both_ways(alice, rob, "before", "before, back")

    forger = lab.add_node("f", FORGER_ADDRESS)
    answer = forge(forger, V6ALT_ADDRESS, a.domain, r.domain)

    # The request alone is refused; the forger's own stream is not even closed.
    assert "type='error'" in answer or 'type="error"' in answer, answer
    assert "policy-violation" in answer
    assert "stream open: True" in answer
    assert f"refusing dialback from {r.domain}" in a.server.log_text()
    # A key check (db:verify) is answered "invalid": no key is a's own.
    verify = f"<db:verify from='{encode(FORGER_ADDRESS)}' to='{a.domain}' id='x'>key</db:verify>"
    config = {"server": V6ALT_ADDRESS, "own": encode(FORGER_ADDRESS), "to": a.domain}
    script = Path(__file__).with_name("dialback_peer.py")
    checked = json.loads(
        forger.run([sys.executable, str(script), json.dumps({**config, "raw": [verify]})]).stdout
    )
    assert "type='invalid'" in checked["answers"][0][0], checked
    assert checked["open"] == [True]
    assert (
        f"answering the dialback key check from {encode(FORGER_ADDRESS)} for {a.domain}: invalid"
        in (a.server.log_text())
    )
    messages_both_ways(rob, alice, "after", "after, back")
    assert "unsupported-stanza-type" not in a.server.log_text()


def test_with_mod_dialback_on_the_v6alt_server_it_answers(lab: Mesh, site: SiteFactory) -> None:
    # docs/prosody.md: with mod_dialback loaded on the host, it answers the
    # key check itself (it runs first); mod_v6alt's fallback stays out.
    a = site("a", V6ALT_ADDRESS, host_settings=WITH_DIALBACK)
    r = site("r", DIALBACK_PEER_ADDRESS, host_settings=WITH_DIALBACK)
    alice, rob = a.user("alice"), r.user("rob")
    messages_both_ways(rob, alice, "hello from the dialback peer", "hello back")

    forger = lab.add_node("f", FORGER_ADDRESS)
    answer = forge(forger, DIALBACK_PEER_ADDRESS, r.domain, a.domain)
    # r binds dialback to the address: the forger's claim never reaches a.
    assert "type='error'" in answer and "policy-violation" in answer, answer

    # A key check sent straight to a: its mod_dialback answers "invalid".
    own = encode(FORGER_ADDRESS)
    verify = f"<db:verify from='{own}' to='{a.domain}' id='x'>made-up-key</db:verify>"
    config = {"server": V6ALT_ADDRESS, "own": own, "to": a.domain, "raw": [verify]}
    script = Path(__file__).with_name("dialback_peer.py")
    checked = json.loads(forger.run([sys.executable, str(script), json.dumps(config)]).stdout)
    assert "type='invalid'" in checked["answers"][0][0], checked
    log = a.server.log_text()
    assert "Asked to verify a dialback key that was incorrect" in log
    assert "answering the dialback key check" not in log
    messages_both_ways(alice, rob, "after the forgery", "still here")
    assert "unsupported-stanza-type" not in log
