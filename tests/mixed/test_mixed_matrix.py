"""docs/mixed.md's Matrix recipes between real homeservers.

One flat link, two subnets: the mesh (``200::/7``: P, R, W1, W2) and
addresses outside it (D, S, the web server, the stock Synapse Q). Every
server host runs Debian's unbound on [::1]:53 with the documented zone
(``mixed-zone-matrix``); Q's unbound also forwards ``.v6.alt`` to a sidecar
in its namespace (a host-wide resolver that answers v6.alt names). A
throw-away CA stands in for a public one: every homeserver trusts it
(``mixed-synapse-ca``).

- P: a v6.alt-named homeserver with the module and the documented
  ``mixed-trust-range`` (any certificate from ``200::/7``);
- D ``hs.mixed.example``: a CA certificate, AAAA to its address;
- R ``mesh.mixed.example``: self-signed, AAAA into P's range;
- S ``srv.mixed.example``: a CA certificate, SRV to its v6.alt name;
- W1 ``wk.mixed.example``: self-signed, ``.well-known`` to its v6.alt name;
- W2 ``wr.mixed.example``: self-signed, ``.well-known`` behind a 301 and a
  308, to its v6.alt name with an explicit port;
- Q ``stock.mixed.example``: stock Synapse, no module, on a host whose resolver
  answers v6.alt names; Q0 ``stock0.mixed.example`` the same without that.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv6Address
from pathlib import Path
from string import Template

import pytest

pytest.importorskip("synapse.app.homeserver", reason="matrix-synapse is not installed")
import yaml

from tests.synapse_module.homeserver import DOCS_SNIPPET, Homeserver, quote
from tests.synapse_module.matrix import has_message, send, shared_room
from v6alt.codec import encode
from v6alt.lab.certificates import LabCa, make_lab_ca
from v6alt.lab.mixed import start_resolver_sidecar, start_well_known, start_zone_unbound
from v6alt.lab.netns import FlatHost, FlatNet

from . import docs

pytestmark = pytest.mark.integration

MESH = "202:6a1f:7b::"
OUTSIDE = "2a0e:6a1f:7b::"
SIDECAR_DNS_PORT = 5353
WELL_KNOWN = "/.well-known/matrix/server"


def label(address: IPv6Address) -> str:
    """The label of ``address``'s v6.alt name (the docs' ``<label>``)."""
    return encode(address).removesuffix(".v6.alt")


def documented_module_config() -> dict[str, object]:
    """The module's ``config:`` mapping of docs/synapse-homeserver.yaml."""
    config = yaml.safe_load(Template(DOCS_SNIPPET.read_text()).safe_substitute())
    module_config: dict[str, object] = config["modules"][0]["config"]
    return module_config


@dataclass
class World:
    net: FlatNet
    web_log: Path
    servers: dict[str, Homeserver] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Homeserver:
        return self.servers[name]

    def token(self, name: str) -> str:
        return self.tokens[name]


