"""A secure range with ``tls: off``: no STARTTLS inside it, authentication by address."""

from __future__ import annotations

import pytest

from v6alt.codec import encode

from .conftest import SiteFactory, messages_both_ways
from .servers import INSTALLED, Mesh, documented_block, wait_until

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


@pytest.mark.parametrize("release", ["13", "0.12"])
def test_tls_off_range_on_prosody012_too(
    site: SiteFactory, release: str, request: pytest.FixtureRequest
) -> None:
    # On 0.12 (no s2sout-pre-connect) the range is learnt from the peer's
    # first features, before mod_tls would start TLS.
    chosen = INSTALLED if release == "13" else request.getfixturevalue("prosody012")
    e = site("e", E_ADDRESS, sidecar_yaml=SECURE_RANGE_TLS_OFF, release=chosen)
    f = site("f", F_ADDRESS, sidecar_yaml=SECURE_RANGE_TLS_OFF)
    erin, frank = e.user("erin"), f.user("frank")

    messages_both_ways(erin, frank, "plaintext from e", "plaintext back")
    messages_both_ways(frank, erin, "plaintext from f", "and back to f")

    for server in (e.server, f.server):
        assert not [
            line
            for line in server.log_text().splitlines()
            if line.split("\t")[0].split()[-1].startswith("s2s") and "Stream encrypted" in line
        ]
    if release == "0.12":
        assert f"Not using TLS with {f.domain} at [{F_ADDRESS}]" in e.server.log_text()


@pytest.mark.parametrize("release", ["13", "0.12"])
def test_tls_off_on_one_side_only_names_the_mismatch(
    site: SiteFactory, release: str, request: pytest.FixtureRequest
) -> None:
    # e has the "tls: off" range, f has none: each direction fails with an
    # error that says the two servers' secure_ranges differ.
    chosen = INSTALLED if release == "13" else request.getfixturevalue("prosody012")
    e = site("e", E_ADDRESS, sidecar_yaml=SECURE_RANGE_TLS_OFF, release=chosen)
    f = site("f", F_ADDRESS)
    erin, frank = e.user("erin"), f.user("frank")

    erin.send(frank.jid, "e expects no TLS")
    text = erin.wait_error(frank.jid)["text"]
    assert "secure range mismatch: this server's secure_ranges have tls: off for" in text
    assert f"but {f.domain} offers TLS" in text
    assert "both servers need the same secure_ranges" in text
    wait_until(lambda: "secure range mismatch" in f.server.log_text(), 10, "f to log the mismatch")

    frank.send(erin.jid, "f expects TLS")
    text = frank.wait_error(erin.jid)["text"]
    assert f"secure range mismatch: {e.domain} at [{E_ADDRESS}] offers no TLS" in text
    assert "but this server's secure_ranges do not have tls: off" in text
    assert not erin.received("f expects TLS") and not frank.received("e expects no TLS")


def test_documented_v6mesh_range(site: SiteFactory) -> None:
    # docs/prosody.md, "Coming from mod_s2s_v6mesh": the sidecar's range for
    # s2s_v6mesh_ranges = { ["200::/7"] = { use_tls = false } }, on both ends.
    yaml = documented_block("v6mesh-ranges", "yaml")
    e = site("e", E_ADDRESS, sidecar_yaml=yaml)
    f = site("f", F_ADDRESS, sidecar_yaml=yaml)
    erin, frank = e.user("erin"), f.user("frank")

    messages_both_ways(erin, frank, "no TLS on the mesh", "none back")

    assert f"Dialling {f.domain} at [{F_ADDRESS}]:5269 without TLS" in e.server.log_text()
    # No trust_any_certificate written: trusted by address, as the reference
    # module's trust_all_certs = true does inside a range.
    assert f"Not offering TLS to {e.domain} at [{E_ADDRESS}]" in f.server.log_text()
    assert "secure range mismatch" not in e.server.log_text() + f.server.log_text()
