"""Dialback bound to the address (docs/prosody.md, "Dialback").

One v6alt server (Prosody 13, or 0.12), a stock Prosody 13 (mod_dialback, no
mod_v6alt, resolving v6.alt names through its own sidecar's DNS) and a
scripted peer (``dialback_peer.py``) at a third address, shared by the tests
of one release:

- the stock server and the v6alt server exchange messages both ways, the
  v6alt server authenticating itself by dialback;
- a claim of the scripted peer's own name is verified by dialling its
  address (it answers as the authoritative server); a made-up key fails;
- a claim of another address's name is refused before any verification,
  with a log line naming both addresses;
- malformed dialback elements get the XEP's errors, the stream stays open;
- floods of claims (1,000 on one stream, and over 100 streams) are bounded
  and every claim is answered, while the messages keep flowing.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.xmpp_requirements import missing_xmpp_parts
from v6alt.codec import encode
from v6alt.lab.xmpp.users import XmppUser

from .conftest import LEGACY_ROOT_VARIABLE, messages_both_ways
from .servers import (
    INSTALLED,
    Mesh,
    Node,
    ProsodyRelease,
    ProsodyServer,
    Sidecar,
    documented_block,
    make_certificate,
    mesh,
)

pytestmark = pytest.mark.integration

V6ALT_ADDRESS = "200:7670::31"
STOCK_ADDRESS = "200:7670::32"
PEER_ADDRESS = "200:7670::33"
PER_STREAM, MAX_PENDING, TIMEOUT = 5, 40, 6
# Small bounds, so that the floods reach them quickly.
BOUNDS = (
    f"v6alt_dialback_max_per_stream = {PER_STREAM}\n"
    f"v6alt_dialback_max_pending = {MAX_PENDING}\n"
    f"v6alt_dialback_timeout = {TIMEOUT}\n"
)


def stock_template() -> str:
    """A stock Prosody 13: the documented block without mod_v6alt, Prosody's own
    s2s_secure_auth default (false), and libunbound asking the sidecar's DNS."""
    template = documented_block("prosody-config")
    stock = template.replace('\t"v6alt";\n', "").replace('\tmodules_enabled = { "v6alt" }\n', "")
    stock = stock.replace("s2s_secure_auth = true", "s2s_secure_auth = false")
    assert '"v6alt"' not in stock and '"dialback"' in stock, stock
    return documented_block("prosody-0.12-config") + stock


@dataclass
class Pair:
    lab: Mesh
    v6alt: ProsodyServer
    stock: ProsodyServer
    peer: Node
    alice: XmppUser
    sam: XmppUser
    peer_cert: tuple[Path, Path]

    def run_peer(self, **config: Any) -> dict[str, Any]:
        config.setdefault("server", V6ALT_ADDRESS)
        config.setdefault("own", encode(PEER_ADDRESS))
        config.setdefault("to", self.v6alt.domain)
        script = Path(__file__).with_name("dialback_peer.py")
        done = self.peer.run([sys.executable, str(script), json.dumps(config)])
        answer: dict[str, Any] = json.loads(done.stdout)
        return answer


def start_node(lab: Mesh, name: str, address: str) -> tuple[Node, Sidecar]:
    node = lab.add_node(name, address)
    sidecar = Sidecar(node)
    sidecar.start()
    return node, sidecar


@pytest.fixture(scope="module", params=["13", "0.12"])
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    reason = missing_xmpp_parts()
    if reason or os.geteuid() != 0:
        pytest.skip(reason or "needs root (network namespaces)")
    with mesh() as lab:
        release = INSTALLED
        if request.param == "0.12":
            root = os.environ.get(LEGACY_ROOT_VARIABLE)
            if not root or not (Path(root) / "usr" / "bin" / "prosody").is_file():
                pytest.skip(f"set {LEGACY_ROOT_VARIABLE} to an unpacked prosody 0.12 package")
            release = ProsodyRelease.unpacked(
                Path(root), lab.root, documented_block("prosody-0.12-config")
            )
        servers: list[ProsodyServer] = []
        sidecars: list[Sidecar] = []
        users: list[XmppUser] = []
        try:
            node, sidecar = start_node(lab, "a", V6ALT_ADDRESS)
            sidecars.append(sidecar)
            v6alt = ProsodyServer(
                node,
                encode(V6ALT_ADDRESS),
                documented_block("prosody-config"),
                release=release,
                settings=BOUNDS,
            )
            servers.append(v6alt)
            v6alt.start()
            stock_node, sidecar = start_node(lab, "s", STOCK_ADDRESS)
            sidecars.append(sidecar)
            stock = ProsodyServer(stock_node, encode(STOCK_ADDRESS), stock_template())
            servers.append(stock)
            stock.start()
            alice = XmppUser(node, v6alt.register("alice", "secret-alice"), "secret-alice")
            sam = XmppUser(stock_node, stock.register("sam", "secret-sam"), "secret-sam")
            users += [alice, sam]
            peer = lab.add_node("p", PEER_ADDRESS)
            peer_cert = make_certificate(peer.run_dir, encode(PEER_ADDRESS))
            yield Pair(lab, v6alt, stock, peer, alice, sam, peer_cert)
        finally:
            for user in users:
                user.close()
            for server in servers:
                server.stop()
            for sidecar in sidecars:
                sidecar.kill()


def test_stock_prosody_and_v6alt_exchange_messages_by_dialback(pair: Pair) -> None:
    messages_both_ways(pair.alice, pair.sam, "to the stock server", "back from it")
    messages_both_ways(pair.sam, pair.alice, "from the stock server", "back to it")
    # The stock server does not accept the v6alt server's self-signed
    # certificate: the v6alt server authenticated itself by dialback, which
    # the stock server checked by dialling back (its db:verify was answered).
    log = pair.v6alt.log_text()
    assert "Initiating dialback" in log
    assert "verified dialback key... it is valid" in log