def _host(net: FlatNet, name: str, address: str, other: str) -> FlatHost:
    host = net.add_host(name, address)
    host.add_route(f"{other}/64")
    return host


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("mixed-matrix")
    with FlatNet(f"v6mx-{os.getpid() % 100000}-") as net:
        hosts = {
            name: _host(net, name, f"{MESH}{i}", OUTSIDE)
            for i, name in enumerate(("p", "r", "w1", "w2"), start=1)
        }
        hosts |= {
            name: _host(net, name, f"{OUTSIDE}{i}", MESH)
            for i, name in enumerate(("d", "s", "web", "q", "q0"), start=1)
        }
        address = {name: host.address for name, host in hosts.items()}
        ca = make_lab_ca(root / "ca", "v6alt mixed test CA")
        records = docs.zone(
            "mixed-zone-matrix",
            hs_address=address["d"],
            mesh_address=address["r"],
            web_address=address["web"],
            srv_label=label(address["s"]),
        )
        # Test-only names: the stock peer, and an SRV record whose target presents
        # a CA certificate for another name (Q's).
        records.aaaa("stock.mixed.example", address["q"])
        records.aaaa("stock0.mixed.example", address["q0"])
        records.aaaa("bogus.mixed.example", address["web"])
        records.aaaa("loop.mixed.example", address["web"])
        records.srv("_matrix-fed._tcp", "bad.mixed.example", encode(address["q"]), 8448)
        start_resolver_sidecar(hosts["q"], root / "q-sidecar", SIDECAR_DNS_PORT)
        for name, host in hosts.items():
            if name != "web":
                forward = SIDECAR_DNS_PORT if name == "q" else None
                start_zone_unbound(host, root / f"{name}-dns", records, v6alt_forward=forward)

        web_dir = root / "web"
        web_dir.mkdir()
        ca.issue("mixed.example", web_dir / "tls.key", web_dir / "tls.crt", subdomains=True)
        w1_json = docs.block("mixed-well-known", label=label(address["w1"]))
        # The same document with an explicit port (the recipe's ``[:port]``).
        w2_json = docs.block("mixed-well-known", label=label(address["w2"]))
        assert w2_json.count('.v6.alt"') == 1
        w2_json = w2_json.replace('.v6.alt"', '.v6.alt:8448"')
        routes = {
            f"wk.mixed.example{WELL_KNOWN}": {"json": yaml.safe_load(w1_json)},
            f"wr.mixed.example{WELL_KNOWN}": {
                "status": 301,
                "location": "https://www.mixed.example/moved/matrix-server",
            },
            "www.mixed.example/moved/matrix-server": {
                "status": 308,
                "location": "https://www.mixed.example/matrix-server.json",
            },
            "www.mixed.example/matrix-server.json": {"json": yaml.safe_load(w2_json)},
            # Test-only: delegations the module must refuse.
            f"bogus.mixed.example{WELL_KNOWN}": {"json": {"m.server": "abc.v6.alt"}},
            f"loop.mixed.example{WELL_KNOWN}": {"json": {"m.server": "a-e.v6.alt"}},
        }
        start_well_known(
            hosts["web"], web_dir, address["web"], web_dir / "tls.crt", web_dir / "tls.key", routes
        )

        trusts_ca = docs.yaml_block("mixed-synapse-ca", ca_certificate=ca.certificate)
        p_config = {**documented_module_config(), **docs.yaml_block("mixed-trust-range")}

        def hs(name: str, **settings: object) -> Homeserver:
            return Homeserver(hosts[name], root / f"hs-{name}", **settings)  # type: ignore[arg-type]

        servers = {
            "p": hs("p", module_config=p_config, extra=trusts_ca),
            "d": hs("d", server_name="hs.mixed.example", ca_dir=ca.directory, extra=trusts_ca),
            "r": hs("r", server_name="mesh.mixed.example", extra=trusts_ca),
            "s": hs("s", server_name="srv.mixed.example", ca_dir=ca.directory, extra=trusts_ca),
            "w1": hs("w1", server_name="wk.mixed.example", extra=trusts_ca),
            "w2": hs("w2", server_name="wr.mixed.example", extra=trusts_ca),
            "q": hs("q", server_name="stock.mixed.example", ca=LabCa(ca.directory)),
            "q0": hs("q0", server_name="stock0.mixed.example", ca=LabCa(ca.directory)),
        }
        world = World(net, web_dir / "well-known.log", servers)
        try:
            for server in servers.values():
                server.data_dir.mkdir(parents=True, exist_ok=True)
                server.prepare()
                server.spawn()
            for server in servers.values():
                server.wait_ready()
            world.tokens = {name: server.register("user") for name, server in servers.items()}
            yield world
        finally:
            for server in servers.values():
                server.stop()


def _messages_both_ways(world: World, name: str) -> None:
    """P invites X's user to a room, X joins; a message each way arrives."""
    p, x = world["p"], world[name]
    room_id = shared_room(p, world.token("p"), x, world.token(name), "user")
    send(p, world.token("p"), room_id, f"from p to {x.server_name}")
    x.wait_for(
        "P's message",
        lambda: has_message(x, world.token(name), room_id, f"from p to {x.server_name}"),
    )
    send(x, world.token(name), room_id, f"from {x.server_name} to p")
    p.wait_for(
        f"{name}'s message",
        lambda: has_message(p, world.token("p"), room_id, f"from {x.server_name} to p"),
    )


def _accepted_without_ca(p: Homeserver, x: Homeserver, name: str) -> bool:
    line = (
        rf"v6alt: TLS peer {re.escape(str(x.address))} accepted for {re.escape(name)} "
        rf"without CA check"
    )
    return re.search(line, p.log_text()) is not None


def test_dns_name_with_a_ca_certificate(world: World) -> None:
    _messages_both_ways(world, "d")
    # D is outside P's range: its certificate was checked against the CA.
    assert not _accepted_without_ca(world["p"], world["d"], "hs.mixed.example")


def test_dns_name_in_a_trust_any_range(world: World) -> None:
    _messages_both_ways(world, "r")
    p, r = world["p"], world["r"]
    p.wait_for_log(
        rf"v6alt: TLS peer {re.escape(str(r.address))} accepted for mesh\.mixed\.example "
        r"without CA check \(any: secure range 200::/7\)"
    )


def test_well_known_delegation(world: World) -> None:
    _messages_both_ways(world, "w1")
    p, w1 = world["p"], world["w1"]
    assert f"wk.mixed.example {WELL_KNOWN} 200" in world.web_log.read_text()
    # P dialled the delegated v6.alt name and judged the peer by its address.
    p.wait_for_log(
        rf"v6alt: TLS peer {re.escape(str(w1.address))} accepted for "
        rf"{re.escape(encode(w1.address))} without CA check"
    )


