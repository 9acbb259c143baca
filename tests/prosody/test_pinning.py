"""Pinning in real Prosody servers on public-range addresses (2a0f:6a1f:7800::/64).

A (pinning: enforce, the default) and W (pinning.default: warn) talk with B
and their sidecars pin B's TLS key. Restarting A's sidecar and Prosody keeps
the pin. Then an impostor (a new Prosody with another certificate) takes
B's address: A refuses every stream with it, in both directions, and logs
the name, address, both fingerprints and the command that accepts the
change; W logs and delivers. ``v6alt pins forget`` on A's pin file, and A
accepts the new key. Y on 202::/7 (Yggdrasil) is never pinned.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from v6alt.codec import encode
from v6alt.lab.errors import LabError
from v6alt.lab.xmpp.users import XmppUser
from v6alt.pin_store import PinStore

from .conftest import Site, SiteFactory, messages_both_ways
from .servers import Mesh, ProsodyRelease, ProsodyServer

A, B, W = "2a0f:6a1f:7800::1", "2a0f:6a1f:7800::2", "2a0f:6a1f:7800::3"
Y = "202:6a1f:7800::9"
A_PREFIX, Y_PREFIX = "2a0f:6a1f:7800::", "202:6a1f:7800::"
PIN_FILE = "xmpp-pins.json"
QUIET_SECONDS = 8  # how long a refused message is given to (wrongly) arrive


def pins_yaml(lab: Mesh, name: str, mode: str = "enforce") -> str:
    return f'pinning:\n  default: {mode}\n  file: "{lab.root / name / PIN_FILE}"\n'


def spki(server: ProsodyServer) -> str:
    pem = (server.node.run_dir / f"{server.domain}.crt").read_bytes()
    der = (
        x509.load_pem_x509_certificate(pem)
        .public_key()
        .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    return hashlib.sha256(der).hexdigest()


def pin_path(site: Site) -> Path:
    return site.node.run_dir / PIN_FILE


def never_arrives(user: XmppUser, text: str) -> bool:
    try:
        user.wait_message(text, timeout=QUIET_SECONDS)
    except LabError:
        return True
    return False


def impostor(lab: Mesh, victim: Site, template: str) -> ProsodyServer:
    """Stop ``victim``'s Prosody and start another at its address, with a new certificate."""
    victim.server.stop()
    server = ProsodyServer(victim.node, victim.domain, template)
    # The log file is the victim's: wait for this process's own start lines.
    started = server.log_text().count("Activated service 'c2s'")
    server.start()
    deadline = time.monotonic() + 30
    while server.log_text().count("Activated service 'c2s'") <= started:
        assert time.monotonic() < deadline, "the impostor's Prosody did not start"
        time.sleep(0.2)
    return server


