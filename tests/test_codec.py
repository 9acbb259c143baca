from __future__ import annotations

import base64
import contextlib
import re
from ipaddress import IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import v6alt
from tests.vectors import VECTORS
from v6alt import V6AltNameError, codec

addresses = st.integers(min_value=0, max_value=(1 << 128) - 1).map(IPv6Address)
# Addresses with long zero stretches exercise the run compression and ties.
zeroish = st.lists(
    st.sampled_from([0, 0, 0, 0, 1, 0x1111, 0xFFFF, 0x8000, 0x0400]), min_size=8, max_size=8
).map(lambda groups: IPv6Address(":".join(f"{g:x}" for g in groups)))
any_address = st.one_of(addresses, zeroish)


def reference_encode(address: IPv6Address) -> str:
    """A deliberately plain re-statement of the scheme, independent of the codec."""
    s = base64.b32encode(address.packed).decode().rstrip("=").lower()
    best_start, best_len = -1, 1
    for m in re.finditer("a+", s[1:25]):
        if len(m.group()) >= best_len and len(m.group()) >= 2:
            best_start, best_len = m.start() + 1, len(m.group())
    if best_start >= 0:
        s = s[:best_start] + "-" + s[best_start + best_len :]
    return s + ".v6.alt"


@pytest.mark.parametrize(("address", "name"), VECTORS)
def test_vectors_encode(address: str, name: str) -> None:
    assert v6alt.encode(address) == name
    assert v6alt.encode(IPv6Address(address)) == name
    assert v6alt.encode(IPv6Address(address).packed) == name
    assert v6alt.encode(int(IPv6Address(address))) == name
    assert v6alt.encode_label(address) == name.removesuffix(".v6.alt")


@pytest.mark.parametrize(("address", "name"), VECTORS)
def test_vectors_decode(address: str, name: str) -> None:
    assert v6alt.decode(name) == IPv6Address(address)
    assert v6alt.decode(name, lenient=True) == IPv6Address(address)
    assert v6alt.decode("groups." + name) == IPv6Address(address)
    assert v6alt.decode("a.b." + name) == IPv6Address(address)


def test_tie_vectors_take_last_run() -> None:
    # The first longest run would give these spellings; they are not canonical.
    first_run = "appq-kgnaaaaaaaaaa"
    with pytest.raises(V6AltNameError, match="another spelling"):
        v6alt.decode_label(first_run)
    assert v6alt.decode_label(first_run, lenient=True) == IPv6Address("3df::28cd:0:0:0")


@given(any_address)
def test_encode_matches_reference(address: IPv6Address) -> None:
    assert v6alt.encode(address) == reference_encode(address)


@given(any_address)
def test_round_trip_strict_and_lenient(address: IPv6Address) -> None:
    name = v6alt.encode(address)
    assert v6alt.decode(name) == address
    assert v6alt.decode(name, lenient=True) == address
    assert v6alt.decode(name.upper(), lenient=True) == address
    assert len(name.split(".")[0]) <= 26


def other_spellings(address: IPv6Address) -> list[str]:
    """Every other label a lenient peer would map to the same address."""
    full = base64.b32encode(address.packed).decode().rstrip("=").lower()
    spellings = {full}
    for m in re.finditer("a+", full):
        for i in range(m.start(), m.end()):
            for j in range(i + 1, m.end() + 1):
                spellings.add(full[:i] + "-" + full[j:])
    # nonzero padding bits in the last character
    last = codec._ALPHABET.index(full[-1])
    spellings.update(full[:-1] + codec._ALPHABET[last | pad] for pad in (1, 2, 3))
    spellings.discard(v6alt.encode_label(address))
    return sorted(spellings)


@settings(max_examples=200)
@given(any_address)
def test_strict_rejects_every_other_spelling(address: IPv6Address) -> None:
    canonical = v6alt.encode_label(address)
    for label in [*other_spellings(address), canonical.upper()]:
        if label.lower() == canonical and label == canonical:
            continue
        with pytest.raises(V6AltNameError):
            v6alt.decode_label(label)
        with pytest.raises(V6AltNameError):
            v6alt.decode(label + ".v6.alt")
        assert v6alt.decode_label(label, lenient=True) == address


@given(st.text(alphabet="ab27-q.", min_size=0, max_size=30))
def test_strict_accepts_exactly_the_encoder_output(label: str) -> None:
    try:
        lenient = v6alt.decode_label(label, lenient=True)
    except V6AltNameError:
        with pytest.raises(V6AltNameError):
            v6alt.decode_label(label)
        return
    canonical = v6alt.encode_label(lenient) == label
    assert v6alt.is_canonical_label(label) is canonical
    if canonical:
        assert v6alt.decode_label(label) == lenient
    else:
        with pytest.raises(V6AltNameError):
            v6alt.decode_label(label)


