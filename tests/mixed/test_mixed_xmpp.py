"""docs/mixed.md's XMPP recipes between real Prosody 13 servers.

One flat link, two subnets: the mesh (``200::/7``: PP and CHAT) and
addresses outside it (XMPP, IM and the stock servers). Every node runs
Debian's unbound on [::1]:53 with the documented zone (``mixed-zone-xmpp``),
forwarding ``.v6.alt`` to the node's sidecar as docs/dns.md shows (STOCK0's
does not), and each server trusts the test CA (``mixed-prosody-ca``).

- PP: a v6.alt domain, mod_v6alt, its sidecar with ``mixed-trust-range``;
- XMPP ``xmpp.mixed.example``: mod_v6alt, a CA certificate, AAAA;
- CHAT ``chat.mixed.example``: mod_v6alt, self-signed, AAAA into PP's range;
- IM ``im.mixed.example``: mod_v6alt, a CA certificate, SRV to its v6.alt name;
- STOCK ``stock.mixed.example`` and STOCK0 ``stock0.mixed.example``: the
  documented config without mod_v6alt.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.prosody.servers import (
    DNS_PORT,
    LabCa,
    Mesh,
    Node,
    ProsodyRelease,
    ProsodyServer,
    Sidecar,
    documented_block,
    make_ca,
    mesh,
)
from tests.xmpp_requirements import missing_xmpp_parts
from v6alt.codec import encode
from v6alt.lab.mixed import ZoneRecords, start_zone_unbound
from v6alt.lab.xmpp.users import XmppUser

from . import docs

pytestmark = pytest.mark.integration

MESH = "202:6a1f:7c::"
OUTSIDE = "2a0e:6a1f:7c::"
PASSWORD = "secret-user"


def stock_template() -> str:
    """docs/prosody.md's prosody-config block without mod_v6alt."""
    template = documented_block("prosody-config")
    stock = template.replace('\t"v6alt";\n', "").replace('\tmodules_enabled = { "v6alt" }\n', "")
    assert '"v6alt"' not in stock, stock
    return stock


def trusts_ca(node: Node, domain: str, ca: LabCa) -> str:
    """The documented VirtualHost lines that trust the test CA (``mixed-prosody-ca``),
    with the certificate :class:`ProsodyServer` makes for ``domain``."""
    return docs.block(
        "mixed-prosody-ca",
        certificate=node.run_dir / f"{domain}.crt",
        key=node.run_dir / f"{domain}.key",
        ca_certificate=ca.certificate,
    )


@dataclass
class Server:
    node: Node
    prosody: ProsodyServer
    sidecar: Sidecar
    users: list[XmppUser] = field(default_factory=list)

    @property
    def domain(self) -> str:
        return self.prosody.domain

    def user(self) -> XmppUser:
        jid = self.prosody.register("user", PASSWORD)
        user = XmppUser(self.node, jid, PASSWORD)
        self.users.append(user)
        return user


@dataclass
class World:
    lab: Mesh
    servers: dict[str, Server]
    records: ZoneRecords
    ca: LabCa
    users: dict[str, XmppUser] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Server:
        return self.servers[name]


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    reason = missing_xmpp_parts()
    if reason:
        pytest.skip(reason)
    with mesh() as lab:
        layout = {
            "pp": (f"{MESH}1", OUTSIDE),
            "chat": (f"{MESH}2", OUTSIDE),
            "xmpp": (f"{OUTSIDE}1", MESH),
            "im": (f"{OUTSIDE}2", MESH),
            "stock": (f"{OUTSIDE}3", MESH),
            "stock0": (f"{OUTSIDE}4", MESH),
        }
        nodes = {}
        for name, (address, other) in layout.items():
            nodes[name] = lab.add_node(name, address)
            nodes[name].host.add_route(f"{other}/64")
        address = {name: node.address for name, node in nodes.items()}
        ca = make_ca(lab.root)
        records = docs.zone(
            "mixed-zone-xmpp",
            xmpp_address=address["xmpp"],
            chat_address=address["chat"],
            im_label=encode(address["im"]).removesuffix(".v6.alt"),
        )
        records.aaaa("stock.mixed.example", address["stock"])
        records.aaaa("stock0.mixed.example", address["stock0"])
        domains = {
            "pp": encode(address["pp"]),
            "chat": "chat.mixed.example",
            "xmpp": "xmpp.mixed.example",
            "im": "im.mixed.example",
            "stock": "stock.mixed.example",
            "stock0": "stock0.mixed.example",
        }
        template, stock = documented_block("prosody-config"), stock_template()
        servers: dict[str, Server] = {}
        try:
            for name, node in nodes.items():
                forward = None if name == "stock0" else DNS_PORT
                start_zone_unbound(node.host, node.run_dir / "dns", records, v6alt_forward=forward)
                sidecar = Sidecar(node, docs.block("mixed-trust-range") if name == "pp" else "")
                sidecar.start()
                domain = domains[name]
                server = ProsodyServer(
                    node,
                    domain,
                    stock if name.startswith("stock") else template,
                    issuer=None if name in ("pp", "chat") else ca,
                    host_settings=trusts_ca(node, domain, ca),
                )
                server.start()
                servers[name] = Server(node, server, sidecar)
            world = World(lab, servers, records, ca)
            world.users = {name: server.user() for name, server in servers.items()}
            yield world
        finally:
            for server in servers.values():
                for user in server.users:
                    user.close()
                server.prosody.terminate()
            for server in servers.values():
                server.prosody.stop()
                server.sidecar.kill()


