"""The pin decisions (v6alt.pins): every status, every mode, the rotation rule, the file format."""

from __future__ import annotations

import json
from typing import Any

import pytest

from v6alt.config import PinningMode
from v6alt.pins import (
    Pin,
    PinCheck,
    PinFileError,
    PinStatus,
    check_keys,
    check_tls,
    pins_from_json,
    pins_to_json,
)

NAME = "fiabbgadu-e.v6.alt"
ADDRESS = "2a00:1098:3a0::1"
OLD = "a" * 64
NEW = "b" * 64
HINT = f"v6alt pins forget {NAME} --file /var/lib/pins.json"
MODES: tuple[PinningMode, ...] = ("enforce", "warn", "off")


def tls(pin: Pin | None, spki: str, mode: PinningMode, now: int = 2000) -> PinCheck:
    return check_tls(
        pin,
        name=NAME,
        protocol="xmpp",
        address=ADDRESS,
        spki_sha256=spki,
        mode=mode,
        now_ms=now,
        accept_hint=HINT,
    )


def keys(
    pin: Pin | None,
    presented: dict[str, str],
    signed_by: tuple[str, ...],
    mode: PinningMode = "enforce",
) -> PinCheck:
    return check_keys(
        pin,
        name=NAME,
        address=ADDRESS,
        presented=presented,
        signed_by_pinned=signed_by,
        mode=mode,
        now_ms=3000,
        accept_hint=HINT,
    )


PINNED = Pin(NAME, "matrix", ADDRESS, OLD, {"ed25519:a": "KEYA"}, 1000, 1000, ("1000 first",))


# --- TLS ---------------------------------------------------------------------------


def test_tls_first_contact_pins() -> None:
    for mode in ("enforce", "warn"):
        check = tls(None, NEW, mode)
        assert (check.status, check.accept) == (PinStatus.NEW, True)
        assert check.store is not None
        assert (check.store.spki_sha256, check.store.first_seen_ms) == (NEW, 2000)
        assert (check.store.name, check.store.address, check.store.protocol) == (
            NAME,
            ADDRESS,
            "xmpp",
        )
        assert check.message is not None and NEW in check.message


def test_tls_first_key_added_to_a_pin_that_has_only_signing_keys() -> None:
    only_keys = Pin(NAME, "matrix", ADDRESS, None, {"ed25519:a": "KEYA"}, 1000, 1000)
    check = tls(only_keys, NEW, "enforce")
    assert check.status is PinStatus.NEW and check.store is not None
    assert check.store.verify_keys == {"ed25519:a": "KEYA"}
    assert (check.store.spki_sha256, check.store.first_seen_ms) == (NEW, 1000)


@pytest.mark.parametrize("mode", ["enforce", "warn"])
def test_tls_match_accepts_and_writes_nothing(mode: PinningMode) -> None:
    check = tls(PINNED, OLD, mode)
    assert check == PinCheck(PinStatus.MATCH, mode, accept=True)


def test_tls_mismatch_enforce_refuses_and_says_how_to_accept() -> None:
    check = tls(PINNED, NEW, "enforce")
    assert (check.status, check.accept, check.store) == (PinStatus.MISMATCH, False, None)
    assert check.message is not None
    for part in (NAME, ADDRESS, OLD, NEW, "refused", HINT):
        assert part in check.message


def test_tls_mismatch_warn_accepts_and_keeps_the_pin() -> None:
    check = tls(PINNED, NEW, "warn")
    assert (check.status, check.accept, check.store) == (PinStatus.MISMATCH, True, None)
    assert check.message is not None and "pin kept" in check.message and OLD in check.message


@pytest.mark.parametrize("pin", [None, PINNED])
@pytest.mark.parametrize("spki", [OLD, NEW])
def test_tls_off_does_nothing(pin: Pin | None, spki: str) -> None:
    assert tls(pin, spki, "off") == PinCheck(PinStatus.OFF, "off", accept=True)


# --- Matrix signing keys -------------------------------------------------------------


def test_keys_first_contact_pins_the_verify_keys() -> None:
    tls_only = Pin(NAME, "matrix", ADDRESS, OLD, {}, 1000, 1000)
    for pin in (None, tls_only):
        check = keys(pin, {"ed25519:a": "KEYA"}, ())
        assert (check.status, check.accept) == (PinStatus.NEW, True)
        assert check.store is not None and check.store.verify_keys == {"ed25519:a": "KEYA"}
    assert check.store.spki_sha256 == OLD  # the TLS pin stays


def test_keys_same_keys_signed_by_the_pinned_key_match() -> None:
    check = keys(PINNED, {"ed25519:a": "KEYA"}, ("ed25519:a",))
    assert check == PinCheck(PinStatus.MATCH, "enforce", accept=True)


