"""A secure range with ``tls: off``: no STARTTLS inside it, authentication by address."""

from __future__ import annotations

from v6alt.codec import encode

from .conftest import SiteFactory, messages_both_ways
from .servers import Mesh

E_ADDRESS = "200:7670::11"
F_ADDRESS = "200:7670::12"
OUTSIDER_ADDRESS = "200:7670::a"
SECURE_RANGE_TLS_OFF = """\
secure_ranges:
  - cidr: "200:7670::10/124"
    tls: "off"
    trust_any_certificate: true
"""
SECURE_RANGE_CA_ONLY = """\
secure_ranges:
  - cidr: "200:7670::10/124"
    tls: required
    trust_any_certificate: false
"""


def test_tls_off_range(lab: Mesh, site: SiteFactory) -> None:
    e = site("e", E_ADDRESS, sidecar_yaml=SECURE_RANGE_TLS_OFF)
    f = site("f", F_ADDRESS, sidecar_yaml=SECURE_RANGE_TLS_OFF)
    erin, frank = e.user("erin"), f.user("frank")

    messages_both_ways(erin, frank, "plaintext inside the range", "and back")

    assert f"Dialling {f.domain} at [{F_ADDRESS}]:5269 without TLS" in e.server.log_text()
    assert f"Trusting {f.domain} at [{F_ADDRESS}] (any)" in e.server.log_text()
    assert f"Not offering TLS to {e.domain} at [{E_ADDRESS}]" in f.server.log_text()
    for server in (e.server, f.server):
        encrypted_s2s = [
            line
            for line in server.log_text().splitlines()
            if line.split("\t")[0].split()[-1].startswith("s2s") and "Stream encrypted" in line
        ]
        assert encrypted_s2s == []

    # What f offers: inside the range, SASL EXTERNAL and no STARTTLS ...
    inside = e.node.open_stream(f.node.address, e.domain, f.domain)
    assert "<starttls" not in inside
    assert "<mechanism>EXTERNAL</mechanism>" in inside
    # ... and to a v6.alt peer outside the range, STARTTLS as usual.
    outsider = lab.add_node("o", OUTSIDER_ADDRESS)
    outside = outsider.open_stream(f.node.address, encode(OUTSIDER_ADDRESS), f.domain)
    assert "<starttls" in outside
    assert "EXTERNAL" not in outside


def test_range_without_trust_any_certificate_wants_a_ca(site: SiteFactory) -> None:
    # Inside this range the policy's trust is "ca": being at the name's own
    # address is not enough, and self-signed certificates are refused.
    e = site("e", E_ADDRESS, sidecar_yaml=SECURE_RANGE_CA_ONLY)
    f = site("f", F_ADDRESS, sidecar_yaml=SECURE_RANGE_CA_ONLY)
    erin, frank = e.user("erin"), f.user("frank")

    erin.send(frank.jid, "self-signed inside a CA-only range")

    assert "certificate is self-signed" in erin.wait_error(frank.jid)["text"]
    assert not frank.received("self-signed inside a CA-only range")
    assert f"Trusting {f.domain}" not in e.server.log_text()
