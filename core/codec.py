"""The .v6.alt name codec: IPv6 address <-> host name, and the ip6.arpa form.

The encoding is fixed by the deployed implementation (Prosody's community
module), so byte-identity with it matters more than elegance:

1. RFC 4648 base32 of the 16 address bytes, padding dropped, lowercase:
   always 26 characters, the last one of ``aeimquy4`` (2 zero pad bits).
2. The longest run of two or more ``a`` inside ``s[1:25]`` becomes one
   ``-``; on a tie the *last* longest run wins.
3. ``.v6.alt`` is appended.

Everything here is on the hot path of DNS answers and federation requests, so
the base32 work is done on integers with lookup tables instead of
:mod:`base64` (pure Python on 3.10-3.12 and several times slower).
"""

from __future__ import annotations

import re
from ipaddress import IPv6Address
from typing import Final, Union

from .errors import V6AltNameError, excerpt

__all__ = [
    "SUFFIX",
    "AddressLike",
    "decode",
    "decode_label",
    "encode",
    "encode_label",
    "from_reverse_pointer",
    "is_canonical_label",
    "lenient_label_value",
    "to_address",
    "to_reverse_pointer",
]

SUFFIX: Final = ".v6.alt"
LABEL_LENGTH: Final = 26

AddressLike = Union[IPv6Address, str, bytes, int]  # noqa: UP007 (a runtime alias on 3.10)

_ALPHABET: Final = "abcdefghijklmnopqrstuvwxyz234567"
# Python's int() parses base 32 with the digits 0-9a-v ("base32hex"); mapping
# the RFC 4648 alphabet onto it lets int() do the decoding in C.
_TO_BASE32HEX: Final = bytes.maketrans(_ALPHABET.encode(), b"0123456789abcdefghijklmnopqrstuv")
_ALPHABET_BYTES: Final = _ALPHABET.encode()
_PAIRS: Final = tuple(_ALPHABET[v >> 5] + _ALPHABET[v & 31] for v in range(1024))
_MASK30: Final = (1 << 30) - 1
_MAX_INT: Final = (1 << 128) - 1

_RUNS: Final = re.compile("aa+")
_A_RUNS: Final = tuple("a" * n for n in range(LABEL_LENGTH + 2))
_PAD_CHARS: Final = frozenset("aeimquy4")
_A_RUNS_BYTES: Final = tuple(b"a" * n for n in range(LABEL_LENGTH + 2))


def to_address(address: AddressLike) -> IPv6Address:
    """Coerce the accepted address forms to :class:`IPv6Address`.

    Accepts an ``IPv6Address``, its text form, 16 packed bytes, or an int.
    Raises :class:`V6AltNameError` for anything else.
    """
    if isinstance(address, IPv6Address):
        return address
    if isinstance(address, bool):
        raise V6AltNameError(f"not an IPv6 address: {address!r}")
    if isinstance(address, int):
        if 0 <= address <= _MAX_INT:
            return IPv6Address(address)
        raise V6AltNameError(f"integer out of the IPv6 range: {address}")
    if isinstance(address, bytes):
        if len(address) == 16:
            return IPv6Address(address)
        raise V6AltNameError(f"packed IPv6 address must be 16 bytes, got {len(address)}")
    if isinstance(address, str):
        text = address.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        if "%" in text:
            raise V6AltNameError(
                f"zone index not allowed in {excerpt(address)}: names carry no zone"
            )
        try:
            return IPv6Address(text)
        except ValueError:
            raise V6AltNameError(f"not an IPv6 address: {excerpt(address)}") from None
    raise V6AltNameError(f"not an IPv6 address: {address!r}")


def _base32(value: int) -> str:
    n = value << 2  # 130 bits: 26 characters of 5 bits, the last 2 bits are padding
    # Cut into 30-bit pieces first: shifts on one-digit ints are much cheaper
    # than on the 130-bit whole.
    a = n >> 100
    b = (n >> 70) & _MASK30
    c = (n >> 40) & _MASK30
    d = (n >> 10) & _MASK30
    p = _PAIRS
    return (
        f"{p[a >> 20]}{p[(a >> 10) & 1023]}{p[a & 1023]}"
        f"{p[b >> 20]}{p[(b >> 10) & 1023]}{p[b & 1023]}"
        f"{p[c >> 20]}{p[(c >> 10) & 1023]}{p[c & 1023]}"
        f"{p[d >> 20]}{p[(d >> 10) & 1023]}{p[d & 1023]}"
        f"{p[n & 1023]}"
    )


def _compress(s: str) -> str:
    if s.find("aa", 1, 25) < 0:
        return s
    # Every run is only a's, so the greatest string is the longest run; no run
    # is longer, so its rightmost match is the last longest run (the deployed
    # tie rule).
    run = max(_RUNS.findall(s, 1, 25))
    start = s.rfind(run, 1, 25)
    return f"{s[:start]}-{s[start + len(run) :]}"