def test_keys_rotation_signed_by_the_pinned_key_is_accepted() -> None:
    # Synapse with the old and the new key in its signing key file: both listed,
    # the response signed by both.
    presented = {"ed25519:a": "KEYA", "ed25519:b": "KEYB"}
    check = keys(PINNED, presented, ("ed25519:a",))
    assert (check.status, check.accept) == (PinStatus.ROTATED, True)
    assert check.store is not None and check.store.verify_keys == presented
    assert check.store.spki_sha256 == OLD and check.store.first_seen_ms == 1000
    assert "signed by pinned ed25519:a" in check.store.history[-1]
    # Then the old key retires: the new one alone, signed by the (now pinned) new key.
    later = keys(check.store, {"ed25519:b": "KEYB"}, ("ed25519:b",))
    assert later.status is PinStatus.ROTATED and later.store is not None
    assert later.store.verify_keys == {"ed25519:b": "KEYB"}


@pytest.mark.parametrize(
    ("presented", "signed_by", "what"),
    [
        ({"ed25519:b": "KEYB"}, (), "a new key, no proof"),
        ({"ed25519:a": "KEYA", "ed25519:b": "KEYB"}, (), "the old public key copied, unsigned"),
        ({"ed25519:a": "EVIL"}, (), "the pinned key id with other key bytes"),
        ({"ed25519:a": "KEYA"}, (), "the pinned key listed but not signing"),
        ({"ed25519:b": "KEYB"}, ("ed25519:b",), "signed only by the new key"),
        ({"ed25519:b": "KEYB"}, ("ed25519:z",), "a signature id that is not pinned"),
    ],
)
def test_keys_change_without_a_pinned_signature_is_a_mismatch(
    presented: dict[str, str], signed_by: tuple[str, ...], what: str
) -> None:
    enforce = keys(PINNED, presented, signed_by, "enforce")
    assert (enforce.status, enforce.accept, enforce.store) == (PinStatus.MISMATCH, False, None)
    assert enforce.message is not None and "KEYA" in enforce.message and HINT in enforce.message
    warn = keys(PINNED, presented, signed_by, "warn")
    assert (warn.status, warn.accept, warn.store) == (PinStatus.MISMATCH, True, None)


def test_keys_response_without_keys_is_refused_under_enforce() -> None:
    assert keys(PINNED, {}, (), "enforce").accept is False
    assert keys(None, {}, (), "enforce").accept is False
    assert keys(PINNED, {}, (), "warn").accept is True


@pytest.mark.parametrize("signed_by", [(), ("ed25519:a",)])
def test_keys_off_does_nothing(signed_by: tuple[str, ...]) -> None:
    check = keys(PINNED, {"ed25519:b": "KEYB"}, signed_by, "off")
    assert check == PinCheck(PinStatus.OFF, "off", accept=True)


def test_history_is_bounded() -> None:
    pin: Pin | None = None
    for i in range(40):
        presented = {f"ed25519:{i}": f"K{i}"}
        signed = (f"ed25519:{i - 1}",) if i else ()
        check = keys(pin, presented, signed)
        assert check.accept
        pin = check.store
    assert pin is not None and len(pin.history) == 16


# --- the file format -----------------------------------------------------------------


def test_file_round_trip() -> None:
    pins = {
        NAME: PINNED,
        "other.v6.alt": Pin("other.v6.alt", "xmpp", "2a00::2", NEW, {}, 5, 6, ()),
    }
    text = pins_to_json(pins)
    assert pins_from_json(text) == pins
    data = json.loads(text)
    assert data["format"] == 1 and list(data["pins"]) == sorted(pins)


def test_empty_file_is_an_empty_store() -> None:
    assert pins_from_json("") == {} and pins_from_json("\n") == {}


def _with(**change: Any) -> str:
    item = PINNED.to_dict()
    item.update(change)
    return json.dumps({"format": 1, "pins": {NAME: item}})


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("{", "not JSON"),
        ("[]", "expected a JSON object"),
        ('{"format": 2, "pins": {}}', "format"),
        ('{"format": 1, "pins": []}', "pins"),
        (_with(protocol="smtp"), f"pins.{NAME}.protocol"),
        (_with(spki_sha256="ABC"), f"pins.{NAME}.spki_sha256"),
        (_with(spki_sha256="A" * 64), f"pins.{NAME}.spki_sha256"),
        (_with(address=""), f"pins.{NAME}.address"),
        (_with(verify_keys=["x"]), f"pins.{NAME}.verify_keys"),
        (_with(verify_keys={"ed25519:a": 1}), f"pins.{NAME}.verify_keys"),
        (_with(first_seen_ms=-1), f"pins.{NAME}.first_seen_ms"),
        (_with(first_seen_ms=True), f"pins.{NAME}.first_seen_ms"),
        (_with(history="x"), f"pins.{NAME}.history"),
        (_with(name="other.v6.alt"), f"pins.{NAME}.name"),
    ],
)
def test_malformed_file_is_refused_naming_the_place(text: str, where: str) -> None:
    with pytest.raises(PinFileError) as caught:
        pins_from_json(text)
    assert where in str(caught.value)
