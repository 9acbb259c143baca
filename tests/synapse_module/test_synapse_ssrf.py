"""A v6.alt name is an IP literal anyone can choose: refusals before any packet.

Homeserver A (documented config) is asked to federate with names that decode
into every never-dial range and into IPv4 forms of 127.0.0.1 and 10.0.0.1;
homeserver C (cjdns enabled, Synapse's own blocklist with an allowlist entry)
shows that Synapse's blocklist applies to v6.alt names and its allowlist is
honoured. Non-canonical names are refused outbound and as inbound origins.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address

import pytest

pytest.importorskip("synapse.app.homeserver", reason="matrix-synapse is not installed")
from v6alt.codec import encode
from v6alt.ipranges import NEVER_DIAL_RANGES

from .homeserver import Homeserver, quote

pytestmark = pytest.mark.integration


def _never_dial_cases() -> list[tuple[IPv6Address, str]]:
    """One address in every never-dial range (with a private embedded IPv4 where
    the range is judged by it), and the IPv4 forms of 127.0.0.1 and 10.0.0.1."""
    cases: list[tuple[IPv6Address, str]] = []
    for special in NEVER_DIAL_RANGES:
        network = special.network
        if special.name == "NAT64":
            address = IPv6Address(int(network.network_address) | int(IPv4Address("10.0.0.1")))
        elif special.name == "6to4":
            address = IPv6Address(int(network.network_address) | int(IPv4Address("10.0.0.1")) << 80)
        elif special.name == "IPv4-compatible":
            address = IPv6Address("::10.0.0.1")
        elif network.num_addresses == 1:
            address = network.network_address
        else:
            address = network.network_address + 1
        cases.append((address, f"never-dial: {special.name}"))
    for ipv4 in ("127.0.0.1", "10.0.0.1"):
        value = int(IPv4Address(ipv4))
        cases += [
            (IPv6Address(f"::ffff:{ipv4}"), "never-dial: IPv4-mapped"),
            (IPv6Address(f"::{ipv4}"), "never-dial: IPv4-compatible"),
            (IPv6Address(int(IPv6Address("64:ff9b::")) | value), "never-dial: NAT64"),
            (IPv6Address(int(IPv6Address("2002::")) | value << 80), "never-dial: 6to4"),
        ]
    cases.append((IPv6Address("fc00::1"), "cjdns (fc00::/8) needs ranges.cjdns: true"))
    return cases


NEVER_DIAL_CASES = _never_dial_cases()


@pytest.fixture(scope="module")
def alice(pair: tuple[Homeserver, Homeserver]) -> str:
    return pair[0].register("alice-ssrf")


def spelled_out(server_name: str) -> str:
    """The same address with the '-' run written out: decodes leniently only."""
    label = server_name[: -len(".v6.alt")]
    return label.replace("-", "a" * (26 - len(label) + 1)) + ".v6.alt"


@pytest.fixture(scope="module")
def c_server(homeserver_with_user: Callable[..., tuple[Homeserver, str]]) -> tuple[Homeserver, str]:
    """C: cjdns allowed by v6alt; Synapse's default blocklist (fc00::/7 in it) with
    fc00:1::/32 on Synapse's allowlist; inbound_ip_binding: enforce."""
    config = {"ranges": {"cjdns": True}, "synapse": {"inbound_ip_binding": "enforce"}}
    return homeserver_with_user(
        "c", "carol", module_config=config, extra={"ip_range_whitelist": ["fc00:1::/32"]}
    )


def _profile(hs: Homeserver, token: str, server_name: str) -> int:
    status, _ = hs.request(
        "GET", f"/_matrix/client/v3/profile/{quote('@x:' + server_name)}", token=token
    )
    return status


