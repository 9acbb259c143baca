from __future__ import annotations

import logging
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from v6alt.codec import encode
from v6alt.config import (
    Config,
    ConfigError,
    PinningSettings,
    RangeSettings,
    SecureRange,
    parse_config,
)
from v6alt.errors import V6AltNameError
from v6alt.ipranges import NEVER_DIAL_RANGES, PrefixTable, never_dial_containing
from v6alt.names import parse_matrix_server_name
from v6alt.policy import NEVER_DIAL, DialDecision, Policy, Trust, range_pinning_defaults

OUTSIDE = "not allowed: outside ranges.allow (200::/7, 2000::/3)"
YGG = "allowed: yggdrasil (200::/7)"
GUA = "allowed: global unicast (2000::/3)"
MAX = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"

DEFAULT = Policy()


def policy(**data: Any) -> Policy:
    return Policy(parse_config(data))


# --- the default table ----------------------------------------------------------

DEFAULT_TABLE = [
    # unspecified, loopback, IPv4-compatible
    ("::", "never-dial: unspecified (::/128)"),
    ("::1", "never-dial: loopback (::1/128)"),
    ("::2", "never-dial: IPv4-compatible (::/96)"),
    ("::ffff:ffff", "never-dial: IPv4-compatible (::/96)"),
    ("::1:0:0", OUTSIDE),
    # IPv4-mapped
    ("::fffe:ffff:ffff", OUTSIDE),
    ("::ffff:0:0", "never-dial: IPv4-mapped (::ffff:0:0/96)"),
    ("::ffff:ffff:ffff", "never-dial: IPv4-mapped (::ffff:0:0/96)"),
    ("::1:0:0:0", OUTSIDE),
    # IPv4-mapped and -compatible forms of 127.0.0.1 and 10.0.0.1
    ("::ffff:127.0.0.1", "never-dial: IPv4-mapped (::ffff:0:0/96)"),
    ("::ffff:10.0.0.1", "never-dial: IPv4-mapped (::ffff:0:0/96)"),
    ("::ffff:8.8.8.8", "never-dial: IPv4-mapped (::ffff:0:0/96)"),
    ("::127.0.0.1", "never-dial: IPv4-compatible (::/96)"),
    ("::10.0.0.1", "never-dial: IPv4-compatible (::/96)"),
    # NAT64: refused when the embedded IPv4 is not global, else just outside allow
    ("64:ff9b::10.0.0.1", "never-dial: NAT64 of non-global IPv4 10.0.0.1 (64:ff9b::/96)"),
    ("64:ff9b::127.0.0.1", "never-dial: NAT64 of non-global IPv4 127.0.0.1 (64:ff9b::/96)"),
    ("64:ff9b::", "never-dial: NAT64 of non-global IPv4 0.0.0.0 (64:ff9b::/96)"),
    ("64:ff9b::100.64.0.1", "never-dial: NAT64 of non-global IPv4 100.64.0.1 (64:ff9b::/96)"),
    ("64:ff9b::ffff:ffff", "never-dial: NAT64 of non-global IPv4 255.255.255.255"),
    ("64:ff9b::8.8.8.8", OUTSIDE),
    ("64:ff9b::1:0:0", OUTSIDE),
    ("64:ff9b:1::", "never-dial: local-use NAT64 (64:ff9b:1::/48)"),
    ("64:ff9b:1:ffff:ffff:ffff:ffff:ffff", "never-dial: local-use NAT64 (64:ff9b:1::/48)"),
    ("64:ff9b:2::", OUTSIDE),
    ("100::", "never-dial: discard-only (100::/64)"),
    ("100::ffff:ffff:ffff:ffff", "never-dial: discard-only (100::/64)"),
    ("100:0:0:1::", OUTSIDE),
    # Yggdrasil edges
    ("1ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", OUTSIDE),
    ("200::", YGG),
    ("3ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", YGG),
    ("400::", OUTSIDE),
    # global unicast edges and the never-dial ranges inside it
    ("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", OUTSIDE),
    ("2000::", GUA),
    ("2001::", "never-dial: Teredo (2001::/32)"),
    ("2001:0:ffff:ffff:ffff:ffff:ffff:ffff", "never-dial: Teredo (2001::/32)"),
    ("2001:1::", GUA),
    ("2001:2::", "never-dial: benchmarking (2001:2::/48)"),
    ("2001:2:0:ffff:ffff:ffff:ffff:ffff", "never-dial: benchmarking (2001:2::/48)"),
    ("2001:2:1::", GUA),
    ("2001:20::", "never-dial: ORCHIDv2 (2001:20::/28)"),
    ("2001:2f:ffff:ffff:ffff:ffff:ffff:ffff", "never-dial: ORCHIDv2 (2001:20::/28)"),
    ("2001:30::", GUA),
    ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", GUA),
    ("2001:db8::", "never-dial: documentation (2001:db8::/32)"),
    ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "never-dial: documentation (2001:db8::/32)"),
    ("2001:db9::", GUA),
    ("2002::", "never-dial: 6to4 of non-global IPv4 0.0.0.0 (2002::/16)"),
    ("2002:a00:1::", "never-dial: 6to4 of non-global IPv4 10.0.0.1 (2002::/16)"),
    ("2002:c0a8:101::1", "never-dial: 6to4 of non-global IPv4 192.168.1.1 (2002::/16)"),
    ("2002:7f00:1::", "never-dial: 6to4 of non-global IPv4 127.0.0.1 (2002::/16)"),
    ("2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "never-dial: 6to4 of non-global"),
    ("2002:808:808::1", GUA),
    ("2a00:1098:3a0::1", GUA),
    ("3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", GUA),
    ("3fff::", "never-dial: documentation (3fff::/20)"),
    ("3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", "never-dial: documentation (3fff::/20)"),
    ("3fff:1000::", GUA),
    ("3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", GUA),
    ("4000::", OUTSIDE),
    # the fc00::/7 .. ff00::/8 block
    ("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", OUTSIDE),
    ("fc00::", "not allowed: cjdns (fc00::/8) needs ranges.cjdns: true"),
    (
        "fcff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "not allowed: cjdns (fc00::/8) needs ranges.cjdns: true",
    ),
    ("fd00::", "never-dial: ULA (fd00::/8)"),
    ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "never-dial: ULA (fd00::/8)"),
    ("fe00::", OUTSIDE),
    ("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", OUTSIDE),
    ("fe80::", "never-dial: link-local (fe80::/10)"),
    ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "never-dial: link-local (fe80::/10)"),
    ("fec0::", "never-dial: site-local (fec0::/10)"),
    ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "never-dial: site-local (fec0::/10)"),
    ("ff00::", "never-dial: multicast (ff00::/8)"),
    ("ff02::1", "never-dial: multicast (ff00::/8)"),
    (MAX, "never-dial: multicast (ff00::/8)"),
]


