"""The sidecar's ``/v1/pin``: a real sidecar process, its pin file, ``v6alt pins`` beside it."""

from __future__ import annotations

import http.client
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.cli_support import run
from v6alt.codec import encode
from v6alt.lab.local_servers import Sidecar, running_sidecar
from v6alt.pin_store import PinStore

pytestmark = pytest.mark.integration

PUBLIC = "2a00:1098:3a0::1"
WARNED = "2a01:4f8::7"
MESH = "200:cab8:deb4:ce60:4362:4492:e539:4b5"
KEY, OTHER = "ab" * 32, "cd" * 32


@pytest.fixture(scope="module")
def pin_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="v6alt-pins-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="module")
def sidecar(pin_dir: Path) -> Iterator[Sidecar]:
    config = (
        f'pinning:\n  file: "{pin_dir / "sub" / "pins.json"}"\n'
        'secure_ranges:\n  - {cidr: "2a01:4f8::/32", pinning: warn}\n'
    )
    with running_sidecar(config) as running:
        yield running


def pin(sidecar: Sidecar, name: str, address: str, spki: str) -> tuple[int, dict[str, object]]:
    query = urlencode({"name": name, "address": address, "spki": spki})
    connection = http.client.HTTPConnection("::1", sidecar.lookup_port, timeout=5)
    try:
        connection.request("GET", f"/v1/pin?{query}")
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_first_contact_match_and_mismatch(sidecar: Sidecar, pin_dir: Path) -> None:
    name = encode(PUBLIC)
    status, first = pin(sidecar, name, PUBLIC, KEY)
    assert status == 200
    assert (first["accept"], first["status"], first["mode"]) == (True, "new", "enforce")
    assert first["verdict"] == "accepted"
    assert (pin_dir / "sub" / "pins.json").exists()  # the directory is made on the first pin
    assert pin(sidecar, name, PUBLIC, KEY)[1]["status"] == "match"
    refused = pin(sidecar, name, PUBLIC, OTHER)[1]
    assert (refused["accept"], refused["status"]) == (False, "mismatch")
    assert refused["verdict"] == "refused"
    message = str(refused["message"])
    for part in (name, PUBLIC, KEY, OTHER, "refused", f"v6alt pins forget {name} --file"):
        assert part in message
    stored = PinStore(pin_dir / "sub" / "pins.json").get(name)
    assert stored is not None and stored.spki_sha256 == KEY and stored.protocol == "xmpp"
    # The admin forgets it while the sidecar runs: the next key is pinned.
    assert run("pins", "forget", name, "--file", str(pin_dir / "sub" / "pins.json")).code == 0
    assert pin(sidecar, name, PUBLIC, OTHER)[1]["status"] == "new"


def test_warn_range_accepts_and_keeps_the_pin(sidecar: Sidecar, pin_dir: Path) -> None:
    name = encode(WARNED)
    assert pin(sidecar, name, WARNED, KEY)[1]["status"] == "new"
    warned = pin(sidecar, name, WARNED, OTHER)[1]
    assert (warned["accept"], warned["status"], warned["mode"]) == (True, "mismatch", "warn")
    assert PinStore(pin_dir / "sub" / "pins.json").get(name).spki_sha256 == KEY  # type: ignore[union-attr]


def test_weak_settings_are_logged_at_start(sidecar: Sidecar) -> None:
    assert "config: secure_ranges[0].pinning: warn covers 2a01:4f8::/32" in sidecar.log()


def test_yggdrasil_is_never_pinned(sidecar: Sidecar, pin_dir: Path) -> None:
    name = encode(MESH)
    for key in (KEY, OTHER):
        answer = pin(sidecar, name, MESH, key)[1]
        assert (answer["accept"], answer["status"], answer["mode"]) == (True, "off", "off")
    assert PinStore(pin_dir / "sub" / "pins.json").get(name) is None


def test_a_peer_not_trusted_by_its_address_is_refused(sidecar: Sidecar) -> None:
    answer = pin(sidecar, encode(PUBLIC), "2a00:1098:3a0::2", KEY)[1]
    assert (answer["accept"], answer["status"]) == (False, "not_pinnable")
    assert answer["verdict"] == "refused"


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"name": "x.v6.alt", "address": PUBLIC}, "spki"),
        ({"name": encode(PUBLIC), "address": PUBLIC, "spki": "AB" * 32}, "spki"),
        ({"name": encode(PUBLIC), "address": PUBLIC, "spki": "ab"}, "spki"),
        ({"name": encode(PUBLIC), "address": "192.0.2.1", "spki": KEY}, "IPv6"),
    ],
)
def test_bad_requests(sidecar: Sidecar, params: dict[str, str], reason: str) -> None:
    connection = http.client.HTTPConnection("::1", sidecar.lookup_port, timeout=5)
    try:
        connection.request("GET", f"/v1/pin?{urlencode(params)}")
        response = connection.getresponse()
        body = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 400 and reason in body["error"]
