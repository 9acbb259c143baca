"""The pinning's part of the Synapse seam, against the installed Synapse (every synapse-* env).

The wrapped key-response method is in METHODS (checked by test_synapse_seam);
the exception class the module raises there is checked here, with the
signature helper the key pin relies on, on a key response Synapse itself
would publish.
"""

from __future__ import annotations

import pytest

pytest.importorskip("synapse.app.homeserver", reason="matrix-synapse is not installed")

from signedjson.key import encode_verify_key_base64, generate_signing_key, get_verify_key
from signedjson.sign import sign_json

from v6alt.synapse_module.pinning import signed_by_key
from v6alt.synapse_module.synapse_contract import EXCEPTIONS, exception_problem
from v6alt.synapse_module.synapse_seam import key_lookup_error

SERVER = "fiabbgadu-e.v6.alt"


@pytest.mark.parametrize(("module", "name", "use"), EXCEPTIONS, ids=[e[1] for e in EXCEPTIONS])
def test_every_raised_exception_exists(module: str, name: str, use: str) -> None:
    assert exception_problem(module, name) is None


def test_a_missing_exception_is_named() -> None:
    assert exception_problem("synapse.crypto.keyring", "NoSuchError") is not None
    assert "not an exception class" in str(exception_problem("synapse.crypto.keyring", "Keyring"))


def test_key_lookup_error_is_synapses() -> None:
    from synapse.crypto.keyring import KeyLookupError

    assert isinstance(key_lookup_error("refused"), KeyLookupError)


def _response(*keys: object) -> dict[str, object]:
    """A key response signed by every key, as Synapse's LocalKey resource makes it."""
    data: dict[str, object] = {
        "server_name": SERVER,
        "valid_until_ts": 2**40,
        "verify_keys": {
            f"ed25519:{k.version}": {"key": encode_verify_key_base64(get_verify_key(k))}  # type: ignore[attr-defined]
            for k in keys
        },
        "old_verify_keys": {},
    }
    for key in keys:
        data = sign_json(data, SERVER, key)
    return data


def test_signed_by_key_checks_against_the_given_public_key() -> None:
    old, new, other = (generate_signing_key(v) for v in ("old", "new", "other"))
    both = _response(new, old)
    old_b64 = encode_verify_key_base64(get_verify_key(old))
    other_b64 = encode_verify_key_base64(get_verify_key(other))
    assert signed_by_key(both, SERVER, "ed25519:old", old_b64)
    # The same key id with other key bytes (an impostor's copy of the id) fails.
    assert not signed_by_key(both, SERVER, "ed25519:old", other_b64)
    # Not signed by that key id at all.
    assert not signed_by_key(_response(new), SERVER, "ed25519:old", old_b64)
    # Listing the pinned key without its signature proves nothing.
    forged = _response(new)
    forged["verify_keys"]["ed25519:old"] = {"key": old_b64}  # type: ignore[index]
    assert not signed_by_key(forged, SERVER, "ed25519:old", old_b64)
    # A signature over other content does not count.
    tampered = dict(both, valid_until_ts=1)
    assert not signed_by_key(tampered, SERVER, "ed25519:old", old_b64)