@pytest.mark.parametrize(("address", "rule"), DEFAULT_TABLE)
def test_default_table(address: str, rule: str) -> None:
    allowed, got = DEFAULT.check_address(address)
    assert got.startswith(rule)
    assert allowed is rule.startswith("allowed:")


def test_every_never_dial_range_is_in_the_table() -> None:
    # Each built-in range must be exercised at both its ends by DEFAULT_TABLE.
    tested = {IPv6Address(a) for a, _ in DEFAULT_TABLE}
    for network, _name in NEVER_DIAL:
        assert network.network_address in tested, network
        assert network.broadcast_address in tested, network


@pytest.mark.parametrize("special", NEVER_DIAL_RANGES, ids=lambda s: str(s.network))
def test_never_dial_is_refused_even_when_allow_covers_everything(special: Any) -> None:
    wide = policy(ranges={"allow": ["::/0"], "cjdns": True})
    address = (
        special.network.broadcast_address
    )  # non-global IPv4 255.255.255.255 for the embedding ranges
    allowed, rule = wide.check_address(address)
    assert not allowed
    assert rule.startswith(f"never-dial: {special.name}")
    assert rule.endswith(f"({special.network})")


def test_never_dial_table_matches_contract() -> None:
    names = {str(n): name for n, name in NEVER_DIAL}
    for cidr in [
        "::/128", "::1/128", "fe80::/10", "ff00::/8", "fec0::/10", "2001:db8::/32", "3fff::/20",
        "::ffff:0:0/96", "::/96", "64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "fd00::/8",
        "2001::/32",
    ]:  # fmt: skip
        assert cidr in names
    assert "fc00::/8" not in names
    # The embedding ranges must not sit inside another never-dial range: a global
    # embedded IPv4 goes straight to ranges.allow.
    for special in NEVER_DIAL_RANGES:
        if special.embedded_ipv4 is not None:
            others = [s for s in NEVER_DIAL_RANGES if s is not special]
            assert not any(special.network.subnet_of(s.network) for s in others)