def encode(address: AddressLike) -> str:
    """Return the canonical ``<label>.v6.alt`` name for an IPv6 address.

    >>> encode("2001:db8::1")
    'eaaq3o-e.v6.alt'
    """
    if type(address) is not IPv6Address:
        address = to_address(address)
    s = _base32(int(address))
    if s.find("aa", 1, 25) < 0:
        return s + SUFFIX
    run = max(_RUNS.findall(s, 1, 25))
    start = s.rfind(run, 1, 25)
    return f"{s[:start]}-{s[start + len(run) :]}.v6.alt"


def encode_label(address: AddressLike) -> str:
    """Return the canonical label (without ``.v6.alt``) for an address."""
    return encode(address)[:-7]


def _expand(label: str) -> str:
    hyphens = label.count("-")
    if hyphens == 0:
        return label
    if hyphens > 1:
        raise V6AltNameError(
            f"label {excerpt(label)} has {hyphens} hyphens; at most one is allowed"
        )
    if len(label) > LABEL_LENGTH:
        raise V6AltNameError(
            f"label {excerpt(label)} is {len(label)} characters; "
            "a label with a hyphen has at most 26"
        )
    return label.replace("-", "a" * (LABEL_LENGTH + 1 - len(label)))


def _value_or_none(expanded: str) -> int | None:
    """The 130-bit value of 26 lowercase base32 characters, or None."""
    raw = expanded.encode()
    if len(raw) != LABEL_LENGTH or raw.translate(None, _ALPHABET_BYTES):
        return None
    # int() would also take "_", signs and white space, but those were just
    # ruled out: only alphabet bytes are left.
    return int(raw.translate(_TO_BASE32HEX), 32)


def _label_value(label: str, expanded: str) -> int:
    value = _value_or_none(expanded)
    if value is not None:
        return value
    if len(expanded) != LABEL_LENGTH:
        raise V6AltNameError(
            f"label {excerpt(label)} expands to {len(expanded)} characters; 26 are required"
        )
    bad = sorted({c for c in expanded if c not in _ALPHABET})
    raise V6AltNameError(
        f"label {excerpt(label)} has characters outside the base32 alphabet a-z2-7: "
        f"{excerpt(''.join(bad))}"
    )


def decode_label(label: str, *, lenient: bool = False) -> IPv6Address:
    """Decode one label (no ``.v6.alt``) to its address.

    Strict mode (the default) accepts only the exact canonical label, so that
    one address has exactly one name. Lenient mode accepts what deployed peers
    accept: any case, one hyphen standing for ``27 - len`` a's (or none), and
    nonzero padding bits.
    """
    if not isinstance(label, str):
        raise V6AltNameError(f"label must be text, got {type(label).__name__}")
    if not label:
        raise V6AltNameError("empty label: a v6.alt name needs the address label before .v6.alt")
    if lenient:
        lowered = label.lower()
        return IPv6Address(_label_value(label, _expand(lowered)) >> 2)
    try:
        value = _label_value(label, _expand(label))
    except V6AltNameError:
        if label == label.lower():
            raise
        # Give the useful reason when the label is fine apart from its case.
        value = _label_value(label, _expand(label.lower()))
        raise V6AltNameError(_non_canonical_reason(label, _compress(_base32(value >> 2)))) from None
    if label[-1] in _PAD_CHARS and _is_compressed_form(label):
        return IPv6Address(value >> 2)
    raise V6AltNameError(_non_canonical_reason(label, _compress(_base32(value >> 2))))


def lenient_label_value(label: bytes) -> int | None:
    """The address a label names in lenient mode, as its 128-bit integer, or None.

    Exactly what ``decode_label(label.decode("ascii"), lenient=True)`` accepts
    (None where it raises, or where the bytes are not ASCII), on bytes and
    without building an :class:`IPv6Address`: the DNS answer path.
    """
    raw = label.lower()
    if b"-" in raw:
        if len(raw) > LABEL_LENGTH or raw.count(b"-") > 1:
            return None
        raw = raw.replace(b"-", _A_RUNS_BYTES[LABEL_LENGTH + 1 - len(raw)])
    elif len(raw) != LABEL_LENGTH:
        return None
    if raw.translate(None, _ALPHABET_BYTES):
        return None
    return int(raw.translate(_TO_BASE32HEX), 32) >> 2


def _is_compressed_form(label: str) -> bool:
    """True when the hyphen (or its absence) is exactly where the encoder puts it.

    Equivalent to ``_compress(expanded) == label`` for a label whose expansion
    is valid base32, without encoding again (strict decode is a hot path).
    """
    p = label.find("-")
    if p < 0:
        return label.find("aa", 1, 25) < 0
    k = LABEL_LENGTH + 1 - len(label)  # how many a's the hyphen stands for
    if k < 2 or p < 1 or p + k > 25:
        return False
    # The run must be maximal inside the candidate zone s[1:25] ...
    if (p >= 2 and label[p - 1] == "a") or (p + k < 25 and label[p + 1] == "a"):
        return False
    # ... no earlier run longer (an equal one loses the tie to this later one)
    # and no later run as long.
    return label.find(_A_RUNS[k + 1], 1, p) < 0 and label.find(_A_RUNS[k], p + 1, 26 - k) < 0


