from __future__ import annotations

import contextlib
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

import v6alt
from tests.vectors import VECTORS
from v6alt import HostKind, V6AltNameError
from v6alt.names import (
    is_v6alt,
    is_v6alt_server_name,
    parse_matrix_server_name,
    parse_xmpp_domain,
)


@pytest.mark.parametrize(("address", "name"), VECTORS)
def test_matrix_v6alt_names(address: str, name: str) -> None:
    for text, port in ((name, None), (f"{name}:8448", 8448), (f"{name}:1", 1)):
        parsed = parse_matrix_server_name(text)
        assert parsed.kind is HostKind.V6ALT
        assert parsed.address == IPv6Address(address)
        assert parsed.ipv6 == IPv6Address(address)
        assert parsed.port == port
        assert parsed.canonical
        assert parsed.subdomains == ()
        assert parsed.label == name.removesuffix(".v6.alt")
        assert str(parsed) == text


def test_subdomains() -> None:
    parsed = parse_matrix_server_name("groups.chat.fiabbgadu-e.v6.alt:8448")
    assert parsed.subdomains == ("groups", "chat")
    assert parsed.label == "fiabbgadu-e"
    assert parsed.address == IPv6Address("2a00:1098:3a0::1")
    assert parsed.canonical


@pytest.mark.parametrize(
    "text",
    [
        "EAAQ3O-E.v6.alt",
        "eaaq3o-e.V6.alt",
        "Groups.eaaq3o-e.v6.alt",
        "eaaq3oaaaaaaaaaaaaaaaaaaae.v6.alt",
        "eaaq3o-h.v6.alt",
        "eaaq3oaaaaaaaaaaaaaa-e.v6.alt",
    ],
)
def test_non_canonical_spellings_parse_but_are_flagged(text: str) -> None:
    parsed = parse_matrix_server_name(text)
    assert parsed.address == IPv6Address("2001:db8::1")
    assert not parsed.canonical


@pytest.mark.parametrize(
    ("text", "kind", "address", "port"),
    [
        ("[2001:db8::1]", HostKind.IPV6, IPv6Address("2001:db8::1"), None),
        ("[2001:db8::1]:8448", HostKind.IPV6, IPv6Address("2001:db8::1"), 8448),
        ("192.0.2.1:443", HostKind.IPV4, IPv4Address("192.0.2.1"), 443),
        ("matrix.org", HostKind.DNS, None, None),
        ("example.com:65535", HostKind.DNS, None, 65535),
        ("localhost", HostKind.DNS, None, None),
    ],
)
def test_other_matrix_names(text: str, kind: HostKind, address: object, port: int | None) -> None:
    parsed = parse_matrix_server_name(text)
    assert (parsed.kind, parsed.address, parsed.port) == (kind, address, port)
    assert parsed.canonical
    assert not parsed.is_v6alt
    assert str(parsed) == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        (" eaaq3o-e.v6.alt", "white space"),
        ("eaaq3o-e.v6.alt:0", "outside 1-65535"),
        ("eaaq3o-e.v6.alt:65536", "outside 1-65535"),
        ("eaaq3o-e.v6.alt:123456", "1 to 5 digits"),
        ("eaaq3o-e.v6.alt:", "1 to 5 digits"),
        ("eaaq3o-e.v6.alt:-1", "1 to 5 digits"),
        ("eaaq3o-e.v6.alt:\uff18\uff14\uff14\uff18", "1 to 5 digits"),
        ("2001:db8::1", "brackets"),
        ("[2001:db8::1", "unclosed"),
        ("[2001:db8::1]x", "after ']'"),
        ("[2001:db8::g]:80", "not an IPv6 address"),
        ("[fe80::1%eth0]", "zone index"),
        ("bad_label.example", "not a valid DNS label"),
        ("-bad.example", "not a valid DNS label"),
        ("example.com.", "trailing dot"),
        ("a..b", "not a valid DNS label"),
        ("999.1.1.1", "not an IPv4 address"),
        ("x" * 64 + ".example", "not a valid DNS label"),
        ("eaaq3o--e.v6.alt", "2 hyphens"),
        ("bad_sub.eaaq3o-e.v6.alt", "subdomain label"),
        (".eaaq3o-e.v6.alt", "subdomain label"),
        ("v6.alt", "zone itself"),
        (".v6.alt", "no address label"),
        ("eaaq3o-e1.v6.alt", "base32"),
    ],
)
def test_matrix_name_errors(text: str, reason: str) -> None:
    with pytest.raises(V6AltNameError, match=reason):
        parse_matrix_server_name(text)