# --- address forms -------------------------------------------------------------------


@pytest.mark.parametrize(
    "form",
    [
        IPv6Address("200::1"),
        "200::1",
        "[200::1]",
        int(IPv6Address("200::1")),
        IPv6Address("200::1").packed,
    ],
)
def test_address_forms_agree(form: Any) -> None:
    assert DEFAULT.check_address(form) == (True, YGG)
    assert DEFAULT.decide(form).address == IPv6Address("200::1")


@pytest.mark.parametrize("bad", ["10.0.0.1", "not an address", "fe80::1%eth0", b"\x00", -1])
def test_bad_address_raises(bad: Any) -> None:
    with pytest.raises(V6AltNameError):
        DEFAULT.check_address(bad)
    with pytest.raises(V6AltNameError):
        DEFAULT.decide(bad)


# --- configuration changes the table ---------------------------------------------


def test_cjdns_on() -> None:
    p = policy(ranges={"cjdns": True})
    assert p.check_address("fc00::1") == (True, "allowed: cjdns (fc00::/8)")
    assert p.check_address("fcff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")[0]
    assert p.check_address("fd00::1") == (False, "never-dial: ULA (fd00::/8)")
    assert p.check_address("4000::") == (
        False,
        "not allowed: outside ranges.allow (200::/7, 2000::/3, fc00::/8)",
    )


def test_cjdns_through_allow_list() -> None:
    p = policy(ranges={"allow": ["fc00::/8"]})
    assert p.check_address("fc12::1") == (True, "allowed: cjdns (fc00::/8)")
    assert p.check_address("200::1") == (False, "not allowed: outside ranges.allow (fc00::/8)")


def test_custom_allow_and_nat64() -> None:
    p = policy(ranges={"allow": ["2a00::/16", "64:ff9b::/96"]})
    assert p.check_address("2a00::1") == (True, "allowed: ranges.allow (2a00::/16)")
    assert p.check_address("64:ff9b::8.8.8.8") == (True, "allowed: ranges.allow (64:ff9b::/96)")
    assert p.check_address("64:ff9b::10.0.0.1") == (
        False,
        "never-dial: NAT64 of non-global IPv4 10.0.0.1 (64:ff9b::/96)",
    )
    assert p.check_address("200::1") == (
        False,
        "not allowed: outside ranges.allow (2a00::/16, 64:ff9b::/96)",
    )


def test_empty_allow_refuses_everything() -> None:
    p = policy(ranges={"allow": []})
    assert p.check_address("200::1") == (False, "not allowed: outside ranges.allow (empty)")


def test_unsafe_allow_lifts_loopback_only() -> None:
    p = policy(ranges={"unsafe_allow": ["::1/128"]})
    assert p.check_address("::1") == (
        True,
        "allowed: ranges.unsafe_allow (::1/128) lifts never-dial loopback (::1/128)",
    )
    assert p.check_address("::") == (False, "never-dial: unspecified (::/128)")
    assert p.check_address("::2") == (False, "never-dial: IPv4-compatible (::/96)")
    assert p.check_address("200::1") == (True, YGG)


