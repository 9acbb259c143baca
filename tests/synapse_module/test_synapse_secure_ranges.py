"""Secure ranges for server names whose address comes from DNS (or a literal).

N is a homeserver with the DNS server name ``hs-j.v6.test`` and a
self-signed certificate for it; the dialling homeservers' DNS recorders
answer that name with N's mesh address. The range decision must bind to the
address the connection really reaches, not to the name:

- K has ``trust_any_certificate: true`` over N's address: federation works;
  the same range trusts B's IPv6-literal server name, and a DNS name that
  resolves outside every range keeps stock verification;
- L has the range with ``trust_any_certificate: false``: stock
  verification refuses N's self-signed certificate;
- M has K's range but reaches N through an HTTP CONNECT proxy on its own
  address: the TCP peer is outside the range, so stock verification applies;
- K has a ``tls: off`` range over L: a DNS name resolving there still gets
  TLS (Synapse picks TLS before it resolves), and the module says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import Popen

import pytest

pytest.importorskip("synapse.app.homeserver", reason="matrix-synapse is not installed")
from v6alt.lab.netns import FlatNet

from . import connect_proxy
from .homeserver import Homeserver, quote
from .matrix import has_message, send, shared_room

pytestmark = pytest.mark.integration

N_NAME = "hs-j.v6.test"
ELSEWHERE = "elsewhere.v6.test"  # resolves to A: outside every range of K
PLAIN = "plain.v6.test"  # resolves to L: inside K's `tls: off` range
PROXY_PORT = 18402


def _profile(hs: Homeserver, token: str, user_id: str) -> tuple[int, object]:
    return hs.request("GET", f"/_matrix/client/v3/profile/{quote(user_id)}", token=token)


def _range(address: object, **settings: object) -> dict[str, object]:
    return {"cidr": f"{address}/128", **settings}


class Servers:
    def __init__(self, n: Homeserver, k: Homeserver, l_: Homeserver, m: Homeserver) -> None:
        self.n, self.k, self.l, self.m = n, k, l_, m
        self.tokens = {hs.server_name: hs.register("user") for hs in (n, k, l_, m)}
        self.proxy_log = m.data_dir / "proxy.log"

    def token(self, hs: Homeserver) -> str:
        return self.tokens[hs.server_name]


@pytest.fixture(scope="module")
def servers(
    mesh: FlatNet,
    pair: tuple[Homeserver, Homeserver],
    start_homeservers: Callable[..., list[Homeserver]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Servers]:
    a, b = pair
    j, k, l_, m = (mesh[name] for name in ("j", "k", "l", "m"))
    n_range = _range(j.address, tls="required", trust_any_certificate=True)
    k_config = {
        "secure_ranges": [
            n_range,
            _range(b.address, trust_any_certificate=True),
            _range(l_.address, tls="off", trust_any_certificate=True),
        ],
    }
    l_config = {"secure_ranges": [_range(j.address, trust_any_certificate=False)]}
    m_data: Path = tmp_path_factory.mktemp("hs-m")
    proxy: Popen[str] | None = None
    try:
        n, k_hs, l_hs, m_hs = start_homeservers(
            Homeserver(j, tmp_path_factory.mktemp("hs-n"), server_name=N_NAME),
            Homeserver(
                k,
                tmp_path_factory.mktemp("hs-k"),
                module_config=k_config,
                dns_records={
                    N_NAME: str(j.address),
                    ELSEWHERE: str(a.address),
                    PLAIN: str(l_.address),
                },
            ),
            Homeserver(
                l_,
                tmp_path_factory.mktemp("hs-l"),
                module_config=l_config,
                dns_records={N_NAME: str(j.address)},
            ),
            Homeserver(
                m,
                m_data,
                module_config={"secure_ranges": [n_range]},
                dns_records={N_NAME: str(j.address)},
                env={"HTTPS_PROXY": f"http://[{m.address}]:{PROXY_PORT}", "NO_PROXY": ""},
            ),
        )
        # After M's DNS recorder: `ip netns exec` binds the resolv.conf at start.
        proxy = connect_proxy.start(m, PROXY_PORT, m_data / "proxy.log")
        yield Servers(n, k_hs, l_hs, m_hs)
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(timeout=10)


def test_dns_name_in_trust_any_range_federates(servers: Servers) -> None:
    n, k = servers.n, servers.k
    room_id = shared_room(k, servers.token(k), n, servers.token(n), "user")
    send(k, servers.token(k), room_id, "from k to the DNS-named server")
    n.wait_for("K's message", lambda: has_message(n, servers.token(n), room_id,
               "from k to the DNS-named server"))  # fmt: skip
    send(n, servers.token(n), room_id, "from the DNS-named server to k")
    k.wait_for("N's message", lambda: has_message(k, servers.token(k), room_id,
               "from the DNS-named server to k"))  # fmt: skip
    # The name went through DNS, and the certificate was lifted for N's address.
    assert N_NAME in k.dns_log.read_text().split()
    k.wait_for_log(
        rf"v6alt: TLS peer {re.escape(str(n.address))} accepted for {re.escape(N_NAME)} "
        rf"without CA check \(any: secure range {re.escape(str(n.address))}/128\)"
    )


def _refused_by_ca_check(
    servers: Servers, requester: Homeserver, target: Homeserver, user_id: str, name: str
) -> None:
    """``requester`` asks ``name`` for ``user_id``'s profile: Synapse's own CA check
    refuses the handshake, no peer check approves it, ``target`` never sees the query."""
    mark, target_mark = requester.log_mark(), target.log_mark()
    status, body = _profile(requester, servers.token(requester), user_id)
    assert status >= 400, body
    requester.wait_for_log(
        rf"\[{re.escape(name)}\] Request failed: .*certificate verify failed", start=mark
    )
    assert "TLS peer" not in requester.log_text()[mark:]
    assert "query/profile" not in target.log_text()[target_mark:]


def test_dns_name_in_range_without_certificate_trust_is_refused(servers: Servers) -> None:
    _refused_by_ca_check(servers, servers.l, servers.n, servers.n.user_id("user"), N_NAME)


def test_range_trust_binds_to_the_connected_peer_not_the_name(servers: Servers) -> None:
    _refused_by_ca_check(servers, servers.m, servers.n, servers.n.user_id("user"), N_NAME)
    # The tunnel reached N: the refusal is the peer check at M's own (proxy) address.
    assert f"CONNECT {N_NAME}:8448" in servers.proxy_log.read_text()


def test_dns_name_outside_every_range_keeps_stock_verification(
    pair: tuple[Homeserver, Homeserver], servers: Servers
) -> None:
    a, _ = pair
    _refused_by_ca_check(servers, servers.k, a, f"@alice:{ELSEWHERE}", ELSEWHERE)


def _reaches_over_tls(
    servers: Servers, target: Homeserver, user_id: str, logged: str, request: str
) -> None:
    """K asks for ``user_id``'s profile: K logs ``logged`` (regex) and the request
    reaches ``target``'s TLS listener (its access log line matches ``request``)."""
    k = servers.k
    mark, target_mark = k.log_mark(), target.log_mark()
    _profile(k, servers.token(k), user_id)
    k.wait_for_log(logged, start=mark)
    target.wait_for_request(k.address, request, start=target_mark)


def test_ipv6_literal_server_name_in_trust_any_range(
    pair: tuple[Homeserver, Homeserver], servers: Servers
) -> None:
    _, b = pair
    # B is not that server name, so it refuses the request: it must still arrive
    # over TLS with B's self-signed certificate accepted.
    _reaches_over_tls(
        servers,
        b,
        f"@bob:[{b.address}]",
        rf"v6alt: TLS peer {re.escape(str(b.address))} accepted for "
        rf"\[{re.escape(str(b.address))}\] without CA check \(any: ",
        r"query/profile\?user_id=%40bob%3A%5B",
    )


def test_dns_name_into_a_tls_off_range_still_uses_tls(servers: Servers) -> None:
    l_ = servers.l
    # The range still trusts any certificate: the request reaches L's TLS listener.
    _reaches_over_tls(
        servers,
        l_,
        f"@user:{PLAIN}",
        rf"v6alt: {re.escape(PLAIN)}: peer {re.escape(str(l_.address))} is in secure range "
        rf"{re.escape(str(l_.address))}/128 \(tls: off\), but .* TLS is used",
        r"query/profile\?user_id=%40user%3Aplain",
    )
