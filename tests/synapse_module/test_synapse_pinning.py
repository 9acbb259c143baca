"""Pinning in real homeservers on public-range addresses (2a0f:6a1f:7700::/64 in namespaces).

- A (pinning: enforce, the default) and W (pinning.default: warn) meet B and
  pin its TLS key and signing key on first contact; Y on 202::/7 (Yggdrasil)
  is never pinned.
- A restart of A keeps the pins; B rotating its signing key the way Synapse
  allows (new key beside the old one, so the old one signs the new key
  response) passes without the admin.
- An impostor takes B's address: one with B's TLS key but its own signing
  key, then one with its own TLS key and signing key. A refuses both (no
  request, no invite accepted) and logs the name, address, fingerprints and
  the command that accepts the change; W logs and delivers.
- ``v6alt pins forget`` on A's pin file, and A accepts the new server.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("synapse.app.homeserver", reason="matrix-synapse is not installed")

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from signedjson.key import (
    encode_verify_key_base64,
    generate_signing_key,
    get_verify_key,
    read_signing_keys,
    write_signing_keys,
)

from v6alt.lab.dns_recorder import start_dns_recorder
from v6alt.lab.matrix.client import MatrixApiError, MatrixUser
from v6alt.lab.netns import FlatNet
from v6alt.pin_store import PinStore
from v6alt.pins import Pin

from .homeserver import Homeserver, quote
from .matrix import has_message, send, shared_room

pytestmark = pytest.mark.integration

PUBLIC = "2a0f:6a1f:7700::"
YGGDRASIL = "202:6a1f:7700::"
PIN_FILE = "v6alt-pins.json"


def spki(hs: Homeserver) -> str:
    cert = x509.load_pem_x509_certificate((hs.data_dir / "tls.crt").read_bytes())
    der = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def verify_keys(hs: Homeserver) -> dict[str, str]:
    with open(hs.data_dir / "signing.key") as stream:
        keys = read_signing_keys(stream)
    return {f"{k.alg}:{k.version}": encode_verify_key_base64(get_verify_key(k)) for k in keys}


def pins_of(hs: Homeserver) -> dict[str, Pin]:
    return PinStore(hs.data_dir / PIN_FILE).all()


class World:
    def __init__(self, net: FlatNet, root: Path) -> None:
        self.net = net
        self.root = root
        self.a = Homeserver(net["a"], root / "a")
        self.w = Homeserver(net["w"], root / "w", module_config={"pinning": {"default": "warn"}})
        self.b = Homeserver(net["b"], root / "b")
        self.y = Homeserver(net["y"], root / "y")
        self.started: list[Homeserver] = []
        self.tokens: dict[str, str] = {}
        self.room_id = ""

    def start(self, *servers: Homeserver) -> None:
        for hs in servers:
            hs.data_dir.mkdir(parents=True, exist_ok=True)
            if hs.host.name not in {s.host.name for s in self.started}:
                start_dns_recorder(hs.host, hs.dns_log, hs.dns_records)
            hs.prepare()
            hs.spawn()
            self.started.append(hs)
        for hs in servers:
            hs.wait_ready()

    def restart(self, hs: Homeserver) -> None:
        hs.stop()
        hs.spawn()
        hs.wait_ready()

    def user(self, hs: Homeserver, localpart: str) -> MatrixUser:
        return MatrixUser(hs.api, hs.user_id(localpart), self.tokens[f"{localpart}@{hs.tree}"])

    def register(self, hs: Homeserver, localpart: str) -> str:
        token = hs.register(localpart)
        self.tokens[f"{localpart}@{hs.tree}"] = token
        return token

    def token(self, hs: Homeserver, localpart: str) -> str:
        return self.tokens[f"{localpart}@{hs.tree}"]


def profile(hs: Homeserver, token: str, user_id: str) -> int:
    status, _ = hs.request("GET", f"/_matrix/client/v3/profile/{quote(user_id)}", token=token)
    return status


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with FlatNet(f"v6p-{os.getpid() % 100000}-") as net:
        net.add_host("a", f"{PUBLIC}1", f"{YGGDRASIL}1")
        net.add_host("b", f"{PUBLIC}2")
        net.add_host("w", f"{PUBLIC}3")
        net.add_host("y", f"{YGGDRASIL}9", f"{PUBLIC}9")
        world = World(net, tmp_path_factory.mktemp("pinning"))
        try:
            world.start(world.a, world.w, world.b, world.y)
            world.register(world.a, "alice")
            world.register(world.w, "wendy")
            world.register(world.b, "bob")
            world.register(world.y, "yves")
            yield world
        finally:
            for hs in world.started:
                hs.stop()
            for host in ("a", "b", "w", "y"):
                net[host].stop()


def test_first_contact_pins_the_tls_key_and_the_signing_keys(world: World) -> None:
    a, w, b = world.a, world.w, world.b
    bob = world.token(b, "bob")
    # Bob's request makes A and W fetch B's keys from B: TLS and signing keys are pinned.
    assert profile(b, bob, a.user_id("alice")) == 200
    assert profile(b, bob, w.user_id("wendy")) == 200
    for hs in (a, w):
        pin = pins_of(hs)[b.server_name]
        assert (pin.protocol, pin.address) == ("matrix", str(b.address))
        assert pin.spki_sha256 == spki(b)
        assert dict(pin.verify_keys) == verify_keys(b)
        log = hs.log_text()
        assert f"first contact with {b.server_name} at [{b.address}]: pinned TLS key sha256 " in log
        assert f"first contact with {b.server_name} at [{b.address}]: pinned signing keys" in log
    # W's weaker setting is said at start-up, as `v6alt config check` says it.
    assert "v6alt: config: pinning.default: warn: a changed key" in w.log_text()
    assert "v6alt: config:" not in a.log_text()
    # A room across A and B, used by the later steps.
    world.room_id = shared_room(a, world.token(a, "alice"), b, bob, "bob")
    send(b, bob, world.room_id, "hello from bob")
    a.wait_for("bob's message", lambda: has_message(a, world.token(a, "alice"), world.room_id,
               "hello from bob"))  # fmt: skip


def test_a_yggdrasil_peer_is_never_pinned(world: World) -> None:
    a, y = world.a, world.y
    # Both directions: A dials Y (TLS) and A fetches Y's keys.
    assert profile(a, world.token(a, "alice"), y.user_id("yves")) == 200
    assert profile(y, world.token(y, "yves"), a.user_id("alice")) == 200
    y.wait_for_request(f"{YGGDRASIL}1", "GET /_matrix/key/v2/server", scheme="https")
    assert y.server_name not in pins_of(a)
    assert f"first contact with {y.server_name}" not in a.log_text()


def test_pins_survive_a_restart(world: World) -> None:
    a, b = world.a, world.b
    before = pins_of(a)[b.server_name]
    world.restart(a)
    mark = a.log_mark()
    alice, bob = world.token(a, "alice"), world.token(b, "bob")
    send(a, alice, world.room_id, "after the restart")
    b.wait_for("alice's message", lambda: has_message(b, bob, world.room_id, "after the restart"))
    assert pins_of(a)[b.server_name] == before
    assert f"first contact with {b.server_name}" not in a.log_text()[mark:]


def test_a_signing_key_rotation_signed_by_the_old_key_passes(world: World) -> None:
    a, b = world.a, world.b
    old = verify_keys(b)
    b.stop()
    # Synapse's rotation: the new key first (it signs events and requests), the
    # old one still in the file (it signs the key response too).
    with open(b.data_dir / "signing.key") as stream:
        old_keys = read_signing_keys(stream)
    new_key = generate_signing_key(f"rotated{int(time.time())}")
    with open(b.data_dir / "signing.key", "w") as stream:
        write_signing_keys(stream, [new_key, *old_keys])
    b.spawn()
    b.wait_ready()
    mark = a.log_mark()
    alice, bob = world.token(a, "alice"), world.token(b, "bob")
    send(b, bob, world.room_id, "signed by the new key")
    a.wait_for("the event signed by the new key",
               lambda: has_message(a, alice, world.room_id, "signed by the new key"))  # fmt: skip
    assert re.search(
        rf"{re.escape(b.server_name)} at \[{re.escape(str(b.address))}\] rotated its signing "
        rf"keys: .* accepted: the new key response is signed by the pinned key",
        a.log_text()[mark:],
    )
    pinned = dict(pins_of(a)[b.server_name].verify_keys)
    assert pinned == verify_keys(b) and set(old) < set(pinned)


def _impostor(world: World, name: str, *, steal_tls: bool) -> Homeserver:
    """A new Synapse at B's address with B's server name: its own signing key and,
    unless ``steal_tls``, its own TLS key."""
    b = world.b
    b.stop()
    for hs in world.started:
        if hs.host is b.host and hs is not b:
            hs.stop()
    impostor = Homeserver(b.host, world.root / name)
    impostor.data_dir.mkdir(parents=True)
    impostor.prepare()
    if steal_tls:
        for file in ("tls.crt", "tls.key"):
            shutil.copyfile(b.data_dir / file, impostor.data_dir / file)
    impostor.spawn()
    world.started.append(impostor)
    impostor.wait_ready()
    world.register(impostor, "bob")
    return impostor


def _invite_arrives(world: World, sender: Homeserver, hs: Homeserver, localpart: str) -> bool:
    """The impostor's bob invites ``localpart`` on ``hs``; does the invite arrive?"""
    mallory = world.user(sender, "bob")
    try:
        room_id = mallory.create_room(invite=[hs.user_id(localpart)])
    except MatrixApiError:
        return False  # the invited server refused the invite event
    try:
        world.user(hs, localpart).wait_invite(room_id, timeout=15)
    except MatrixApiError:
        return False
    return True