@pytest.mark.parametrize(
    ("address", "rule"), NEVER_DIAL_CASES, ids=[str(a) for a, _ in NEVER_DIAL_CASES]
)
def test_never_dial_names_refused_before_any_packet(
    pair: tuple[Homeserver, Homeserver], alice: str, address: IPv6Address, rule: str
) -> None:
    a, _ = pair
    name = encode(address)
    mark = a.log_mark()
    assert _profile(a, alice, name) >= 400
    line = a.wait_for_log(
        rf"v6alt: refused to dial {re.escape(name)} \(address {re.escape(str(address))}\)"
        rf" \[[^]]+\]: [^\n]*{re.escape(rule)}",
        start=mark,
    )
    assert line
    after = a.log_text()[mark:]
    assert f"Failed to connect to {name}" not in after  # no connection was attempted
    assert name not in a.dns_log.read_text()


def test_synapse_blocklist_applies_and_allowlist_is_honoured(
    c_server: tuple[Homeserver, str],
) -> None:
    c, carol = c_server
    blocked = encode("fc00:2::1")  # cjdns allowed by v6alt, fc00::/7 on Synapse's blocklist
    mark = c.log_mark()
    assert _profile(c, carol, blocked) >= 400
    c.wait_for_log(
        rf"v6alt: refused to dial {re.escape(blocked)} .*synapse federation IP blocklist "
        rf"\(fc00::/7\)",
        start=mark,
    )
    allowed = encode("fc00:1::1")  # on Synapse's ip_range_whitelist
    mark = c.log_mark()
    assert _profile(c, carol, allowed) >= 400  # nothing listens there: no route
    c.wait_for_log(rf"Failed to connect to {re.escape(allowed)}:8448", start=mark)
    assert f"refused to dial {allowed}" not in c.log_text()[mark:]


def test_non_canonical_names_refused_outbound(
    pair: tuple[Homeserver, Homeserver], alice: str
) -> None:
    a, b = pair
    label = b.server_name[: -len(".v6.alt")]
    for name in (b.server_name.upper(), label.upper() + ".v6.alt", spelled_out(b.server_name)):
        assert name != b.server_name
        mark = a.log_mark()
        assert _profile(a, alice, name) >= 400
        a.wait_for_log(
            rf"v6alt: refused to dial {re.escape(name)} .*non-canonical v6\.alt name .*"
            rf"canonical name is {re.escape(b.server_name)}",
            start=mark,
        )
        assert f"Failed to connect to {name}" not in a.log_text()[mark:]
        assert b.log_text().count(f"{name}") == 0


def test_subdomain_and_explicit_port_dial_the_decoded_address(
    pair: tuple[Homeserver, Homeserver], alice: str
) -> None:
    a, b = pair
    for name in (f"groups.{b.server_name}", f"a.b.{b.server_name}", f"{b.server_name}:8448"):
        mark = a.log_mark()
        _profile(a, alice, name)  # B is not that server: any answer will do
        host = name.rsplit(":", 1)[0] if name.endswith(":8448") else name
        a.wait_for_log(
            rf"v6alt: TLS peer {re.escape(str(b.address))} accepted for {re.escape(host)} ",
            start=mark,
        )
        assert host not in a.dns_log.read_text()


def _raw_federation_get(host_ns: str, target: Homeserver, origin: str) -> str:
    header = (
        f'Authorization: X-Matrix origin="{origin}",destination="{target.server_name}",'
        'key="ed25519:a_test",sig="c2lnbmF0dXJl"'
    )
    url = (
        f"https://[{target.address}]:8448/_matrix/federation/v1/query/profile"
        f"?user_id={quote('@bob:' + target.server_name)}"
    )
    result = subprocess.run(
        ["ip", "netns", "exec", host_ns, "curl", "-sk", "-H", header, url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result.stdout


def test_non_canonical_origin_refused_inbound(pair: tuple[Homeserver, Homeserver]) -> None:
    a, b = pair
    for origin in (a.server_name.upper(), spelled_out(a.server_name)):
        mark = b.log_mark()
        body = _raw_federation_get(a.host.netns, b, origin)
        assert "Non-canonical v6.alt origin" in body, body
        b.wait_for_log(
            rf"v6alt: refused inbound origin '{re.escape(origin)}': non-canonical", start=mark
        )
        # No key fetch for the refused name was even attempted.
        assert f"refused to dial {origin}" not in b.log_text()[mark:]