def _non_canonical_reason(label: str, canonical: str) -> str:
    if label.lower() == canonical:
        return f"label {excerpt(label)} is not lowercase; the canonical spelling is {canonical!r}"
    if label[-1:].lower() not in _PAD_CHARS and "-" not in label[-1:]:
        return (
            f"label {excerpt(label)} has nonzero padding bits in its last character; "
            f"the canonical spelling is {canonical!r}"
        )
    return (
        f"label {excerpt(label)} is another spelling of {canonical!r}; only the canonical "
        "form (longest run of a's, the last one on a tie, as one hyphen) names a server"
    )


def is_canonical_label(label: str) -> bool:
    """True when ``label`` is exactly the encoder's output for some address."""
    try:
        decode_label(label)
    except V6AltNameError:
        return False
    return True


def _split_name(name: str) -> str:
    if not isinstance(name, str):
        raise V6AltNameError(f"name must be text, got {type(name).__name__}")
    host = name[:-1] if name.endswith(".") else name
    lowered = host.lower()
    if not lowered.endswith(SUFFIX):
        before, colon, port = host.rpartition(":")
        if colon and port.isdigit() and before.lower().rstrip(".").endswith(SUFFIX):
            raise V6AltNameError(
                f"{excerpt(name)} ends in a port (':{port}'), which is not part of a host name; "
                f"give the name alone: {excerpt(before)}"
            )
        raise V6AltNameError(f"{excerpt(name)} is not under .v6.alt")
    rest = host[: -len(SUFFIX)]
    label = rest.rpartition(".")[2]
    if not label:
        raise V6AltNameError(f"{excerpt(name)} has no address label before .v6.alt")
    return label


def decode(name: str, *, lenient: bool = False) -> IPv6Address:
    """Decode ``[subdomains.]<label>.v6.alt`` to its IPv6 address.

    Only the label right before ``.v6.alt`` carries the address; subdomain
    labels are ignored here (see :mod:`v6alt.names` for them). In strict mode
    the ``.v6.alt`` suffix must be lowercase too, since the whole name is an
    identity string.

    >>> decode("eaaq3o-e.v6.alt")
    IPv6Address('2001:db8::1')
    """
    if not lenient and type(name) is str and name.endswith(SUFFIX):
        # Fast path for the common case, a canonical name; anything odd falls
        # through to the full checks, which also word the error.
        label = name[:-7]
        label = label[label.rfind(".") + 1 :]
        length = len(label)
        expanded = (
            label.replace("-", _A_RUNS[LABEL_LENGTH + 1 - length])
            if 0 < length < LABEL_LENGTH
            else label
        )
        raw = expanded.encode()
        if (
            len(raw) == LABEL_LENGTH
            and not raw.translate(None, _ALPHABET_BYTES)
            and label[-1] in _PAD_CHARS
            and _is_compressed_form(label)
        ):
            return IPv6Address(int(raw.translate(_TO_BASE32HEX), 32) >> 2)
    label = _split_name(name)
    if not lenient and not name.rstrip(".").endswith(SUFFIX):
        raise V6AltNameError(f"{excerpt(name)}: the suffix must be lowercase '.v6.alt'")
    return decode_label(label, lenient=lenient)


def to_reverse_pointer(address: AddressLike) -> str:
    """Return the ``ip6.arpa`` name of an address (no trailing dot)."""
    nibbles = f"{int(to_address(address)):032x}"
    return ".".join(reversed(nibbles)) + ".ip6.arpa"


def from_reverse_pointer(name: str) -> IPv6Address:
    """Parse a full 32-nibble ``ip6.arpa`` name back to its address."""
    if not isinstance(name, str):
        raise V6AltNameError(f"name must be text, got {type(name).__name__}")
    host = name[:-1] if name.endswith(".") else name
    lowered = host.lower()
    if not lowered.endswith(".ip6.arpa"):
        raise V6AltNameError(f"{excerpt(name)} is not under ip6.arpa")
    nibbles = lowered[: -len(".ip6.arpa")].split(".")
    if len(nibbles) != 32:
        raise V6AltNameError(
            f"{excerpt(name)} has {len(nibbles)} nibble labels; a full address needs 32"
        )
    if any(len(n) != 1 or n not in "0123456789abcdef" for n in nibbles):
        raise V6AltNameError(f"{excerpt(name)}: every label before ip6.arpa must be one hex digit")
    return IPv6Address(int("".join(reversed(nibbles)), 16))
