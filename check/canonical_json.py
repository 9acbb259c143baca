"""Matrix canonical JSON and the ed25519 self-signature check of a key document.

Canonical JSON (Matrix spec, appendices): keys sorted by code point, no
insignificant whitespace, UTF-8 without escaping non-ASCII, integers only
(within the interoperable range), no floats. The signature covers the
object without its ``signatures`` and ``unsigned`` members.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Final

__all__ = [
    "CanonicalJSONError",
    "canonical_json",
    "signed_bytes",
    "unpadded_base64_decode",
    "verify_ed25519",
    "verify_self_signatures",
]

_MAX_SAFE: Final = 2**53 - 1


class CanonicalJSONError(ValueError):
    """The value has no canonical JSON form (a float, a huge integer, a non-string key)."""


def _check(value: Any, where: str) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if not -_MAX_SAFE <= value <= _MAX_SAFE:
            raise CanonicalJSONError(f"{where}: integer {value} is outside +-(2**53-1)")
        return
    if isinstance(value, float):
        raise CanonicalJSONError(f"{where}: {value!r} is a float; canonical JSON has none")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalJSONError(f"{where}: key {key!r} is not a string")
            _check(item, f"{where}.{key}")
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check(item, f"{where}[{index}]")
        return
    raise CanonicalJSONError(f"{where}: {type(value).__name__} is not a JSON value")


def canonical_json(value: Any) -> bytes:
    """The canonical JSON encoding of ``value`` (UTF-8 bytes)."""
    _check(value, "$")
    text = json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
    )
    return text.encode("utf-8")


def signed_bytes(document: dict[str, Any]) -> bytes:
    """What a Matrix signature signs: the document minus ``signatures`` and ``unsigned``."""
    return canonical_json(
        {k: v for k, v in document.items() if k not in ("signatures", "unsigned")}
    )


def unpadded_base64_decode(text: str) -> bytes:
    """Decode Matrix's unpadded base64 (standard alphabet; URL-safe accepted too)."""
    padded = text + "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not unpadded base64: {text[:40]!r}: {exc}") from None


def verify_ed25519(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """True when ``signature`` is ``public_key``'s ed25519 signature of ``message``.

    Raises :class:`RuntimeError` when the ``cryptography`` package (the
    ``check`` extra) is missing: a signature that was not checked must not
    read as valid.
    """
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:
        raise RuntimeError(
            "ed25519 needs the 'cryptography' package: pip install 'v6alt[check]'"
        ) from None
    if len(public_key) != 32 or len(signature) != 64:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except InvalidSignature:
        return False
    return True


def verify_self_signatures(document: dict[str, Any], server_name: str) -> dict[str, dict[str, Any]]:
    """Check every ed25519 signature ``server_name`` made over the key document
    with the matching key from its own ``verify_keys``.

    Returns ``{key_id: {"valid": bool, "error": str | None}}``; a key with no
    signature, or a signature with no key, is an entry with ``valid`` false.
    """
    results: dict[str, dict[str, Any]] = {}
    keys = document.get("verify_keys")
    signatures = document.get("signatures")
    mine = signatures.get(server_name) if isinstance(signatures, dict) else None
    if not isinstance(keys, dict):
        return {"verify_keys": {"valid": False, "error": "verify_keys is missing or not an object"}}
    if not isinstance(mine, dict):
        return {
            "signatures": {
                "valid": False,
                "error": f"no signatures by {server_name!r} (signed by: "
                f"{', '.join(signatures) if isinstance(signatures, dict) else 'nobody'})",
            }
        }
    try:
        message = signed_bytes(document)
    except CanonicalJSONError as exc:
        return {"document": {"valid": False, "error": f"no canonical JSON form: {exc}"}}
    for key_id in sorted(set(keys) | set(mine)):
        if not key_id.startswith("ed25519:"):
            continue
        results[key_id] = _verify_one(key_id, keys.get(key_id), mine.get(key_id), message)
    if not results:
        results["ed25519"] = {"valid": False, "error": "no ed25519 key in verify_keys"}
    return results


def _verify_one(key_id: str, key: Any, signature: Any, message: bytes) -> dict[str, Any]:
    if not isinstance(key, dict) or not isinstance(key.get("key"), str):
        return {"valid": False, "error": f"{key_id} signed, but verify_keys has no such key"}
    if not isinstance(signature, str):
        return {"valid": False, "error": f"{key_id} is in verify_keys but did not sign"}
    try:
        public = unpadded_base64_decode(key["key"])
        raw = unpadded_base64_decode(signature)
    except ValueError as exc:
        return {"valid": False, "error": str(exc)}
    try:
        valid = verify_ed25519(public, raw, message)
    except RuntimeError as exc:  # cryptography missing: unchecked is not valid
        return {"valid": False, "unchecked": True, "error": f"not checked: {exc}"}
    if valid:
        return {"valid": True, "error": None}
    return {"valid": False, "error": "signature does not verify"}
