"""The sidecar's lookup service over real HTTP (a real `v6alt sidecar` process)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest

pytest.importorskip("twisted", reason="the sidecar needs v6alt[sidecar]")

from v6alt import __version__, encode
from v6alt.lab.local_servers import Sidecar, running_sidecar

pytestmark = pytest.mark.integration

NAME = "fiabbgadu-e.v6.alt"
ADDRESS = "2a00:1098:3a0::1"
CONFIG = """\
secure_ranges:
  - cidr: "200::/7"
    tls: "off"
    trust_any_certificate: true
  - cidr: "2a00:1098::/32"
    tls: required
    trust_any_certificate: false
"""


@pytest.fixture(scope="module")
def sidecar() -> Iterator[Sidecar]:
    with running_sidecar(CONFIG) as running:
        yield running


def request(sidecar: Sidecar, path: str, method: str = "GET") -> tuple[int, str, object]:
    connection = http.client.HTTPConnection("::1", sidecar.lookup_port, timeout=5)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        body = response.read()
        content_type = response.getheader("Content-Type") or ""
        return response.status, content_type, json.loads(body) if body else None
    finally:
        connection.close()


def get(sidecar: Sidecar, endpoint: str, **params: str) -> tuple[int, object]:
    status, content_type, body = request(sidecar, f"{endpoint}?{urlencode(params)}")
    assert content_type == "application/json"
    return status, body


def test_health(sidecar: Sidecar) -> None:
    assert request(sidecar, "/v1/health") == (
        200,
        "application/json",
        {"ok": True, "version": __version__, "verdict": "ok"},
    )


def test_resolve_v6alt(sidecar: Sidecar) -> None:
    status, body = get(sidecar, "/v1/resolve", name=NAME)
    assert status == 200
    assert body == {
        "name": NAME,
        "is_v6alt": True,
        "address": ADDRESS,
        "port": 5269,
        "allowed": True,
        "rule": "allowed: global unicast (2000::/3)",
        "rule_id": "allow_global_unicast",
        "canonical": True,
        "tls_required": True,
        "trust": "ca",  # inside a secure range with trust_any_certificate: false
        "pinning": "off",  # a CA checks it: nothing to pin
        "verdict": "allowed",
    }


def test_resolve_secure_range_and_lenient(sidecar: Sidecar) -> None:
    name = "groups.AIAMVOG6WTHGAQ3CISJOKOIEWU.v6.alt"
    status, body = get(sidecar, "/v1/resolve", name=name)
    assert status == 200 and isinstance(body, dict)
    assert body["address"] == "200:cab8:deb4:ce60:4362:4492:e539:4b5"
    assert body["canonical"] is False
    assert (body["tls_required"], body["trust"]) == (False, "any")


def test_resolve_never_dial(sidecar: Sidecar) -> None:
    status, body = get(sidecar, "/v1/resolve", name="a-e.v6.alt")
    assert status == 200 and isinstance(body, dict)
    assert body["allowed"] is False and "loopback" in body["rule"]
    assert body["verdict"] == "refused"


def test_resolve_other_domain(sidecar: Sidecar) -> None:
    status, body = get(sidecar, "/v1/resolve", name="jabber.example.org")
    assert status == 200 and isinstance(body, dict)
    assert body["is_v6alt"] is False and body["address"] is None and body["port"] is None
    assert body["allowed"] is True and body["rule"] == "not a v6.alt name"
    assert body["trust"] == "ca"
    assert body["verdict"] == "not_v6alt"


@pytest.mark.parametrize("name", ["bad-label1.v6.alt", "a@b", "", "x" * 2000, "host:5269"])
def test_resolve_malformed(sidecar: Sidecar, name: str) -> None:
    status, body = get(sidecar, "/v1/resolve", name=name)
    assert status == 400 and isinstance(body, dict) and body["error"]


def test_peer(sidecar: Sidecar) -> None:
    yggdrasil = "200:cab8:deb4:ce60:4362:4492:e539:4b5"
    ygg_name = "aiamvog6wthgaq3cisjokoiewu.v6.alt"
    status, body = get(sidecar, "/v1/peer", name=ygg_name, address=yggdrasil)
    assert status == 200 and isinstance(body, dict)
    rule = body.pop("rule")
    assert rule.startswith("allowed: ") and "(200::/7)" in rule
    assert body == {
        "name": ygg_name,
        "address": yggdrasil,
        "is_v6alt": True,
        "matches": True,
        "allowed": True,
        "rule_id": "allow_yggdrasil",
        "tls_required": False,
        "trust": "any",
        "pinning": "off",  # Yggdrasil: the address is the key
        "verdict": "allowed",
    }
    mismatch = get(sidecar, "/v1/peer", name=NAME, address="2a01::5")[1]
    assert isinstance(mismatch, dict)
    assert (mismatch["matches"], mismatch["trust"]) == (False, "ca")
    assert mismatch["verdict"] == "mismatch"
    outside = get(sidecar, "/v1/peer", name="ceiqaaaaaairc-rce.v6.alt", address="2a01::5")[1]
    assert isinstance(outside, dict) and outside["matches"] is False


def test_peer_ip_bound_trust_outside_secure_ranges(sidecar: Sidecar) -> None:
    name = encode("2401::1")  # in no secure range
    body = get(sidecar, "/v1/peer", name=name, address="2401::1")[1]
    assert isinstance(body, dict)
    assert (body["matches"], body["trust"], body["tls_required"]) == (True, "ip_bound", True)
    assert body["pinning"] == "enforce"  # public IPv6: pinned by default


def test_peer_ipv4_and_mapped(sidecar: Sidecar) -> None:
    for address in ("192.0.2.1", "::ffff:192.0.2.1"):
        body = get(sidecar, "/v1/peer", name=NAME, address=address)[1]
        assert isinstance(body, dict)
        assert body["address"] == "192.0.2.1"
        assert (body["matches"], body["trust"]) == (False, "ca")


@pytest.mark.parametrize(
    "params",
    [{"name": NAME}, {"address": ADDRESS}, {"name": NAME, "address": "not-an-ip"}],
)
def test_peer_malformed(sidecar: Sidecar, params: dict[str, str]) -> None:
    assert get(sidecar, "/v1/peer", **params)[0] == 400


def test_name(sidecar: Sidecar) -> None:
    assert get(sidecar, "/v1/name", address="2a00:1098:03a0:0::1") == (
        200,
        {"address": ADDRESS, "name": NAME, "verdict": "ok"},
    )
    for bad in ("1.2.3.4", "fe80::1%eth0", "nonsense"):
        status, body = get(sidecar, "/v1/name", address=bad)
        assert status == 400 and isinstance(body, dict) and "error" in body


def test_unknown_path_and_method(sidecar: Sidecar) -> None:
    status, _, body = request(sidecar, "/v2/health")
    assert status == 404 and isinstance(body, dict) and "error" in body
    status, _, body = request(sidecar, "/v1/health", method="POST")
    assert status == 405 and isinstance(body, dict) and "error" in body


def test_repeated_parameter_is_an_error(sidecar: Sidecar) -> None:
    status, _, _ = request(sidecar, f"/v1/name?address={ADDRESS}&address=::2")
    assert status == 400
