"""``v6alt check xmpp`` against a real Prosody 13 with mod_v6alt and its sidecar."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv6Address

import pytest

from tests.prosody.servers import LabCa, Node, ProsodyServer, Sidecar, documented_block, make_ca
from v6alt.codec import encode

from .net import CLIENT_ADDRESS, Pair


def _prosody_13() -> bool:
    if shutil.which("prosody") is None or shutil.which("runuser") is None:
        return False
    about = subprocess.run(["runuser", "-u", "prosody", "--", "prosodyctl", "about"],
                           capture_output=True, text=True)  # fmt: skip
    return re.search(r"Prosody 13\.", about.stdout) is not None


pytestmark = pytest.mark.skipif(not _prosody_13(), reason="needs Prosody 13 (bookworm-backports)")


@dataclass
class XmppSite:
    address: IPv6Address
    domain: str
    sidecar: Sidecar
    server: ProsodyServer


@contextmanager
def _running_site(
    pair: Pair,
    address: str,
    directory: str,
    domain: str | None = None,
    issuer: LabCa | None = None,
    settings: str = "",
    sidecar_yaml: str = "",
) -> Iterator[XmppSite]:
    """A sidecar and Prosody on ``address`` of the server side (domain: its v6.alt name;
    ``settings``: extra global prosody.cfg.lua lines)."""
    ip = pair.add_address(address)
    run_dir = pair.root / directory
    run_dir.mkdir(mode=0o755)
    shutil.chown(run_dir, "prosody", "prosody")
    node = Node(pair.hosts["srv"], ip, run_dir)
    sidecar = Sidecar(node, sidecar_yaml)
    sidecar.start()
    domain = domain or encode(ip)
    server = ProsodyServer(
        node, domain, documented_block("prosody-config"), issuer=issuer, settings=settings
    )
    server.start()
    try:
        yield XmppSite(ip, domain, sidecar, server)
    finally:
        server.stop()
        sidecar.kill()


@pytest.fixture
def site(pair: Pair) -> Iterator[XmppSite]:
    with _running_site(pair, "200:c::30", "xmpp") as running:
        yield running


def test_prosody_passes(pair: Pair, site: XmppSite) -> None:
    result = pair.check("xmpp", site.domain)
    assert result.code == 0, result.report["checks"]
    assert result.failed_ids() == []
    assert result.one("features.starttls")["summary"] == "STARTTLS offered (required)"
    assert result.one("tls.trust")["summary"].startswith("IP-bound trust")
    assert "SASL EXTERNAL" in result.one("features.auth")["summary"]
    stream = result.report["connections"]["[200:c::30]:5269"]["stream"]
    # The default 'from' is the name of the source address the server sees.
    assert stream["from"] == site.domain
    assert stream["to"] == encode(CLIENT_ADDRESS)


def test_sidecar_down(pair: Pair, site: XmppSite) -> None:
    site.sidecar.kill()
    result = pair.check("xmpp", site.domain)
    assert result.code == 1
    assert result.failed_ids() == ["stream"]
    stream = result.one("stream")
    assert "policy-violation" in stream["summary"]
    assert "sidecar" in stream["hint"]


def test_from_another_address_is_refused(pair: Pair, site: XmppSite) -> None:
    pretend = encode(IPv6Address("200:c::99"))
    result = pair.check("xmpp", site.domain, "--from", pretend)
    assert result.code == 1
    assert result.failed_ids() == ["stream"]
    stream = result.one("stream")
    assert pretend in stream["summary"] and "policy-violation" in stream["summary"]
    assert "check --from" in stream["hint"]


def test_wrong_domain_at_the_address(pair: Pair, site: XmppSite) -> None:
    # A name for the server's address, but a subdomain Prosody does not host.
    result = pair.check("xmpp", f"chat.{site.domain}")
    assert result.code == 1
    assert result.failed_ids() == ["stream"]
    stream = result.one("stream")
    assert "host-unknown" in stream["summary"]
    assert f'add VirtualHost "chat.{site.domain}"' in stream["hint"]


def test_closed_port(pair: Pair) -> None:
    address = pair.add_address("200:c::31")
    result = pair.check("xmpp", encode(address))
    assert result.failed_ids() == ["tcp"]
    assert "s2s_interfaces" in result.one("tcp")["hint"]


def test_dns_domain_by_srv_with_ca_trust(pair: Pair) -> None:
    """A DNS domain found by SRV, with a certificate from a private CA."""
    ca = make_ca(pair.root)
    dns = pair.add_address("200:c::53")
    zone = {
        "_xmpp-server._tcp.xmpp.v6c.test": {"SRV": [[0, 5, 5269, "host.v6c.test"]]},
        "host.v6c.test": {"AAAA": ["200:c::32"]},
    }
    pair.fake_dns(dns, 15553, zone)
    with _running_site(pair, "200:c::32", "dns-xmpp", "xmpp.v6c.test", issuer=ca):
        args = ("xmpp", "xmpp.v6c.test", "--resolver", f"[{dns}]:15553")
        result = pair.check(*args, "--ca-file", str(ca.certificate))
        assert result.code == 0, result.report["checks"]
        assert result.report["resolution"]["srv"][0]["target"] == "host.v6c.test"
        assert result.one("tcp")["target"] == "[200:c::32]:5269"
        assert result.one("tls.trust")["summary"] == "CA-verified for xmpp.v6c.test"
        untrusted = pair.check(*args)
        assert untrusted.failed_ids() == ["tls.trust"]
        hint = untrusted.one("tls.trust")["hint"]
        assert "install a CA-signed certificate for xmpp.v6c.test" in hint


def test_direct_tls_by_srv(pair: Pair) -> None:
    """XEP-0368: ``_xmpps-server._tcp`` to Prosody's s2s_direct_tls_ports, beside STARTTLS."""
    ca = make_ca(pair.root)
    dns = pair.add_address("200:c::53")
    zone = {
        "_xmpps-server._tcp.xmpp.v6c.test": {"SRV": [[0, 5, 5270, "host.v6c.test"]]},
        "_xmpp-server._tcp.xmpp.v6c.test": {"SRV": [[0, 5, 5269, "host.v6c.test"]]},
        "host.v6c.test": {"AAAA": ["200:c::33"]},
    }
    pair.fake_dns(dns, 15553, zone)
    direct = "s2s_direct_tls_ports = { 5270 }\n"
    with _running_site(pair, "200:c::33", "tls-xmpp", "xmpp.v6c.test", ca, direct):
        args = ("xmpp", "xmpp.v6c.test", "--resolver", f"[{dns}]:15553")
        result = pair.check(*args, "--ca-file", str(ca.certificate))
        assert result.code == 0, result.report["checks"]
        assert result.one("resolve.direct_tls")["summary"] == (
            "_xmpps-server._tcp.xmpp.v6c.test: direct TLS (XEP-0368) at host.v6c.test:5270"
        )
        assert [c["target"] for c in result.checks("tcp")] == [
            "[200:c::33]:5270",
            "[200:c::33]:5269",
        ]
        direct_tls = result.checks("tls.direct")
        assert [c["target"] for c in direct_tls] == ["[200:c::33]:5270"]
        # Prosody 13.0.1 accepts the ALPN offer without choosing a protocol.
        assert direct_tls[0]["summary"] == "direct TLS (XEP-0368), no ALPN chosen"
        assert [c["summary"] for c in result.checks("tls.trust")] == [
            "CA-verified for xmpp.v6c.test"
        ] * 2
        connection = result.report["connections"]["[200:c::33]:5270"]
        assert "starttls" not in connection["features"]
        assert result.report["resolution"]["srv_direct_tls"][0]["port"] == 5270
        # Without the private CA the direct-TLS target fails the CA verdict too.
        untrusted = pair.check(*args)
        assert untrusted.failed_ids() == ["tls.trust", "tls.trust"]