@pytest.mark.parametrize("bad", [None, 8448, b"example.org"])
def test_matrix_name_rejects_non_text(bad: object) -> None:
    with pytest.raises(V6AltNameError):
        parse_matrix_server_name(bad)  # type: ignore[arg-type]


def test_xmpp_domains() -> None:
    parsed = parse_xmpp_domain("groups.fiabbgadu-e.v6.alt")
    assert parsed.address == IPv6Address("2a00:1098:3a0::1")
    assert parsed.subdomains == ("groups",)
    assert parsed.port is None
    upper = parse_xmpp_domain("FIABBGADU-E.V6.ALT")
    assert upper.address == parsed.address
    assert not upper.canonical
    assert parse_xmpp_domain("fiabbgadu-e.v6.alt.").canonical
    assert parse_xmpp_domain("[2001:db8::1]").kind is HostKind.IPV6
    assert parse_xmpp_domain("jabber.org").kind is HostKind.DNS


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("fiabbgadu-e.v6.alt:5269", "carries no port"),
        ("user@fiabbgadu-e.v6.alt", "no '@' or '/'"),
        ("fiabbgadu-e.v6.alt/res", "no '@' or '/'"),
        ("", "empty"),
        ("fiabbgadu--e.v6.alt", "2 hyphens"),
    ],
)
def test_xmpp_domain_errors(text: str, reason: str) -> None:
    with pytest.raises(V6AltNameError, match=reason):
        parse_xmpp_domain(text)


def test_is_v6alt() -> None:
    assert is_v6alt("x.v6.alt")
    assert is_v6alt("X.V6.ALT.")
    assert not is_v6alt("v6.alt.example")
    assert not is_v6alt("example.org")


@pytest.mark.parametrize(
    ("text", "lenient", "numeric_port_only", "exact"),
    [
        ("x.v6.alt", True, True, True),
        ("x.v6.alt:8448", True, True, True),
        ("groups.x.v6.alt:8448", True, True, True),
        ("X.V6.ALT:8448", True, True, False),
        ("x.v6.alt.", True, True, False),
        ("x.v6.alt:", True, False, True),
        ("x.v6.alt:abc", True, False, True),
        (":x.v6.alt", True, True, True),  # no host before the colon: not a port
        ("x.v6.alt:1:2", False, False, False),  # only the last colon starts a port
        ("example.org:8448", False, False, False),
        ("v6.alt.example", False, False, False),
        ("[2001:db8::1]:8448", False, False, False),
        ("[2001:db8::1]", False, False, False),
        ("", False, False, False),
    ],
)
def test_is_v6alt_server_name(
    text: str, lenient: bool, numeric_port_only: bool, exact: bool
) -> None:
    assert is_v6alt_server_name(text) is lenient
    assert is_v6alt_server_name(text, numeric_port_only=True) is numeric_port_only
    assert is_v6alt_server_name(text, exact=True) is exact


@given(st.text(max_size=40), st.booleans(), st.booleans())
def test_is_v6alt_server_name_agrees_with_the_parser(
    text: str, numeric_port_only: bool, exact: bool
) -> None:
    """Every name the parser reads as a v6.alt name passes (exact: its canonical ones)."""
    for candidate in (text, text + ".v6.alt", text + ".v6.alt:8448"):
        try:
            parsed = parse_matrix_server_name(candidate)
        except V6AltNameError:
            continue
        if parsed.is_v6alt and (parsed.canonical or not exact):
            assert is_v6alt_server_name(candidate, numeric_port_only=numeric_port_only, exact=exact)


@given(st.integers(min_value=0, max_value=(1 << 128) - 1), st.integers(1, 65535))
def test_matrix_round_trip(value: int, port: int) -> None:
    name = v6alt.encode(value)
    parsed = parse_matrix_server_name(f"{name}:{port}")
    assert parsed.canonical
    assert parsed.address == IPv6Address(value)
    assert parsed.port == port


@given(st.text(max_size=60))
def test_parsers_raise_only_name_errors(text: str) -> None:
    for parse in (parse_matrix_server_name, parse_xmpp_domain):
        for candidate in (text, text + ".v6.alt", text + ".v6.alt:8448"):
            with contextlib.suppress(V6AltNameError):
                parse(candidate)