def test_pinning_of_xmpp_peers(lab: Mesh, site: SiteFactory, config_template: str) -> None:
    a = site("a", A, sidecar_yaml=pins_yaml(lab, "a"))
    w = site("w", W, sidecar_yaml=pins_yaml(lab, "w", "warn"))
    b = site("b", B, sidecar_yaml=pins_yaml(lab, "b"))
    alice, wendy, bob = a.user("alice"), w.user("wendy"), b.user("bob")

    # First contact: A and W pin B's TLS key.
    messages_both_ways(alice, bob, "hello bob", "hello alice")
    messages_both_ways(wendy, bob, "hello bob from w", "hello wendy")
    b_spki = spki(b.server)
    for pinner in (a, w):
        pin = PinStore(pin_path(pinner)).get(b.domain)
        assert pin is not None
        assert (pin.protocol, pin.address, pin.spki_sha256) == ("xmpp", B, b_spki)
        assert f"first contact with {b.domain} at [{B}]: pinned TLS key sha256 {b_spki}" in (
            pinner.server.log_text()
        )

    # Restarts keep the pin: A's sidecar and Prosody come back, the same key matches.
    before = PinStore(pin_path(a)).get(b.domain)
    alice.close()
    a.server.stop()
    a.sidecar.kill()
    a.sidecar.start()
    a.server.start()
    log_mark = len(a.server.log_text())
    alice = a.user("alice")
    messages_both_ways(alice, bob, "after the restart", "still here")
    assert PinStore(pin_path(a)).get(b.domain) == before
    assert f"first contact with {b.domain}" not in a.server.log_text()[log_mark:]

    # An impostor takes B's address with another certificate.
    bob.close()
    a_mark, w_mark = len(a.server.log_text()), len(w.server.log_text())
    fake = impostor(lab, b, config_template)
    fake_spki = spki(fake)
    assert fake_spki != b_spki
    mallory = XmppUser(b.node, bob.jid, "secret-bob")
    b.users.append(mallory)

    # enforce: nothing passes, in either direction.
    mallory.send(alice.jid, "from the impostor")
    alice.send(mallory.jid, "to the impostor")
    assert never_arrives(alice, "from the impostor")
    assert never_arrives(mallory, "to the impostor")
    refused = [
        line
        for line in a.server.log_text()[a_mark:].splitlines()
        if "pinned TLS key changed for" in line
    ]
    assert refused, a.server.log_text()[a_mark:][-3000:]
    for part in (
        f"for {b.domain} at [{B}]",
        f"pinned sha256 {b_spki}",
        f"presented sha256 {fake_spki}",
        "refused",
        f"v6alt pins forget {b.domain} --file {pin_path(a)}",
    ):
        assert part in refused[0]
    assert PinStore(pin_path(a)).get(b.domain).spki_sha256 == b_spki  # type: ignore[union-attr]

    # warn: the same line, and the stanzas go through; the pin stays.
    messages_both_ways(mallory, wendy, "impostor to w", "w to the impostor")
    warned = w.server.log_text()[w_mark:]
    assert f"presented sha256 {fake_spki}" in warned
    assert "accepted anyway (pinning: warn)" in warned
    assert PinStore(pin_path(w)).get(b.domain).spki_sha256 == b_spki  # type: ignore[union-attr]

    # forget: A pins the new key and talks with it.
    done = subprocess.run(
        [sys.executable, "-m", "v6alt", "pins", "forget", b.domain, "--file", str(pin_path(a))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 60
    while True:  # the refused streams may still be closing: retry until a fresh one carries it
        text = f"after forget {time.monotonic():.0f}"
        mallory.send(alice.jid, text)
        try:
            alice.wait_message(text, timeout=10)
            break
        except LabError:
            if time.monotonic() > deadline:
                raise
    assert PinStore(pin_path(a)).get(b.domain).spki_sha256 == fake_spki  # type: ignore[union-attr]
    fake.stop()


def test_a_yggdrasil_peer_is_never_pinned(lab: Mesh, site: SiteFactory) -> None:
    a = site("a", A, sidecar_yaml=pins_yaml(lab, "a"))
    y = site("y", Y, sidecar_yaml=pins_yaml(lab, "y"))
    # One link, two prefixes: each reaches the other's prefix on the link.
    a.node.run(["ip", "route", "add", f"{Y_PREFIX}/64", "dev", "eth0"])
    y.node.run(["ip", "route", "add", f"{A_PREFIX}/64", "dev", "eth0"])
    alice, yves = a.user("alice"), y.user("yves")
    messages_both_ways(alice, yves, "to the mesh", "from the mesh")
    assert f"Trusting {encode(Y)} at [{Y}] (ip_bound)" in a.server.log_text()
    assert PinStore(pin_path(a)).get(encode(Y)) is None
    assert "first contact" not in a.server.log_text()
    # Y pins A: A's address is public.
    assert PinStore(pin_path(y)).get(a.domain) is not None


def test_pinning_on_prosody_012(
    lab: Mesh, site: SiteFactory, prosody012: ProsodyRelease, config_template: str
) -> None:
    a = site("a", A, sidecar_yaml=pins_yaml(lab, "a"), release=prosody012)
    b = site("b", B, sidecar_yaml=pins_yaml(lab, "b"))
    alice, bob = a.user("alice"), b.user("bob")
    messages_both_ways(alice, bob, "hello from 0.12", "hello back")
    assert PinStore(pin_path(a)).get(b.domain).spki_sha256 == spki(b.server)  # type: ignore[union-attr]
    bob.close()
    fake = impostor(lab, b, config_template)
    mallory = XmppUser(b.node, bob.jid, "secret-bob")
    b.users.append(mallory)
    mallory.send(alice.jid, "from the impostor")
    assert never_arrives(alice, "from the impostor")
    assert f"presented sha256 {spki(fake)}" in a.server.log_text()
    fake.stop()
