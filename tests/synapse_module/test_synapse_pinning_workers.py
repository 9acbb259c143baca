"""Pins shared by two processes of one homeserver: main and a federation_sender.

W (PostgreSQL, Redis, its outbound federation sent by the worker
``fedsender1``) and B live on a public-range link, so W pins B. The main
process makes the first contact (the invite) and pins B's TLS key and
signing keys; the sender delivers W's events over its own TLS connections,
each checked against that pin read from the shared file. The pin survives
a restart of both processes. Simultaneous writers (real processes racing
for one file) are tested in tests/test_pin_store.py.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from collections.abc import Iterator

import pytest

pytest.importorskip("synapse.app.homeserver", reason="matrix-synapse is not installed")

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from signedjson.key import encode_verify_key_base64, get_verify_key, read_signing_keys

from v6alt.lab.dns_recorder import start_dns_recorder
from v6alt.lab.netns import FlatNet
from v6alt.pin_store import PinStore

from .homeserver import Homeserver, quote
from .matrix import has_message, send, shared_room
from .services import Postgres, Redis

pytestmark = pytest.mark.integration

SENDER = "fedsender1"
PUBLIC = "2a0f:6a1f:7a00::"


def _spki(hs: Homeserver) -> str:
    cert = x509.load_pem_x509_certificate((hs.data_dir / "tls.crt").read_bytes())
    der = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _verify_keys(hs: Homeserver) -> dict[str, str]:
    with open(hs.data_dir / "signing.key") as stream:
        keys = read_signing_keys(stream)
    return {f"{k.alg}:{k.version}": encode_verify_key_base64(get_verify_key(k)) for k in keys}


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Homeserver, Homeserver]]:
    missing = [m for m in ("psycopg2", "txredisapi", "hiredis") if not importlib.util.find_spec(m)]
    missing += [b for b in ("redis-server",) if shutil.which(b) is None]
    if missing:
        pytest.fail(f"the worker deployment test needs {', '.join(missing)}")
    with FlatNet(f"v6q-{os.getpid() % 100000}-") as net:
        net.add_host("w", f"{PUBLIC}1")
        net.add_host("b", f"{PUBLIC}2")
        data = tmp_path_factory.mktemp("hs-pw")
        postgres = Postgres().start()
        redis = Redis(tmp_path_factory.mktemp("redis-p")).start()
        replication = str(data / "replication.sock")
        w = Homeserver(
            net["w"],
            data,
            extra={
                "database": postgres.synapse_database(),
                "redis": {"enabled": True, "path": str(redis.socket)},
                "instance_map": {"main": {"path": replication}},
                "federation_sender_instances": [SENDER],
            },
            extra_listeners=[
                {"path": replication, "type": "http", "resources": [{"names": ["replication"]}]}
            ],
        )
        b = Homeserver(net["b"], tmp_path_factory.mktemp("hs-pb"))
        try:
            for hs in (w, b):
                start_dns_recorder(hs.host, hs.dns_log)
                hs.prepare()
                hs.spawn()
            for hs in (w, b):
                hs.wait_ready()
            w.wait_worker_ready(w.spawn_worker(SENDER))
            yield w, b
        finally:
            for hs in (w, b):
                hs.stop()
                hs.host.stop()
            redis.stop()
            postgres.stop()


def test_main_and_sender_write_one_pin_without_losing_a_half(
    deployment: tuple[Homeserver, Homeserver],
) -> None:
    w, b = deployment
    walter, bob = w.register("walter"), b.register("bob")
    room_id = shared_room(w, walter, b, bob, "bob")
    send(w, walter, room_id, "from the worker deployment")
    b.wait_for("W's message", lambda: has_message(b, bob, room_id, "from the worker deployment"))
    send(b, bob, room_id, "from b")
    w.wait_for("B's message", lambda: has_message(w, walter, room_id, "from b"))
    pin = PinStore(w.data_dir / "v6alt-pins.json").get(b.server_name)
    assert pin is not None
    assert pin.spki_sha256 == _spki(b)
    assert dict(pin.verify_keys) == _verify_keys(b)
    # The sender delivered W's events to B over connections checked against that pin.
    sender_log = (w.data_dir / f"{SENDER}.log").read_text()
    assert f"pins of v6.alt peers in {w.data_dir / 'v6alt-pins.json'}" in sender_log
    assert f"TX [{b.server_name}]" in sender_log and "got 200 response" in sender_log
    assert "pinned TLS key changed" not in sender_log


def test_the_pin_survives_restarting_both_processes(
    deployment: tuple[Homeserver, Homeserver],
) -> None:
    w, b = deployment
    pins = w.data_dir / "v6alt-pins.json"
    before = PinStore(pins).get(b.server_name)
    assert before is not None
    w.stop()
    w.spawn()
    w.wait_ready()
    w.wait_worker_ready(w.spawn_worker(SENDER))
    mark = w.log_mark()
    # A federation request from the restarted main process: TLS to B again, same key.
    status, body = w.request(
        "GET", f"/_matrix/client/v3/profile/{quote(b.user_id('bob'))}", token=w.register("w2")
    )
    assert status == 200, body
    assert PinStore(pins).get(b.server_name) == before
    assert f"first contact with {b.server_name}" not in w.log_text()[mark:]