def test_well_known_behind_redirects(world: World) -> None:
    _messages_both_ways(world, "w2")
    log = world.web_log.read_text()
    assert f"wr.mixed.example {WELL_KNOWN} 301" in log
    assert "www.mixed.example /moved/matrix-server 308" in log
    assert "www.mixed.example /matrix-server.json 200" in log


def test_well_known_to_a_refused_v6alt_name(world: World) -> None:
    """The delegated name is judged like any v6.alt destination: nothing is dialled."""
    p = world["p"]
    for server_name, refusal in (
        ("bogus.mixed.example", r"v6alt refused abc\.v6\.alt: malformed v6\.alt name: "),
        ("loop.mixed.example", r"v6alt refused a-e\.v6\.alt: never-dial"),
    ):
        mark = p.log_mark()
        status, body = _profile(world, "p", f"@user:{server_name}")
        assert status >= 400, body
        p.wait_for_log(rf"\[{re.escape(server_name)}\] Request failed: .*{refusal}", start=mark)


def test_delegation_followed_with_the_documented_config_alone(world: World) -> None:
    """D has no secure range: the delegated v6.alt names get IP-bound trust."""
    d = world["d"]
    for name in ("w1", "w2"):
        target = world[name]
        status, body = _profile(world, "d", target.user_id("user"))
        assert status == 200, (target.server_name, body)
        d.wait_for_log(
            rf"v6alt: TLS peer {re.escape(str(target.address))} accepted for "
            rf"{re.escape(encode(target.address))} without CA check \(ip_bound: "
        )


def test_srv_delegation(world: World) -> None:
    _messages_both_ways(world, "s")
    p, s = world["p"], world["s"]
    # The SRV target, a v6.alt name, was dialled at the address it encodes ...
    p.wait_for_log(rf"Connecting to {re.escape(encode(s.address))}:8448")
    # ... and the certificate was checked for srv.mixed.example, by the CA.
    assert not _accepted_without_ca(p, s, "srv.mixed.example")


def _profile(world: World, asker: str, user_id: str) -> tuple[int, object]:
    hs = world[asker]
    return hs.request(
        "GET", f"/_matrix/client/v3/profile/{quote(user_id)}", token=world.token(asker)
    )


def test_srv_delegation_needs_a_certificate_for_the_name(world: World) -> None:
    p, q = world["p"], world["q"]
    mark, q_mark = p.log_mark(), q.log_mark()
    status, body = _profile(world, "p", "@user:bad.mixed.example")
    assert status >= 400, body
    p.wait_for_log(
        r"\[bad\.mixed\.example\] Request failed: .*VerificationError.*DNSMismatch", start=mark
    )
    assert "query/profile" not in q.log_text()[q_mark:]


#: What a stock Synapse logs for each recipe's server, as docs/mixed.md states it:
#: (with a resolver that answers v6.alt names, without one).
STOCK_SYNAPSE = {
    "d": ("reaches it", "reaches it"),
    "r": ("certificate verify failed", "certificate verify failed"),
    "s": ("reaches it", "no results for hostname lookup"),
    "w1": ("certificate verify failed", "no results for hostname lookup"),
    "w2": ("certificate verify failed", "no results for hostname lookup"),
    "p": ("certificate verify failed", "no results for hostname lookup"),
}


def _stock_outcome(world: World, asker: str, target: Homeserver) -> str:
    """What ``asker`` (a stock Synapse) gets asking ``target`` for a profile: "reaches it",
    or the reason of its ``Request failed`` log line."""
    stock = world[asker]
    mark = stock.log_mark()
    status, body = _profile(world, asker, target.user_id("user"))
    if status == 200:
        return "reaches it"
    line = stock.wait_for_log(
        rf"\[{re.escape(target.server_name)}\] Request failed: .*", start=mark
    )
    for reason in ("certificate verify failed", "no results for hostname lookup"):
        if reason in line:
            return reason
    raise AssertionError(f"{asker} -> {target.server_name}: {status} {body}: {line}")


def test_what_a_stock_synapse_sees(world: World) -> None:
    table = docs.table("Stock Synapse")
    for name, expected in STOCK_SYNAPSE.items():
        target = world[name]
        seen = (_stock_outcome(world, "q", target), _stock_outcome(world, "q0", target))
        assert seen == expected, (target.server_name, seen)
        documented = table[target.server_name if name != "p" else "<label>.v6.alt"]
        for cell, outcome in zip(documented[:2], expected, strict=True):
            assert outcome in cell, (target.server_name, documented)
