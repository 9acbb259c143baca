"""``v6alt check matrix`` against servers the tests break on purpose (fake HTTPS servers)."""

from __future__ import annotations

from ipaddress import IPv6Address

from v6alt.codec import encode

from .net import Pair, self_signed


def _serve(pair: Pair, address: str, *extra: str, cert_for: str | None = None) -> str:
    """A fake federation listener at [address]:8448; returns the server name."""
    ip = pair.add_address(address)
    name = encode(ip)
    cert, key = self_signed(pair.root, cert_for or name)
    pair.fake_matrix(ip, 8448, cert, key, name, *extra)
    return name


def test_working_server_passes_every_check(pair: Pair) -> None:
    name = _serve(pair, "200:c::10")
    result = pair.check("matrix", name)
    assert result.code == 0, result.report
    assert result.failed_ids() == []
    assert result.one("tls.trust")["summary"].startswith("IP-bound trust")
    assert result.one("keys.signature")["status"] == "pass"
    assert result.one("version")["summary"] == "v6c-fake 0"
    connection = result.report["connections"]["[200:c::10]:8448"]
    assert connection["tls"]["sni"] == name
    assert connection["tls"]["host_header"] == name
    assert connection["keys"]["checks"]["matching_server_name"] is True
    # One progress line per network step, on stderr.
    assert "v6alt check: TCP [200:c::10]:8448" in result.stderr


def test_closed_port(pair: Pair) -> None:
    name = encode(pair.add_address("200:c::11"))
    result = pair.check("matrix", name)
    assert result.code == 1
    assert result.failed_ids() == ["tcp"]
    tcp = result.one("tcp")
    assert "refused" in tcp["summary"]
    assert 'bind_addresses: ["200:c::11"]' in tcp["hint"]
    assert result.checks("tls") == [] and result.checks("version") == []


def test_certificate_of_another_address(pair: Pair) -> None:
    other = encode(IPv6Address("200:c::99"))
    _serve(pair, "200:c::12", cert_for=other)
    result = pair.check("matrix", encode(IPv6Address("200:c::12")))
    assert result.code == 1
    assert result.failed_ids() == ["tls.trust"]
    trust = result.one("tls.trust")
    assert other in trust["summary"] and "200:c::99" in trust["summary"]
    assert "another server answers there" in trust["hint"]
    # The bad certificate does not stop the checks after it.
    assert result.one("keys.signature")["status"] == "pass"


def test_key_server_name_mismatch(pair: Pair) -> None:
    name = _serve(pair, "200:c::13", "--key-server-name", "someone-else.example")
    result = pair.check("matrix", name)
    assert result.code == 1
    assert "keys.server_name" in result.failed_ids()
    check = result.one("keys.server_name")
    assert "'someone-else.example'" in check["summary"]
    assert f"set server_name: {name}" in check["hint"]


def test_expired_keys(pair: Pair) -> None:
    name = _serve(pair, "200:c::14", "--expired")
    result = pair.check("matrix", name)
    assert result.failed_ids() == ["keys.valid_until"]
    assert "clock" in result.one("keys.valid_until")["hint"]


def test_never_dial_name_is_not_dialled(pair: Pair) -> None:
    # A ULA address with a listener on it: the check must refuse before connecting.
    ula = pair.add_address("fd00:c::1")
    pair.start(pair.server, ["python3", "-c", (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_INET6);s.bind(('fd00:c::1',8448));s.listen()\n"
        "print('ready',flush=True)\n"
        "c,a=s.accept();print('accepted',flush=True)\n"
    )])  # fmt: skip
    result = pair.check("matrix", encode(ula))
    assert result.code == 1
    assert result.failed_ids() == ["policy"]
    policy = result.one("policy")
    assert "never-dial" in policy["summary"] and "fd00::/8" in policy["summary"]
    assert "ranges.unsafe_allow" in policy["hint"]
    assert result.checks("tcp") == []
    listener = pair.processes[-1]
    assert listener.poll() is None  # still waiting in accept(): nobody connected


def test_non_canonical_name(pair: Pair) -> None:
    name = _serve(pair, "200:c::15")
    shouting = name.upper().replace(".V6.ALT", ".v6.alt")
    result = pair.check("matrix", shouting)
    assert "resolve.v6alt" in result.failed_ids()
    assert f"canonical spelling {name}" in result.one("resolve.v6alt")["hint"]


def test_secure_range_without_tls(pair: Pair) -> None:
    name = _serve(pair, "200:c::16", "--plain")
    config = pair.root / "v6alt.yaml"
    config.write_text(
        'secure_ranges:\n  - {cidr: "200:c::/64", tls: "off", trust_any_certificate: true}\n'
    )
    result = pair.check("matrix", name, "--config", str(config))
    assert result.code == 0, result.report["checks"]
    assert result.one("tls")["summary"] == "plain HTTP: secure range 200:c::/64 has tls: off"
    # The same server seen with the default policy (TLS required) fails at TLS.
    default = pair.check("matrix", name)
    assert default.failed_ids() == ["tls"]
    assert "tls: true" in default.one("tls")["hint"]


def test_cjdns_name_warns_about_synapse_blocklist(pair: Pair) -> None:
    name = _serve(pair, "fc00:c::17")
    config = pair.root / "v6alt.yaml"
    config.write_text("ranges:\n  cjdns: true\n")
    result = pair.check("matrix", name, "--config", str(config))
    assert result.code == 0, result.report["checks"]
    warning = result.one("policy.synapse_blocklist")
    assert warning["status"] == "warn" and "fc00::/7" in warning["hint"]
    # With the default policy cjdns is not dialled at all.
    refused = pair.check("matrix", name)
    assert refused.failed_ids() == ["policy"]
    assert "ranges.cjdns: true" in refused.one("policy")["summary"]
