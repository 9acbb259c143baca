"""TLS for v6.alt names: IP-bound trust, secure ranges, plain HTTP ranges.

- D reaches B only through an HTTP CONNECT proxy on D's own address: B's
  real certificate arrives, but the TCP peer is not the address B's name
  encodes, so the handshake must fail.
- H has a secure range over B with ``trust_any_certificate: false``: normal
  CA verification applies and B's self-signed certificate is refused.
- E and F share a ``tls: off`` secure range and plain HTTP listeners: they
  federate without TLS; A (TLS required) cannot reach E.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("synapse.app.homeserver", reason="matrix-synapse is not installed")
from v6alt.lab.netns import FlatNet

from . import connect_proxy
from .homeserver import Homeserver, quote

pytestmark = pytest.mark.integration

PROXY_PORT = 18401


def _profile(hs: Homeserver, token: str, user_id: str) -> tuple[int, object]:
    return hs.request("GET", f"/_matrix/client/v3/profile/{quote(user_id)}", token=token)


@pytest.fixture(scope="module")
def proxied_d(
    mesh: FlatNet,
    start_homeservers: Callable[..., list[Homeserver]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Homeserver, str, Path]]:
    host = mesh["d"]
    data = tmp_path_factory.mktemp("hs-d")
    proxy_log = data / "proxy.log"
    proxy = connect_proxy.start(host, PROXY_PORT, proxy_log)
    try:
        env = {"HTTPS_PROXY": f"http://[{host.address}]:{PROXY_PORT}", "NO_PROXY": ""}
        (d,) = start_homeservers(Homeserver(host, data, env=env))
        yield d, d.register("dave"), proxy_log
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)


def test_wrong_peer_address_fails_the_handshake(
    pair: tuple[Homeserver, Homeserver], proxied_d: tuple[Homeserver, str, Path]
) -> None:
    _, b = pair
    d, dave, proxy_log = proxied_d
    mark, b_mark = d.log_mark(), b.log_mark()
    status, body = _profile(d, dave, b.user_id("bob"))
    assert status >= 400, body
    d.wait_for_log(
        rf"v6alt: TLS refused for {re.escape(b.server_name)}: connected peer "
        rf"{re.escape(str(d.address))} is not {re.escape(str(b.address))}",
        start=mark,
    )
    # The tunnel to B itself was made: the refusal is the peer check, not the proxy.
    assert f"CONNECT {b.server_name}:8448" in proxy_log.read_text()
    assert f"TLS peer {d.address} accepted" not in d.log_text()[mark:]
    assert "query/profile" not in b.log_text()[b_mark:]


@pytest.fixture(scope="module")
def ca_only_h(
    pair: tuple[Homeserver, Homeserver],
    homeserver_with_user: Callable[..., tuple[Homeserver, str]],
) -> tuple[Homeserver, str]:
    _, b = pair
    config = {
        "secure_ranges": [
            {"cidr": f"{b.address}/128", "tls": "required", "trust_any_certificate": False}
        ]
    }
    return homeserver_with_user("h", "heidi", module_config=config)


def test_range_without_certificate_trust_uses_ca_verification(
    pair: tuple[Homeserver, Homeserver], ca_only_h: tuple[Homeserver, str]
) -> None:
    _, b = pair
    h, heidi = ca_only_h
    mark = h.log_mark()
    status, body = _profile(h, heidi, b.user_id("bob"))
    assert status >= 400, body
    h.wait_for_log(
        rf"v6alt: {re.escape(b.server_name)}: certificate checked by Synapse", start=mark
    )
    h.wait_for_log(
        rf"\[{re.escape(b.server_name)}\] Request failed: .*certificate verify failed", start=mark
    )
    assert "TLS peer" not in h.log_text()[mark:]


@pytest.fixture(scope="module")
def plain_pair(
    mesh: FlatNet,
    start_homeservers: Callable[..., list[Homeserver]],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Homeserver, Homeserver, dict[str, str]]:
    e_host, f_host = mesh["e"], mesh["f"]
    config = {
        "secure_ranges": [
            {"cidr": f"{e_host.address}/128", "tls": "off", "trust_any_certificate": True},
            {"cidr": f"{f_host.address}/128", "tls": "off", "trust_any_certificate": True},
        ]
    }
    e, f = start_homeservers(
        Homeserver(
            e_host, tmp_path_factory.mktemp("hs-e"), module_config=config, federation_tls=False
        ),
        Homeserver(
            f_host, tmp_path_factory.mktemp("hs-f"), module_config=config, federation_tls=False
        ),
    )
    return e, f, {"erin": e.register("erin"), "frank": f.register("frank")}


def test_tls_off_secure_range_federates_over_plain_http(
    plain_pair: tuple[Homeserver, Homeserver, dict[str, str]],
) -> None:
    e, f, tokens = plain_pair
    status, body = _profile(e, tokens["erin"], f.user_id("frank"))
    assert status == 200, body
    status, body = _profile(f, tokens["frank"], e.user_id("erin"))
    assert status == 200, body
    e.wait_for_log(rf"v6alt: {re.escape(f.server_name)}: plain HTTP to {re.escape(str(f.address))}")
    # F served E's query on its plain listener.
    f.wait_for_request(e.address, "query/profile", scheme="http")


def test_tls_off_secure_range_applies_to_ipv6_literal_server_names(
    plain_pair: tuple[Homeserver, Homeserver, dict[str, str]],
) -> None:
    e, f, tokens = plain_pair
    literal = f"[{f.address}]"
    e_mark, f_mark = e.log_mark(), f.log_mark()
    # F is not that server name, so it refuses the request: it must still arrive
    # over plain HTTP, on F's plain listener.
    _profile(e, tokens["erin"], f"@frank:{literal}")
    e.wait_for_log(
        rf"v6alt: {re.escape(str(f.address))}: plain HTTP to {re.escape(str(f.address))}",
        start=e_mark,
    )
    f.wait_for_request(
        e.address, r"query/profile\?user_id=%40frank%3A%5B", scheme="http", start=f_mark
    )


def test_tls_required_peer_cannot_use_a_plain_listener(
    pair: tuple[Homeserver, Homeserver],
    plain_pair: tuple[Homeserver, Homeserver, dict[str, str]],
) -> None:
    a, _ = pair
    e, _, _ = plain_pair
    token = a.register("alice-tls")
    mark = a.log_mark()
    status, body = _profile(a, token, e.user_id("erin"))
    assert status >= 400, body
    # A's ClientHello never makes an HTTP request line: the request times out (10 s).
    a.wait_for_log(rf"\[{re.escape(e.server_name)}\] Request failed", start=mark)
    assert not re.search(rf"access\.http\.8448 - INFO - {re.escape(str(a.address))} ", e.log_text())
