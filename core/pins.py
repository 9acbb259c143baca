"""Pinning (trust on first use) of v6.alt peers: the decisions, pure.

A v6.alt peer trusted by its address (IP-bound trust) is only as safe as the
route to that address. For Yggdrasil node addresses (200::/8) and cjdns
(fc00::/8) the address is derived from the node's key, so the address is the
key; in a routed Yggdrasil subnet (300::/8) any host on the LAN it is
advertised to can take any of its addresses, and on public IPv6 whoever
answers at the address is believed. Pinning remembers what answered the
first time:

- the TLS public key (SHA-256 of the DER SubjectPublicKeyInfo, hex), for
  both protocols;
- for Matrix, the server's ed25519 verify keys (``verify_keys`` of its
  ``/_matrix/key/v2/server`` response).

On a later contact with a different key, ``enforce`` refuses, ``warn`` logs
and goes on (the pin is kept, so every contact warns), ``off`` does nothing.

Key rotation (Matrix signing keys only) is accepted without the admin when
the new key response is signed by a pinned key, verified with the *pinned*
public key: only the holder of the pinned private key can produce that.
Synapse signs its key response with every key in its signing key file, so
the rotation is: add the new key to the file beside the old one, run both
until peers have fetched the keys, then retire the old one. Listing the old
key in ``old_verify_keys`` proves nothing (anyone can copy a public key) and
is ignored. A TLS key change has no such proof and needs the admin
(``v6alt pins forget NAME``). See docs/security.md for the argument.

This module decides; reading and writing the pin file is
:mod:`v6alt.pin_store`, checking signatures is the adapter's job (it passes
the ids of the pinned keys whose signature verified).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Final, Literal

from .config import PinningMode
from .errors import V6AltError

__all__ = [
    "PIN_FILE_FORMAT",
    "Pin",
    "PinCheck",
    "PinFileError",
    "PinStatus",
    "Protocol",
    "check_keys",
    "check_tls",
    "fingerprint_text",
    "pins_from_json",
    "pins_to_json",
]

Protocol = Literal["matrix", "xmpp"]
PIN_FILE_FORMAT: Final = 1
_PROTOCOLS: Final = ("matrix", "xmpp")
_HEX: Final = frozenset("0123456789abcdef")
#: How many change notes a pin keeps (rotations, first keys).
HISTORY_LIMIT: Final = 16


class PinFileError(V6AltError):
    """The pin file is unreadable or malformed (the reason says where)."""


@dataclass(frozen=True)
class Pin:
    """What answered for ``name`` on first contact (and accepted rotations)."""

    name: str
    protocol: Protocol
    address: str
    spki_sha256: str | None = None
    verify_keys: Mapping[str, str] = field(default_factory=dict)
    first_seen_ms: int = 0
    updated_ms: int = 0
    history: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "protocol": self.protocol,
            "address": self.address,
            "spki_sha256": self.spki_sha256,
            "verify_keys": dict(sorted(self.verify_keys.items())),
            "first_seen_ms": self.first_seen_ms,
            "updated_ms": self.updated_ms,
            "history": list(self.history),
        }


class PinStatus(str, Enum):
    NEW = "new"  # nothing pinned yet: pinned now
    MATCH = "match"  # the pinned key answered
    ROTATED = "rotated"  # a new key set signed by a pinned key: pin replaced
    MISMATCH = "mismatch"  # another key, without proof: enforce refuses
    OFF = "off"  # pinning off for this peer


@dataclass(frozen=True)
class PinCheck:
    """The outcome of one check.

    ``accept``: may the connection / key response be used. ``store``: the pin
    to write (None: nothing changes). ``message``: the log line (None: nothing
    worth logging), at warning level when ``status`` is MISMATCH.
    """

    status: PinStatus
    mode: PinningMode
    accept: bool
    store: Pin | None = None
    message: str | None = None


def fingerprint_text(kind: str, value: str | None) -> str:
    return f"{kind} {value}" if value else f"{kind} (none pinned)"


def _note(pin: Pin | None, now_ms: int, text: str) -> tuple[str, ...]:
    old = pin.history if pin is not None else ()
    return (*old, f"{now_ms} {text}")[-HISTORY_LIMIT:]


def _keys_text(keys: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(keys.items())) or "(none)"


def _mismatch(
    mode: PinningMode,
    *,
    what: str,
    name: str,
    address: str,
    old: str,
    new: str,
    accept_hint: str,
) -> PinCheck:
    enforce = mode == "enforce"
    action = "refused" if enforce else "accepted anyway (pinning: warn), pin kept"
    message = (
        f"pinned {what} changed for {name} at [{address}]: pinned {old}, presented {new}; "
        f"{action}. If {name} changed its key on purpose, accept the new one with: "
        f"{accept_hint}"
    )
    return PinCheck(PinStatus.MISMATCH, mode, accept=not enforce, message=message)


def _new_pin(pin: Pin | None, name: str, protocol: Protocol, address: str, now_ms: int) -> Pin:
    if pin is not None:
        return pin
    return Pin(name, protocol, address, first_seen_ms=now_ms, updated_ms=now_ms)


def check_tls(
    pin: Pin | None,
    *,
    name: str,
    protocol: Protocol,
    address: str,
    spki_sha256: str,
    mode: PinningMode,
    now_ms: int,
    accept_hint: str,
) -> PinCheck:
    """Judge the TLS key ``spki_sha256`` presented by ``name`` at ``address``.

    There is no proof a TLS key change could carry: any change needs the admin.
    """
    if mode == "off":
        return PinCheck(PinStatus.OFF, mode, accept=True)
    if pin is None or pin.spki_sha256 is None:
        base = _new_pin(pin, name, protocol, address, now_ms)
        stored = replace(
            base,
            spki_sha256=spki_sha256,
            updated_ms=now_ms,
            history=_note(pin, now_ms, f"tls pinned sha256 {spki_sha256} at [{address}]"),
        )
        message = f"first contact with {name} at [{address}]: pinned TLS key sha256 {spki_sha256}"
        return PinCheck(PinStatus.NEW, mode, accept=True, store=stored, message=message)
    if pin.spki_sha256 == spki_sha256:
        return PinCheck(PinStatus.MATCH, mode, accept=True)
    return _mismatch(
        mode,
        what="TLS key",
        name=name,
        address=address,
        old=f"sha256 {pin.spki_sha256}",
        new=f"sha256 {spki_sha256}",
        accept_hint=accept_hint,
    )


def check_keys(
    pin: Pin | None,
    *,
    name: str,
    address: str,
    presented: Mapping[str, str],
    signed_by_pinned: Collection[str],
    mode: PinningMode,
    now_ms: int,
    accept_hint: str,
) -> PinCheck:
    """Judge a Matrix key response: ``presented`` is its ``verify_keys`` (key id
    -> unpadded base64 public key), ``signed_by_pinned`` the ids of *pinned*
    keys whose signature on the response verified with the pinned public key.

    - nothing pinned yet: pin ``presented``;
    - signed by a pinned key: the responder holds a pinned private key; the
      same keys are a match, other keys a rotation (the pin becomes
      ``presented``);
    - otherwise: a mismatch, whatever the response lists (``old_verify_keys``
      and copies of pinned public keys prove nothing).
    """
    if mode == "off":
        return PinCheck(PinStatus.OFF, mode, accept=True)
    if not presented:
        return PinCheck(
            PinStatus.MISMATCH,
            mode,
            accept=mode != "enforce",
            message=f"key response of {name} at [{address}] lists no verify key",
        )
    keys = dict(presented)
    if pin is None or not pin.verify_keys:
        base = _new_pin(pin, name, "matrix", address, now_ms)
        stored = replace(
            base,
            verify_keys=keys,
            updated_ms=now_ms,
            history=_note(pin, now_ms, f"signing keys pinned: {_keys_text(keys)}"),
        )
        message = (
            f"first contact with {name} at [{address}]: pinned signing keys {_keys_text(keys)}"
        )
        return PinCheck(PinStatus.NEW, mode, accept=True, store=stored, message=message)
    proven = [k for k in signed_by_pinned if k in pin.verify_keys]
    if proven:
        if keys == dict(pin.verify_keys):
            return PinCheck(PinStatus.MATCH, mode, accept=True)
        stored = replace(
            pin,
            verify_keys=keys,
            updated_ms=now_ms,
            history=_note(
                pin,
                now_ms,
                f"signing keys rotated to {_keys_text(keys)} (signed by pinned "
                f"{', '.join(sorted(proven))})",
            ),
        )
        message = (
            f"{name} at [{address}] rotated its signing keys: pinned "
            f"{_keys_text(pin.verify_keys)}, now {_keys_text(keys)}; accepted: the new key "
            f"response is signed by the pinned key {', '.join(sorted(proven))}"
        )
        return PinCheck(PinStatus.ROTATED, mode, accept=True, store=stored, message=message)
    return _mismatch(
        mode,
        what="signing key",
        name=name,
        address=address,
        old=_keys_text(pin.verify_keys),
        new=f"{_keys_text(keys)} (not signed by a pinned key)",
        accept_hint=accept_hint,
    )


# --- the file format --------------------------------------------------------


def pins_to_json(pins: Mapping[str, Pin]) -> str:
    """The pin file's text: ``{"format": 1, "pins": {name: pin}}``, sorted, one
    pin per block, so a diff of two versions reads well."""
    data = {
        "format": PIN_FILE_FORMAT,
        "pins": {name: pins[name].to_dict() for name in sorted(pins)},
    }
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def _fail(where: str, reason: str) -> PinFileError:
    return PinFileError(f"{where}: {reason}" if where else reason)


def _text(item: Mapping[str, Any], key: str, where: str, *, optional: bool = False) -> Any:
    value = item.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise _fail(f"{where}.{key}", f"expected a non-empty string, got {value!r:.40}")
    return value


def _int(item: Mapping[str, Any], key: str, where: str) -> int:
    value = item.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(f"{where}.{key}", f"expected a non-negative integer, got {value!r:.40}")
    return value


def _pin_from_dict(name: str, item: object) -> Pin:
    where = f"pins.{name}"
    if not isinstance(item, dict):
        raise _fail(where, "expected an object")
    if item.get("name", name) != name:
        raise _fail(f"{where}.name", f"{item.get('name')!r:.60} differs from its key")
    protocol = item.get("protocol")
    if protocol not in _PROTOCOLS:
        raise _fail(f"{where}.protocol", f"expected 'matrix' or 'xmpp', got {protocol!r:.40}")
    spki = _text(item, "spki_sha256", where, optional=True)
    if spki is not None and (len(spki) != 64 or not set(spki) <= _HEX):
        raise _fail(f"{where}.spki_sha256", "expected 64 lowercase hex digits")
    keys = item.get("verify_keys", {})
    if not isinstance(keys, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k and v for k, v in keys.items()
    ):
        raise _fail(f"{where}.verify_keys", "expected an object of key id -> base64 key")
    history = item.get("history", [])
    if not isinstance(history, list) or not all(isinstance(h, str) for h in history):
        raise _fail(f"{where}.history", "expected a list of strings")
    return Pin(
        name=name,
        protocol="matrix" if protocol == "matrix" else "xmpp",
        address=_text(item, "address", where),
        spki_sha256=spki,
        verify_keys=dict(keys),
        first_seen_ms=_int(item, "first_seen_ms", where),
        updated_ms=_int(item, "updated_ms", where),
        history=tuple(history),
    )


def pins_from_json(text: str) -> dict[str, Pin]:
    """Parse a pin file's text; an empty text is an empty store.

    Raises :class:`PinFileError` naming the place of the first problem: a
    malformed pin file is never half read.
    """
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as e:
        raise _fail("", f"not JSON ({e})") from None
    if not isinstance(data, dict):
        raise _fail("", "expected a JSON object")
    if data.get("format") != PIN_FILE_FORMAT:
        raise _fail("format", f"expected {PIN_FILE_FORMAT}, got {data.get('format')!r:.40}")
    pins = data.get("pins", {})
    if not isinstance(pins, dict):
        raise _fail("pins", "expected an object")
    return {name: _pin_from_dict(name, item) for name, item in pins.items()}