@given(st.text(max_size=40))
def test_decode_never_raises_anything_but_name_error(text: str) -> None:
    for lenient in (False, True):
        with contextlib.suppress(V6AltNameError):
            v6alt.decode(text, lenient=lenient)
        with contextlib.suppress(V6AltNameError):
            v6alt.decode(text + ".v6.alt", lenient=lenient)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("eaaq3o-e.example.org", "not under .v6.alt"),
        (".v6.alt", "no address label"),
        ("groups..v6.alt", "no address label"),
        ("eaaq3o--e.v6.alt", "2 hyphens"),
        ("eaaq3o-e-.v6.alt", "2 hyphens"),
        ("eaaq3oe.v6.alt", "26 are required"),
        ("eaaqaaaaaaaaaaaaaaaaaaaq3oe.v6.alt", "26 are required"),
        ("eaaq3o-e1.v6.alt", "outside the base32 alphabet"),
        ("eaaq3o_e.v6.alt", "26 are required"),
        ("EAAQ3O-E.v6.alt", "not lowercase"),
        ("eaaq3o-e.V6.ALT", "suffix must be lowercase"),
        ("eaaq3oaaaaaaaaaaaaaaaaaaaf.v6.alt", "padding bits"),
        ("eaaq3oaaaaaaaaaaaaaaaaaaae.v6.alt", "another spelling"),
        ("eaaq3oaaaa-e.v6.alt", "another spelling"),
        ("a" * 27 + "-.v6.alt", "at most 26"),
        ("é-e.v6.alt", "outside the base32 alphabet"),
        ("eaaq3o-e\n.v6.alt", "outside the base32 alphabet"),
    ],
)
def test_strict_errors_say_what_is_wrong(name: str, reason: str) -> None:
    with pytest.raises(V6AltNameError, match=reason):
        v6alt.decode(name)


@pytest.mark.parametrize(
    "name",
    [
        "EAAQ3O-E.V6.ALT",
        "eaaq3o-e.v6.alt.",
        "eaaq3oaaaaaaaaaaaaaaaaaaae.v6.alt",
        "eaaq3oaaaaaaaaaaaaaaaaaaaf.v6.alt",
        "e-q3oaaaaaaaaaaaaaaaaaaae.v6.alt",
        "eaaq3o-h.v6.alt",
    ],
)
def test_lenient_accepts_peer_spellings(name: str) -> None:
    assert v6alt.decode(name, lenient=True) == IPv6Address("2001:db8::1")


@pytest.mark.parametrize("bad", [None, 1.5, b"eaaq3o-e.v6.alt", ["x"]])
def test_non_text_is_a_name_error(bad: object) -> None:
    with pytest.raises(V6AltNameError):
        v6alt.decode(bad)  # type: ignore[arg-type]
    with pytest.raises(V6AltNameError):
        v6alt.decode_label(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("1.2.3.4", "not an IPv6 address"),
        ("fe80::1%eth0", "zone index"),
        ("2001:db8::g", "not an IPv6 address"),
        (b"\x00" * 15, "16 bytes"),
        (-1, "out of the IPv6 range"),
        (1 << 128, "out of the IPv6 range"),
        (True, "not an IPv6 address"),
        (3.0, "not an IPv6 address"),
    ],
)
def test_encode_rejects_non_addresses(value: object, reason: str) -> None:
    with pytest.raises(V6AltNameError, match=reason):
        v6alt.encode(value)  # type: ignore[arg-type]


def test_encode_accepts_bracketed_literal() -> None:
    assert v6alt.encode("[2001:db8::1]") == "eaaq3o-e.v6.alt"


@given(addresses)
def test_reverse_pointer_round_trip(address: IPv6Address) -> None:
    name = v6alt.to_reverse_pointer(address)
    assert name == address.reverse_pointer
    assert v6alt.from_reverse_pointer(name) == address
    assert v6alt.from_reverse_pointer(name.upper() + ".") == address


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("1.0.0.2.ip6.arpa", "32"),
        ("example.org", "not under ip6.arpa"),
        ("." * 32 + "ip6.arpa", "one hex digit"),
        ("g." * 32 + "ip6.arpa", "one hex digit"),
        ("10." + "0." * 31 + "ip6.arpa", "one hex digit"),
        ("0." * 33 + "ip6.arpa", "33 nibble labels"),
    ],
)
def test_reverse_pointer_errors(name: str, reason: str) -> None:
    with pytest.raises(V6AltNameError, match=reason):
        v6alt.from_reverse_pointer(name)