def test_an_impostor_with_the_tls_key_but_another_signing_key_is_refused(world: World) -> None:
    a, b = world.a, world.b
    pinned = pins_of(a)[b.server_name]
    mark = a.log_mark()
    impostor = _impostor(world, "impostor-keys", steal_tls=True)
    assert profile(impostor, world.token(impostor, "bob"), a.user_id("alice")) != 200
    line = a.wait_for_log(r"pinned signing key changed for .*", start=mark)
    assert f"for {b.server_name} at [{b.address}]" in line
    assert "not signed by a pinned key" in line and "refused" in line
    assert f"v6alt pins forget {b.server_name} --file {a.data_dir / PIN_FILE}" in line
    assert not _invite_arrives(world, impostor, a, "alice")
    assert pins_of(a)[b.server_name] == pinned


def test_an_impostor_is_refused_under_enforce_and_logged_under_warn(world: World) -> None:
    a, w, b = world.a, world.w, world.b
    pinned_spki = pins_of(a)[b.server_name].spki_sha256
    a_mark, w_mark = a.log_mark(), w.log_mark()
    impostor = _impostor(world, "impostor", steal_tls=False)
    new_spki = spki(impostor)
    assert new_spki != pinned_spki
    token = world.token(impostor, "bob")

    # enforce: nothing from the impostor is accepted.
    assert profile(impostor, token, a.user_id("alice")) != 200
    line = a.wait_for_log(r"pinned TLS key changed for .*", start=a_mark)
    for part in (b.server_name, f"[{b.address}]", f"pinned sha256 {pinned_spki}",
                 f"presented sha256 {new_spki}", "refused",
                 f"v6alt pins forget {b.server_name} --file {a.data_dir / PIN_FILE}"):  # fmt: skip
        assert part in line
    assert not _invite_arrives(world, impostor, a, "alice")
    assert pins_of(a)[b.server_name].spki_sha256 == pinned_spki

    # warn: the same line, and it goes on; the pin stays.
    assert profile(impostor, token, w.user_id("wendy")) == 200
    warned = w.wait_for_log(r"pinned TLS key changed for .*", start=w_mark)
    assert f"presented sha256 {new_spki}" in warned and "accepted anyway (pinning: warn)" in warned
    assert _invite_arrives(world, impostor, w, "wendy")
    assert pins_of(w)[b.server_name].spki_sha256 == pinned_spki


def test_forget_then_the_new_server_is_pinned(world: World) -> None:
    a, b = world.a, world.b
    impostor = world.started[-1]
    done = subprocess.run(
        [sys.executable, "-m", "v6alt", "pins", "forget", b.server_name,
         "--file", str(a.data_dir / PIN_FILE)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert b.server_name not in pins_of(a)
    assert profile(impostor, world.token(impostor, "bob"), a.user_id("alice")) == 200
    pin = pins_of(a)[b.server_name]
    assert pin.spki_sha256 == spki(impostor)
    assert dict(pin.verify_keys) == verify_keys(impostor)
    assert _invite_arrives(world, impostor, a, "alice")