def test_unsafe_allow_part_of_a_range() -> None:
    p = policy(ranges={"unsafe_allow": ["fd00:1::/32", "::/96"]})
    assert p.check_address("fd00:1::5")[0]
    assert p.check_address("fd00:2::5") == (False, "never-dial: ULA (fd00::/8)")
    # A lifted ::/96 leaves its more specific loopback range in force.
    assert p.check_address("::1") == (False, "never-dial: loopback (::1/128)")
    assert p.check_address("::10.0.0.1") == (
        True,
        "allowed: ranges.unsafe_allow (::/96) lifts never-dial IPv4-compatible (::/96)",
    )


def test_unsafe_allow_lifts_nat64_of_private_ipv4() -> None:
    p = policy(ranges={"unsafe_allow": ["64:ff9b::a00:0/104"]})
    assert p.check_address("64:ff9b::10.1.2.3") == (
        True,
        "allowed: ranges.unsafe_allow (64:ff9b::a00:0/104) lifts never-dial NAT64 (64:ff9b::/96)",
    )
    assert not p.check_address("64:ff9b::192.168.0.1")[0]


def test_unsafe_allow_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="v6alt.policy"):
        policy(ranges={"unsafe_allow": ["fe80::/64"]})
    assert "fe80::/64" in caplog.text
    assert "link-local" in caplog.text


def test_policy_refuses_unsafe_allow_outside_never_dial() -> None:
    # A Config built in code skips parse_config; the policy still fails closed.
    config = Config(ranges=RangeSettings(unsafe_allow=(IPv6Network("2a00::/16"),)))
    with pytest.raises(ConfigError) as caught:
        Policy(config)
    assert caught.value.path == ("ranges", "unsafe_allow", 0)


# --- secure ranges and trust -------------------------------------------------------

SECURE = {
    "secure_ranges": [
        {"cidr": "200::/7", "tls": "off", "trust_any_certificate": True},
        {"cidr": "200:1::/32", "tls": "required", "trust_any_certificate": False},
        {"cidr": "200:1:2::/48", "tls": "required", "trust_any_certificate": True},
    ]
}


@pytest.mark.parametrize(
    ("address", "cidr"),
    [
        ("200::1", "200::/7"),
        ("3ff::1", "200::/7"),
        ("200:1::1", "200:1::/32"),
        ("200:1:3::1", "200:1::/32"),
        ("200:1:2::1", "200:1:2::/48"),
        ("200:1:2:ffff:ffff:ffff:ffff:ffff", "200:1:2::/48"),
        ("2a00::1", None),
    ],
)
def test_secure_range_most_specific_wins(address: str, cidr: str | None) -> None:
    found = policy(**SECURE).secure_range_for(address)
    assert (None if found is None else str(found.network)) == cidr


def test_secure_range_order_does_not_matter() -> None:
    reordered = policy(secure_ranges=list(reversed(SECURE["secure_ranges"])))
    found = reordered.secure_range_for("200:1:2::1")
    assert found is not None and str(found.network) == "200:1:2::/48"


def test_trust_ip_bound_for_matching_v6alt_name() -> None:
    address = IPv6Address("200:cab8:deb4:ce60:4362:4492:e539:4b5")
    name = encode(address)
    for server_name in (name, f"{name}:8448", parse_matrix_server_name(name), f"groups.{name}"):
        decision = DEFAULT.decide(address, server_name)
        assert decision == DialDecision(address, True, YGG, True, Trust.IP_BOUND, None)


@pytest.mark.parametrize(
    "server_name", [None, "matrix.example.org", "[200::1]:8448", encode("200::2")]
)
def test_trust_ca_without_a_matching_name(server_name: str | None) -> None:
    decision = DEFAULT.decide("200::1", server_name)
    assert decision.trust is Trust.CA
    assert decision.tls_required is True
    assert decision.secure_range is None