def test_no_direct_tls_is_info(pair: Pair) -> None:
    dns = pair.add_address("200:c::53")
    pair.fake_dns(dns, 15553, {"plain.v6c.test": {"AAAA": ["200:c::34"]}})
    result = pair.check("xmpp", "plain.v6c.test", "--resolver", f"[{dns}]:15553")
    info = result.one("resolve.direct_tls")
    assert info["status"] == "info"
    assert info["summary"] == (
        "no _xmpps-server._tcp SRV record: plain.v6c.test offers no direct TLS (XEP-0368); "
        "peers use STARTTLS"
    )


def test_srv_target_that_is_a_v6alt_name(pair: Pair, site: XmppSite) -> None:
    """``_xmpp-server._tcp`` of a DNS domain pointing at a v6.alt name: decoded, said so."""
    dns = pair.add_address("200:c::53")
    zone = {"_xmpp-server._tcp.deleg.v6c.test": {"SRV": [[0, 5, 5269, site.domain]]}}
    pair.fake_dns(dns, 15553, zone)
    result = pair.check("xmpp", "deleg.v6c.test", "--resolver", f"[{dns}]:15553")
    srv = result.one("resolve.srv_v6alt")
    assert srv["status"] == "info"
    assert srv["summary"] == (
        f"SRV _xmpp-server._tcp.deleg.v6c.test points at the v6.alt name {site.domain} "
        f"({site.address}, decoded, not looked up): only peers with v6alt (or mod_s2s_v6mesh) "
        "reach it"
    )
    assert "its certificate must still be valid for deleg.v6c.test" in srv["hint"]
    assert not [c for c in result.checks("dns.aaaa") if site.domain in c["summary"]]
    assert result.one("tcp")["target"] == f"[{site.address}]:5269"
    # The server there hosts only its v6.alt name: the stream says so.
    assert result.one("stream")["status"] == "fail"


def test_tls_off_range_on_the_server_only(pair: Pair) -> None:
    """The server's sidecar has tls: off for this check's address, the check has not."""
    tls_off = f'secure_ranges:\n  - cidr: "{CLIENT_ADDRESS}/128"\n    tls: "off"\n'
    with _running_site(pair, "200:c::35", "tls-off", sidecar_yaml=tls_off) as server:
        result = pair.check("xmpp", server.domain)
        assert result.failed_ids() == ["features.starttls"]
        hint = result.one("features.starttls")["hint"]
        assert "its sidecar has a secure range with tls: off for the address this check" in hint
        assert 'docs/prosody.md, "Secure ranges on both ends"' in hint
