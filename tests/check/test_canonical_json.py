"""Canonical JSON and the ed25519 self-signature check of key documents."""

from __future__ import annotations

import base64
import importlib.util
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from v6alt.check.canonical_json import (
    CanonicalJSONError,
    canonical_json,
    signed_bytes,
    unpadded_base64_decode,
    verify_ed25519,
    verify_self_signatures,
)

HAVE_CRYPTOGRAPHY = importlib.util.find_spec("cryptography") is not None
HAVE_SIGNEDJSON = importlib.util.find_spec("signedjson") is not None
needs_cryptography = pytest.mark.skipif(not HAVE_CRYPTOGRAPHY, reason="needs v6alt[check]")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({}, "{}"),
        ({"one": 1, "two": "Two"}, '{"one":1,"two":"Two"}'),
        ({"b": "2", "a": "1"}, '{"a":"1","b":"2"}'),
        ({"a": "日本語"}, '{"a":"日本語"}'),
        ({"本": 2, "日": 1}, '{"日":1,"本":2}'),
        ({"a": "\u65e5"}, '{"a":"日"}'),
        ({"a": None, "b": [True, False]}, '{"a":null,"b":[true,false]}'),
        ({"z": {"y": 1, "x": [{"b": 1, "a": 2}]}}, '{"z":{"x":[{"a":2,"b":1}],"y":1}}'),
        ({"ctl": '\x01\n"\\'}, '{"ctl":"\\u0001\\n\\"\\\\"}'),
    ],
)
def test_canonical_json(value: Any, expected: str) -> None:
    assert canonical_json(value) == expected.encode("utf-8")


@pytest.mark.parametrize(
    ("value", "where"),
    [({"a": 1.5}, "$.a"), ({"a": [2**53]}, "$.a[0]"), ({1: "x"}, "$"), ({"a": {1, 2}}, "$.a")],
)
def test_values_without_canonical_form(value: Any, where: str) -> None:
    with pytest.raises(CanonicalJSONError) as raised:
        canonical_json(value)
    assert str(raised.value).startswith(f"{where}: ")


def test_signed_bytes_leave_out_signatures_and_unsigned() -> None:
    document = {"b": 1, "signatures": {"x": {}}, "unsigned": {"age": 1}, "a": 2}
    assert signed_bytes(document) == b'{"a":2,"b":1}'


def test_unpadded_base64() -> None:
    assert unpadded_base64_decode("YQ") == b"a"
    assert unpadded_base64_decode("_-8") == base64.urlsafe_b64decode("_-8=")
    with pytest.raises(ValueError, match="not unpadded base64"):
        unpadded_base64_decode("a!b")


@needs_cryptography
def test_rfc8032_vector() -> None:
    public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    signature = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555"
        "fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    assert verify_ed25519(public, signature, b"")
    assert not verify_ed25519(public, signature, b"x")
    assert not verify_ed25519(public, signature[:-1] + b"\0", b"")
    assert not verify_ed25519(public[:31], signature, b"")


def _signed(server_name: str, document: dict[str, Any]) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    b64 = base64.b64encode(public).decode().rstrip("=")
    document = {**document, "verify_keys": {"ed25519:k": {"key": b64}}}
    signature = base64.b64encode(key.sign(signed_bytes(document))).decode().rstrip("=")
    return {**document, "signatures": {server_name: {"ed25519:k": signature}}}


@needs_cryptography
def test_self_signatures() -> None:
    document = _signed("a.example", {"server_name": "a.example", "valid_until_ts": 1})
    assert verify_self_signatures(document, "a.example") == {
        "ed25519:k": {"valid": True, "error": None}
    }
    tampered = {**document, "valid_until_ts": 2}
    assert verify_self_signatures(tampered, "a.example")["ed25519:k"]["valid"] is False
    other = verify_self_signatures(document, "b.example")
    assert other["signatures"]["error"] == "no signatures by 'b.example' (signed by: a.example)"
    # An unsigned extra key is reported, not ignored.
    extra = json.loads(json.dumps(document))
    extra["verify_keys"]["ed25519:new"] = {"key": "AAAA"}
    result = verify_self_signatures(extra, "a.example")
    assert result["ed25519:new"] == {
        "valid": False,
        "error": "ed25519:new is in verify_keys but did not sign",
    }


@pytest.mark.skipif(not HAVE_SIGNEDJSON, reason="signedjson (from matrix-synapse) not installed")
def test_agrees_with_signedjson() -> None:
    from signedjson.key import generate_signing_key, get_verify_key
    from signedjson.sign import sign_json
    from unpaddedbase64 import encode_base64

    key = generate_signing_key("abc")
    verify = get_verify_key(key)
    document = {
        "server_name": "example.v6.alt",
        "valid_until_ts": 1_900_000_000_000,
        "verify_keys": {"ed25519:abc": {"key": encode_base64(verify.encode())}},
        "old_verify_keys": {},
        "unsigned": {"ignored": "日本"},
    }
    signed = sign_json(document, "example.v6.alt", key)
    assert verify_self_signatures(signed, "example.v6.alt") == {
        "ed25519:abc": {"valid": True, "error": None}
    }


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@pytest.mark.skipif(not HAVE_SIGNEDJSON, reason="canonicaljson (from matrix-synapse) not installed")
@given(json_values)
def test_agrees_with_canonicaljson(value: Any) -> None:
    from canonicaljson import encode_canonical_json

    assert canonical_json(value) == encode_canonical_json(value)