def test_trust_ca_when_ip_bound_trust_is_off() -> None:
    p = policy(ip_bound_trust=False)
    assert p.decide("200::1", encode("200::1")).trust is Trust.CA


def test_trust_from_secure_range() -> None:
    p = policy(**SECURE)
    off = p.decide("200::1", encode("200::1"))
    assert (off.tls_required, off.trust) == (False, Trust.ANY)
    assert off.secure_range == SecureRange(IPv6Network("200::/7"), "off", True)
    # trust_any_certificate: false demands a CA even for a matching v6.alt name.
    ca = p.decide("200:1::1", encode("200:1::1"))
    assert (ca.tls_required, ca.trust) == (True, Trust.CA)
    anycert = p.decide("200:1:2::1")
    assert (anycert.tls_required, anycert.trust) == (True, Trust.ANY)
    outside = p.decide("2a00::1", encode("2a00::1"))
    assert (outside.tls_required, outside.trust) == (True, Trust.IP_BOUND)


@pytest.mark.parametrize("tls", ["off", "required"])
def test_a_range_that_does_not_say_trust_any_certificate_lifts_no_check(tls: str) -> None:
    p = policy(secure_ranges=[{"cidr": "2a00::/16", "tls": tls}])
    # A DNS name or a literal keeps the CA check, whatever the range's tls says.
    for server_name in (None, "matrix.example.org", "[2a00::1]:8448"):
        decision = p.decide("2a00::1", server_name)
        assert (decision.trust, decision.tls_required) == (Trust.CA, tls == "required")
    # A v6.alt name at its own address keeps IP-bound trust, and its pinning.
    own = p.decide("2a00::1", encode("2a00::1"))
    assert (own.trust, own.pinning) == (Trust.IP_BOUND, "enforce")


# --- pinning modes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "mode"),
    [
        ("200:cab8:deb4:ce60:4362:4492:e539:4b5", "off"),  # Yggdrasil: the address is the key
        ("2ff::1", "off"),
        # A routed Yggdrasil subnet: any host on its LAN can take the address.
        ("300:cab8:deb4:ce60::1", "enforce"),
        ("3ff::1", "enforce"),
        ("fc00::1", "off"),  # cjdns
        ("2a00:1098:3a0::1", "enforce"),  # public
        ("2001:67c::1", "enforce"),
    ],
)
def test_pinning_default_by_range(address: str, mode: str) -> None:
    p = policy(ranges={"cjdns": True})
    assert p.pinning_for(address)[0] == mode
    assert p.decide(address, encode(address)).pinning == mode


def test_pinning_rules_name_the_range() -> None:
    assert DEFAULT.pinning_for("200::1") == (
        "off",
        "pinning off: yggdrasil node (200::/8) addresses are keys",
    )
    assert DEFAULT.pinning_for("300::1") == (
        "enforce",
        "pinning enforce: yggdrasil subnet (300::/8) addresses are not keys: pinning.default",
    )
    assert policy(pinning={"default": "off"}).pinning_for("300::1")[0] == "off"


def test_300_subnets_are_dialled_as_before() -> None:
    # Only trust differs: 300::/8 is still allowed by 200::/7 and trusted by its address.
    decision = DEFAULT.decide("300:1::5", encode("300:1::5"))
    assert (decision.allowed, decision.rule, decision.rule_id) == (
        True,
        "allowed: yggdrasil (200::/7)",
        "allow_yggdrasil",
    )
    assert (decision.trust, decision.pinning) == (Trust.IP_BOUND, "enforce")