def test_claim_is_verified_at_the_address_its_name_encodes(pair: Pair) -> None:
    own = encode(PEER_ADDRESS)
    cert, key = pair.peer_cert
    authority = {
        "address": PEER_ADDRESS,
        "cert": str(cert),
        "key": str(key),
        "keys": ["the-right-key"],
        "mode": "answer",
    }
    answer = pair.run_peer(
        claims=[[own, pair.v6alt.domain, "the-right-key"]], authority=authority, wait=20
    )
    [received] = answer["answers"]
    assert len(received) == 1 and "type='valid'" in received[0], answer
    assert answer["open"] == [True]
    # The verification went to the address the name encodes: the peer there was asked.
    assert answer["verify_asked"] == ["the-right-key"]
    log = pair.v6alt.log_text()
    assert f"verifying the dialback claim of {own} at the address its name encodes" in log

    answer = pair.run_peer(
        own=f"x.{own}",
        claims=[[f"x.{own}", pair.v6alt.domain, "a-made-up-key"]],
        authority=authority,
        wait=20,
    )
    [received] = answer["answers"]
    assert len(received) == 1 and "type='invalid'" in received[0], answer
    assert answer["verify_asked"] == ["a-made-up-key"]
    messages_both_ways(pair.alice, pair.sam, "after the claims", "still here")


def test_claim_from_another_address_is_refused_naming_both(pair: Pair) -> None:
    stock = pair.stock.domain
    pair.alice.send(pair.sam.jid, "in flight while a forger claims the stock server")
    answer = pair.run_peer(claims=[[stock, pair.v6alt.domain, "made-up-key"]])
    [received] = answer["answers"]
    assert len(received) == 1 and "type='error'" in received[0], answer
    assert "policy-violation" in received[0]
    assert answer["open"] == [True]
    lines = [line for line in pair.v6alt.log_text().splitlines() if "Refusing v6.alt peer" in line]
    assert any(
        f"[{PEER_ADDRESS}]" in line and f"is at [{STOCK_ADDRESS}]" in line and stock in line
        for line in lines
    ), lines
    # Refused before verification: the stock server was never asked.
    assert "made-up-key" not in pair.stock.log_text()
    pair.sam.wait_message("in flight while a forger claims the stock server")
    messages_both_ways(pair.sam, pair.alice, "after the forgery", "still here")


def test_malformed_dialback_elements_get_the_xeps_errors(pair: Pair) -> None:
    own, domain = encode(PEER_ADDRESS), pair.v6alt.domain
    raw = [
        f"<db:result to='{domain}'>key</db:result>",
        f"<db:result from='{own}'>key</db:result>",
        f"<db:result from='{own}' to='{domain}'/>",
        f"<db:verify from='{own}' to='{domain}'>key</db:verify>",
    ]
    answer = pair.run_peer(raw=raw)
    [received] = answer["answers"]
    assert len(received) == len(raw), answer
    assert all("type='error'" in e and "bad-request" in e for e in received), received
    assert answer["open"] == [True]
    # A domain this server does not serve: Prosody's router closes that
    # stream (a stream error) before any module sees the element.
    answer = pair.run_peer(raw=[f"<db:result from='{own}' to='not-served.example'>key</db:result>"])
    [received] = answer["answers"]
    assert "<stream:error>" in received[0] and answer["open"] == [False], answer
    messages_both_ways(pair.alice, pair.sam, "after the malformed ones", "still here")


def pending_counts(log: str) -> list[tuple[int, int]]:
    found = re.findall(r"verification of \S+ pending \((\d+) on this stream, (\d+) in all\)", log)
    return [(int(stream), int(total)) for stream, total in found]


def test_a_flood_of_claims_is_bounded(pair: Pair) -> None:
    own = encode(PEER_ADDRESS)
    domain = pair.v6alt.domain
    cert, key = pair.peer_cert
    # The peer accepts the verification connections and never answers.
    silent = {
        "address": PEER_ADDRESS,
        "cert": str(cert),
        "key": str(key),
        "keys": [],
        "mode": "silent",
    }
    offset = len(pair.v6alt.log_text())
    pair.alice.send(pair.sam.jid, "in flight during the flood")

    claims = [[f"h{i}.{own}", domain, f"key-{i}"] for i in range(1000)]
    answer = pair.run_peer(claims=claims, authority=silent, wait=TIMEOUT + 20)
    [received] = answer["answers"]
    # Every claim is answered: over the bound at once, the others when
    # their verification times out.
    assert len(received) == 1000, (len(received), received[-3:])
    refused = sum("resource-constraint" in element for element in received)
    timed_out = sum("remote-server-timeout" in element for element in received)
    assert refused >= 1000 - PER_STREAM and refused + timed_out == 1000
    assert answer["open"] == [True]
    pair.sam.wait_message("in flight during the flood")

    claims = [[f"s{i}.{own}", domain, f"key-{i}"] for i in range(10)]
    answer = pair.run_peer(claims=claims, streams=100, authority=silent, wait=TIMEOUT + 30)
    assert all(len(received) == 10 for received in answer["answers"]), answer["answers"]
    assert all(answer["open"]), answer["open"]
    every = [element for received in answer["answers"] for element in received]
    assert sum("resource-constraint" in element for element in every) >= 1000 - MAX_PENDING

    counts = pending_counts(pair.v6alt.log_text()[offset:])
    assert counts, "no verification was pending"
    assert max(stream for stream, _ in counts) <= PER_STREAM
    assert max(total for _, total in counts) <= MAX_PENDING
    messages_both_ways(pair.sam, pair.alice, "after the floods", "still here")
