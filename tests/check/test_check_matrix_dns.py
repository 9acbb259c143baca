"""``v6alt check matrix`` for DNS names: .well-known, SRV, A/AAAA via a test DNS server."""

from __future__ import annotations

import json
from ipaddress import IPv6Address
from pathlib import Path

import pytest

from tests.prosody.servers import LabCa, make_ca, make_certificate
from v6alt.codec import encode

from .net import Pair, self_signed

DNS = IPv6Address("200:c::53")
DNS_PORT = 15553


@pytest.fixture
def ca(pair: Pair) -> LabCa:
    return make_ca(pair.root)


def _dns(pair: Pair, zone: dict[str, object]) -> list[str]:
    pair.fake_dns(pair.add_address(DNS), DNS_PORT, zone)
    return ["--resolver", f"[{DNS}]:{DNS_PORT}"]


def _ca_server(pair: Pair, ca: LabCa, address: str, port: int, domain: str,
               *extra: str) -> None:  # fmt: skip
    cert, key = make_certificate(pair.root, domain, ca)
    pair.fake_matrix(pair.add_address(address), port, cert, key, domain, *extra)


def test_broken_well_known(pair: Pair, ca: LabCa) -> None:
    resolver = _dns(pair, {"broken.v6c.test": {"AAAA": ["200:c::20"]}})
    _ca_server(pair, ca, "200:c::20", 443, "broken.v6c.test", "--well-known", "{not json")
    result = pair.check("matrix", "broken.v6c.test", *resolver, "--ca-file", str(ca.certificate))
    assert result.code == 1
    well_known = result.one("well_known")
    assert well_known["status"] == "fail"
    assert "is not JSON" in well_known["summary"]
    assert '{"m.server": "<host>[:<port>]"}' in well_known["hint"]
    assert result.report["resolution"]["well_known"]["status"] == 200
    # Peers fall back to SRV, then port 8448 (closed here): both are checked.
    assert [c["summary"].split(":")[0] for c in result.checks("dns.srv")] == [
        "SRV _matrix-fed._tcp.broken.v6c.test",
        "SRV _matrix._tcp.broken.v6c.test",
    ]
    assert result.one("tcp")["target"] == "[200:c::20]:8448"


def test_well_known_with_untrusted_certificate(pair: Pair) -> None:
    resolver = _dns(pair, {"selfsigned.v6c.test": {"AAAA": ["200:c::24"]}})
    cert, key = self_signed(pair.root, "selfsigned.v6c.test")
    pair.fake_matrix(
        pair.add_address("200:c::24"),
        443,
        cert,
        key,
        "selfsigned.v6c.test",
        "--well-known",
        json.dumps({"m.server": "elsewhere.v6c.test"}),
    )
    result = pair.check("matrix", "selfsigned.v6c.test", *resolver)
    well_known = result.one("well_known")
    assert well_known["status"] == "fail"
    assert "invalid certificate" in well_known["summary"]


def test_well_known_delegates_to_a_v6alt_name(pair: Pair, ca: LabCa) -> None:
    resolver = _dns(pair, {"deleg.v6c.test": {"AAAA": ["200:c::21"]}})
    target = pair.add_address("200:c::22")
    _ca_server(pair, ca, "200:c::21", 443, "deleg.v6c.test", "--well-known",
               json.dumps({"m.server": encode(target)}))  # fmt: skip
    cert, key = self_signed(pair.root, encode(target))
    pair.fake_matrix(target, 8448, cert, key, "deleg.v6c.test")
    result = pair.check("matrix", "deleg.v6c.test", *resolver, "--ca-file", str(ca.certificate))
    assert result.code == 0, result.report["checks"]
    assert result.one("well_known")["summary"] == f"deleg.v6c.test delegates to {encode(target)}"
    delegated = result.one("well_known.v6alt")
    assert delegated["status"] == "info"
    assert "only peers with v6alt reach it" in delegated["summary"]
    assert 'docs/mixed.md, "Delegating a DNS name to a v6.alt server"' in delegated["hint"]
    assert result.one("tls.trust")["summary"].startswith("IP-bound trust")
    connection = result.report["connections"]["[200:c::22]:8448"]
    assert connection["tls"]["sni"] == encode(target)
    assert connection["tls"]["host_header"] == encode(target)
    assert result.one("keys.server_name")["summary"] == "server_name is deleg.v6c.test"


def test_srv_record_and_ca_trust(pair: Pair, ca: LabCa) -> None:
    resolver = _dns(pair, {
        "srv.v6c.test": {},
        "_matrix-fed._tcp.srv.v6c.test": {"SRV": [[10, 5, 8449, "host.v6c.test"]]},
        "host.v6c.test": {"AAAA": ["200:c::23"]},
    })  # fmt: skip
    _ca_server(pair, ca, "200:c::23", 8449, "srv.v6c.test")
    args = ("matrix", "srv.v6c.test", *resolver)
    result = pair.check(*args, "--ca-file", str(ca.certificate))
    assert result.code == 0, result.report["checks"]
    assert result.report["resolution"]["srv"]["records"][0]["target"] == "host.v6c.test"
    assert result.one("tls.trust")["summary"] == "CA-verified for srv.v6c.test"
    # Without the private CA the same server fails the CA verdict, and only that.
    untrusted = pair.check(*args)
    assert untrusted.failed_ids() == ["tls.trust"]
    hint = untrusted.one("tls.trust")["hint"]
    assert "install a CA-signed certificate for srv.v6c.test" in hint
    assert "trust_any_certificate: true in every peer's v6alt config" in hint
    assert 'docs/mixed.md, "Keeping a DNS name on the mesh"' in hint