def test_a_secure_range_pinning_overrides_the_range_default_whatever_its_length() -> None:
    p = policy(
        secure_ranges=[
            {"cidr": "200::/7", "pinning": "enforce"},
            {"cidr": "300:1::/64", "pinning": "off"},
            {"cidr": "::/1", "pinning": "warn"},
        ]
    )
    assert p.pinning_for("200::1") == ("enforce", "pinning enforce: secure range 200::/7")
    assert p.pinning_for("300::1")[0] == "enforce"
    assert p.pinning_for("300:1::1") == ("off", "pinning off: secure range 300:1::/64")
    assert p.pinning_for("fc00::1")[0] == "off"  # outside every secure range
    assert policy(secure_ranges=[{"cidr": "::/0", "pinning": "warn"}]).pinning_for("fc00::1") == (
        "warn",
        "pinning warn: secure range ::/0",
    )


def test_range_pinning_defaults_follow_pinning_default() -> None:
    rows = range_pinning_defaults(PinningSettings("warn"))
    assert [(str(r.network), r.name, r.mode) for r in rows] == [
        ("200::/8", "yggdrasil node", "off"),
        ("300::/8", "yggdrasil subnet", "warn"),
        ("fc00::/8", "cjdns", "off"),
    ]


def test_pinning_only_for_v6alt_names_trusted_without_a_ca() -> None:
    p = policy(secure_ranges=[{"cidr": "2a00:2::/32", "trust_any_certificate": False}])
    assert p.decide("2a00::1").pinning == "off"  # no name
    assert p.decide("2a00::1", "matrix.example.org").pinning == "off"  # a DNS name: CA
    assert p.decide("2a00::1", encode("2a00::2")).pinning == "off"  # not its address: CA
    assert p.decide("2a00:2::1", encode("2a00:2::1")).pinning == "off"  # CA range
    assert policy(ip_bound_trust=False).decide("2a00::1", encode("2a00::1")).pinning == "off"


def test_pinning_per_range_and_default() -> None:
    p = policy(
        pinning={"default": "warn"},
        secure_ranges=[
            {"cidr": "2a00:1::/32", "pinning": "off"},
            {"cidr": "2a00:1:2::/48", "pinning": "enforce"},
            {"cidr": "200:1::/32", "pinning": "enforce"},
            {"cidr": "2a00:3::/32", "trust_any_certificate": True},
        ],
    )
    assert p.pinning_for("2a00::1") == ("warn", "pinning warn: pinning.default")
    assert p.pinning_for("2a00:1::1")[0] == "off"
    assert p.pinning_for("2a00:1:2::1")[0] == "enforce"
    assert p.pinning_for("200:1::1") == ("enforce", "pinning enforce: secure range 200:1::/32")
    assert p.pinning_for("200:2::1")[0] == "off"
    anycert = p.decide("2a00:3::1", encode("2a00:3::1"))
    assert (anycert.trust, anycert.pinning) == (Trust.ANY, "warn")


def test_refused_address_still_gets_a_full_decision() -> None:
    decision = DEFAULT.decide("::1", encode("::1"))
    assert decision.allowed is False
    assert decision.rule == "never-dial: loopback (::1/128)"
    assert decision.tls_required is True


def test_decide_rejects_malformed_server_name() -> None:
    with pytest.raises(V6AltNameError):
        DEFAULT.decide("200::1", "bad name:99999")


# --- decide_name -------------------------------------------------------------------------


def test_decide_name_canonical_and_lenient_spellings() -> None:
    expected = DEFAULT.decide_name("ai-e.v6.alt")
    assert expected.address == IPv6Address("200::1")
    assert expected.trust is Trust.IP_BOUND
    for spelling in [
        "AI-E.v6.alt",
        "aiaaaaaaaaaaaaaaaaaaaaaaae.v6.alt",
        "ai-e.v6.alt:8448",
        "x.ai-e.v6.alt",
    ]:
        assert DEFAULT.decide_name(spelling) == expected


def test_decide_name_refused_address() -> None:
    decision = DEFAULT.decide_name(encode("fd00::1"))
    assert decision.allowed is False
    assert decision.rule == "never-dial: ULA (fd00::/8)"