def _both_ways(world: World, name: str) -> None:
    """PP's user and ``name``'s exchange a message each way."""
    pp, x = world.users["pp"], world.users[name]
    pp.send(x.jid, f"from pp to {name}")
    x.wait_message(f"from pp to {name}")
    x.send(pp.jid, f"from {name} to pp")
    pp.wait_message(f"from {name} to pp")


def test_dns_name_with_a_ca_certificate(world: World) -> None:
    _both_ways(world, "xmpp")
    assert "Trusting xmpp.mixed.example" not in world["pp"].prosody.log_text()


def test_dns_name_in_a_trust_any_range(world: World) -> None:
    _both_ways(world, "chat")
    chat = world["chat"].node.address
    assert f"Trusting chat.mixed.example at [{chat}] (any)" in world["pp"].prosody.log_text()


def test_self_signed_dns_name_outside_any_range_is_refused(world: World) -> None:
    """XMPP runs mod_v6alt without a secure range: Prosody's own check refuses CHAT's
    self-signed certificate (the sidecar was asked and lifted nothing)."""
    xmpp, chat = world.users["xmpp"], world.users["chat"]
    xmpp.send(chat.jid, "from xmpp to chat")
    error = xmpp.wait_error(chat.jid)
    assert error["text"] == SELF_SIGNED, error
    assert not chat.received("from xmpp to chat")
    log = world["xmpp"].prosody.log_text()
    assert "Trusting chat.mixed.example" not in log
    assert "Forbidding insecure connection to/from chat.mixed.example" in log


def test_prosody012_peer_trusts_a_dns_name_in_its_range(world: World) -> None:
    """A Prosody 0.12 peer (docs/prosody.md, "Prosody 0.12": its resolver is the
    sidecar, which forwards other names to the host's unbound) with the range."""
    root = os.environ.get("V6ALT_PROSODY012_ROOT")
    if not root or not (Path(root) / "usr" / "bin" / "prosody").is_file():
        pytest.skip("set V6ALT_PROSODY012_ROOT to an unpacked prosody 0.12 package")
    lab = world.lab
    release = ProsodyRelease.unpacked(Path(root), lab.root, documented_block("prosody-0.12-config"))
    node = lab.add_node("pp012", f"{MESH}3")
    node.host.add_route(f"{OUTSIDE}/64")
    start_zone_unbound(node.host, node.run_dir / "dns", world.records)
    forwarders = "sidecar:\n  forwarders: ['[::1]:53']\n"
    sidecar = Sidecar(node, docs.block("mixed-trust-range") + forwarders)
    sidecar.start()
    server = ProsodyServer(
        node, encode(node.address), documented_block("prosody-config"), release=release
    )
    users: list[XmppUser] = []
    try:
        server.start()
        users.append(XmppUser(node, server.register("user", PASSWORD), PASSWORD))
        pp012, chat = users[0], world.users["chat"]
        pp012.send(chat.jid, "from pp012 to chat")
        chat.wait_message("from pp012 to chat")
        chat.send(pp012.jid, "from chat to pp012")
        pp012.wait_message("from chat to pp012")
        chat_address = world["chat"].node.address
        assert f"Trusting chat.mixed.example at [{chat_address}] (any)" in server.log_text()
    finally:
        for user in users:
            user.close()
        server.stop()
        sidecar.kill()