def test_name_without_addresses(pair: Pair) -> None:
    resolver = _dns(pair, {})
    result = pair.check("matrix", "missing.v6c.test", *resolver)
    assert result.code == 1
    assert result.failed_ids() == ["resolve.addresses"]
    assert "publish AAAA" in result.one("resolve.addresses")["hint"]


def test_resolver_not_answering(pair: Pair, tmp_path: Path) -> None:
    pair.add_address(DNS)  # nothing listens there
    result = pair.check("matrix", "nobody.v6c.test", "--resolver", f"[{DNS}]:{DNS_PORT}",
                        timeout=0.5)  # fmt: skip
    assert result.code == 1
    assert "dns.aaaa" in result.failed_ids()
    assert "--resolver" in result.one("dns.aaaa")["hint"]


def test_well_known_behind_redirects(pair: Pair, ca: LabCa) -> None:
    # redir.v6c.test answers 308 to another path of its own, which answers
    # 302 to final.v6c.test, which delegates to a v6.alt name.
    resolver = _dns(pair, {
        "redir.v6c.test": {"AAAA": ["200:c::25"]},
        "final.v6c.test": {"AAAA": ["200:c::26"]},
    })  # fmt: skip
    target = pair.add_address("200:c::27")
    _ca_server(pair, ca, "200:c::25", 443, "redir.v6c.test",
               "--redirect", "/.well-known/matrix/server", "308", "/moved",
               "--redirect", "/moved", "302",
               "https://final.v6c.test/.well-known/matrix/server")  # fmt: skip
    _ca_server(pair, ca, "200:c::26", 443, "final.v6c.test", "--well-known",
               json.dumps({"m.server": encode(target)}))  # fmt: skip
    cert, key = self_signed(pair.root, encode(target))
    pair.fake_matrix(target, 8448, cert, key, "redir.v6c.test")
    result = pair.check("matrix", "redir.v6c.test", *resolver, "--ca-file", str(ca.certificate))
    assert result.code == 0, result.report["checks"]
    assert [c["summary"] for c in result.checks("well_known.redirect")] == [
        "hop 1: https://redir.v6c.test/.well-known/matrix/server answers 308, "
        "to https://redir.v6c.test/moved",
        "hop 2: https://redir.v6c.test/moved answers 302, "
        "to https://final.v6c.test/.well-known/matrix/server",
    ]
    assert result.one("well_known")["summary"] == f"redir.v6c.test delegates to {encode(target)}"
    assert [hop["status"] for hop in result.report["resolution"]["well_known"]["redirects"]] == [
        308,
        302,
    ]
    assert result.one("tls.trust")["summary"].startswith("IP-bound trust")


@pytest.mark.parametrize("kind", ["loop", "endless", "plain http"])
def test_well_known_redirects_that_peers_ignore(pair: Pair, ca: LabCa, kind: str) -> None:
    resolver = _dns(pair, {"loop.v6c.test": {"AAAA": ["200:c::28"]}})
    extra = {
        "loop": ["--redirect", "/.well-known/matrix/server", "301", "/a",
                 "--redirect", "/a", "303", "/.well-known/matrix/server"],
        "endless": ["--endless-redirects"],
        "plain http": ["--redirect", "/.well-known/matrix/server", "307",
                       "http://loop.v6c.test/.well-known/matrix/server"],
    }[kind]  # fmt: skip
    _ca_server(pair, ca, "200:c::28", 443, "loop.v6c.test", *extra)
    result = pair.check("matrix", "loop.v6c.test", *resolver, "--ca-file", str(ca.certificate))
    well_known = result.one("well_known")
    assert well_known["status"] == "fail"
    hops = result.checks("well_known.redirect")
    if kind == "loop":
        assert len(hops) == 2
        assert (
            "redirects in a loop (back to https://loop.v6c.test/.well-known/matrix/server)"
            in (well_known["summary"])
        )
    elif kind == "endless":
        assert len(hops) == 30
        assert "redirects more than 30 times" in well_known["summary"]
    else:
        assert hops == []
        assert "which is not an https:// URL" in well_known["summary"]
    assert (
        "peers follow 301, 302, 303, 307 and 308 to https:// URLs, up to 30 hops"
        in (well_known["hint"])
    )
    # Peers then fall back to SRV and port 8448, and so does the check.
    assert result.one("tcp")["target"] == "[200:c::28]:8448"


def test_srv_target_that_is_a_v6alt_name(pair: Pair, ca: LabCa) -> None:
    target = pair.add_address("200:c::29")
    resolver = _dns(pair, {
        "srvv.v6c.test": {},
        "_matrix-fed._tcp.srvv.v6c.test": {"SRV": [[10, 5, 8448, encode(target)]]},
    })  # fmt: skip
    cert, key = make_certificate(pair.root, "srvv.v6c.test", ca)
    pair.fake_matrix(target, 8448, cert, key, "srvv.v6c.test")
    result = pair.check("matrix", "srvv.v6c.test", *resolver, "--ca-file", str(ca.certificate))
    assert result.code == 0, result.report["checks"]
    srv = result.one("resolve.srv_v6alt")
    assert srv["summary"] == (
        f"SRV _matrix-fed._tcp.srvv.v6c.test points at the v6.alt name {encode(target)} "
        f"({target}, decoded, not looked up): only peers with v6alt reach it"
    )
    assert "its certificate must still be valid for srvv.v6c.test" in srv["hint"]
    # The v6.alt name is never asked of DNS; the certificate is judged for srvv.v6c.test.
    assert not [c for c in result.checks("dns.aaaa") if encode(target) in c["summary"]]
    assert result.one("tls.trust")["summary"] == "CA-verified for srvv.v6c.test"