def test_decide_name_ipv6_literal() -> None:
    decision = DEFAULT.decide_name("[200::1]:8448")
    assert decision.address == IPv6Address("200::1")
    assert decision.allowed is True
    assert decision.trust is Trust.CA


def test_decide_name_dns_name_raises() -> None:
    with pytest.raises(V6AltNameError, match=r"'matrix\.org' is not a v6\.alt name or IP literal"):
        DEFAULT.decide_name("matrix.org:8448")


def test_decide_name_ipv4_literal_raises() -> None:
    with pytest.raises(V6AltNameError, match="IPv4 literal"):
        DEFAULT.decide_name("10.0.0.1:8448")


def test_decide_name_malformed_raises() -> None:
    with pytest.raises(V6AltNameError):
        DEFAULT.decide_name("a--b.v6.alt")


# --- properties: the fast lookup against a plain scan --------------------------------


def reference_lookup(entries: list[tuple[IPv6Network, int]], address: IPv6Address) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, value)
    for network, value in entries:  # later entries win ties, as documented
        if address in network and (best is None or network.prefixlen >= best[0]):
            best = (network.prefixlen, value)
    return None if best is None else best[1]


networks = st.builds(
    lambda value, length: IPv6Network((value >> (128 - length) << (128 - length), length)),
    st.integers(0, 2**128 - 1),
    st.integers(0, 128),
)


@st.composite
def table_and_address(draw: st.DrawFn) -> tuple[list[tuple[IPv6Network, int]], IPv6Address]:
    entries = draw(st.lists(st.tuples(networks, st.integers(0, 9)), max_size=12))
    if entries and draw(st.booleans()):
        network = draw(st.sampled_from(entries))[0]
        offset = draw(st.integers(0, network.num_addresses - 1))
        return entries, network.network_address + offset
    return entries, IPv6Address(draw(st.integers(0, 2**128 - 1)))


@given(table_and_address())
def test_prefix_table_is_longest_match(
    case: tuple[list[tuple[IPv6Network, int]], IPv6Address],
) -> None:
    entries, address = case
    assert PrefixTable(entries).lookup(int(address)) == reference_lookup(entries, address)


def near_special_ranges() -> st.SearchStrategy[IPv6Address]:
    bases = [s.network for s in NEVER_DIAL_RANGES] + [
        IPv6Network("200::/7"),
        IPv6Network("2000::/3"),
    ]
    near = st.builds(
        lambda network, delta: IPv6Address(
            min(max(int(network.network_address) + delta, 0), 2**128 - 1)
        ),
        st.sampled_from(bases),
        st.integers(-(2**40), 2**40),
    )
    return st.one_of(near, st.integers(0, 2**128 - 1).map(IPv6Address))


@given(near_special_ranges())
def test_default_policy_invariants(address: IPv6Address) -> None:
    allowed, rule = DEFAULT.check_address(address)
    special = never_dial_containing(IPv6Network(address))
    if allowed:
        assert address in IPv6Network("200::/7") or address in IPv6Network("2000::/3")
        if special is not None:  # only a global embedded IPv4 passes
            assert special.embedded_ipv4 is not None
            assert special.embedded_ipv4(int(address)).is_global
    elif special is not None and special.embedded_ipv4 is None:
        assert rule.startswith(f"never-dial: {special.name} (")


@given(st.integers(0, 2**32 - 1).map(IPv4Address))
def test_nat64_and_6to4_follow_is_global(ipv4: IPv4Address) -> None:
    wide = policy(ranges={"allow": ["::/0"]})
    nat64 = IPv6Address(int(IPv6Address("64:ff9b::")) | int(ipv4))
    six_to_four = IPv6Address(int(IPv6Address("2002::")) | int(ipv4) << 80 | 1)
    assert wide.check_address(nat64)[0] is ipv4.is_global
    assert wide.check_address(six_to_four)[0] is ipv4.is_global