def test_srv_delegation(world: World) -> None:
    _both_ways(world, "im")
    log = world["pp"].prosody.log_text()
    # Prosody's resolver took the SRV target and asked the host's unbound, which
    # forwarded the v6.alt name to the sidecar; the certificate was im's by the CA.
    assert f"Resolve {encode(world['im'].node.address)} IN AAAA" in log
    assert "Trusting im.mixed.example" not in log


def test_srv_delegation_with_prosody_resolving_through_the_sidecar(world: World) -> None:
    """No v6.alt answers from the host's resolver: Prosody 13's own resolver forwards
    every name to the sidecar (the Prosody 0.12 block of docs/prosody.md), whose
    ``sidecar.forwarders`` send the rest to the host's unbound."""
    lab = world.lab
    node = lab.add_node("pp13", f"{MESH}4")
    node.host.add_route(f"{OUTSIDE}/64")
    start_zone_unbound(node.host, node.run_dir / "dns", world.records)  # no v6.alt forward
    forwarders = "sidecar:\n  forwarders: ['[::1]:53']\n"
    sidecar = Sidecar(node, forwarders)
    sidecar.start()
    release = ProsodyRelease(extra_template=documented_block("prosody-0.12-config"))
    domain = encode(node.address)
    server = ProsodyServer(
        node,
        domain,
        documented_block("prosody-config"),
        release=release,
        host_settings=trusts_ca(node, domain, world.ca),
    )
    users: list[XmppUser] = []
    try:
        server.start()
        users.append(XmppUser(node, server.register("user", PASSWORD), PASSWORD))
        pp13, im = users[0], world.users["im"]
        pp13.send(im.jid, "from pp13 to im")
        im.wait_message("from pp13 to im")
        im.send(pp13.jid, "from im to pp13")
        pp13.wait_message("from im to pp13")
        assert f"Resolve {encode(world['im'].node.address)} IN AAAA" in server.log_text()
        assert node.run(["dig", "+short", encode(world["im"].node.address), "AAAA"]).stdout == ""
    finally:
        for user in users:
            user.close()
        server.stop()
        sidecar.kill()


#: What a stock Prosody's user gets for a message to each recipe's server, as
#: docs/mixed.md states it: (with a resolver that answers v6.alt names, without one).
SELF_SIGNED = "Server-to-server connection failed: Remote server's certificate is self-signed"
NOT_FOUND = "Server-to-server connection failed: unable to resolve service"
STOCK_PROSODY = {
    "xmpp": ("reaches it", "reaches it"),
    "chat": (SELF_SIGNED, SELF_SIGNED),
    "im": ("reaches it", NOT_FOUND),
    "pp": (SELF_SIGNED, NOT_FOUND),
}


def _stock_outcome(world: World, asker: str, name: str) -> str:
    """ "reaches it", or the text of the error the sender gets back."""
    user, target = world.users[asker], world.users[name]
    body = f"from {asker} to {name}"
    user.send(target.jid, body)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if target.received(body):
            return "reaches it"
        for event in user.drain():
            if event["event"] == "error" and event["from"] == target.jid:
                return str(event["text"])
        time.sleep(0.2)
    raise AssertionError(f"{body}: neither delivered nor bounced in 30 s")


def test_what_a_stock_prosody_sees(world: World) -> None:
    table = docs.table("Stock Prosody")
    for name, expected in STOCK_PROSODY.items():
        domain = world[name].domain
        seen = (_stock_outcome(world, "stock", name), _stock_outcome(world, "stock0", name))
        assert seen == expected, (domain, seen)
        documented = table[domain if name != "pp" else "<label>.v6.alt"]
        for cell, outcome in zip(documented[:2], expected, strict=True):
            assert outcome.removeprefix("Server-to-server connection failed: ") in cell, (
                domain,
                documented,
            )
    # The stock server's own log says why.
    log = world["stock"].prosody.log_text()
    chat = world["chat"].domain
    assert (
        f"Forbidding insecure connection to/from {chat} because its certificate is self-signed"
        in log
    )
