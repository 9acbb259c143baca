"""The module's metrics in a worker deployment: each process exports what it did.

W runs on PostgreSQL and Redis with a federation_sender worker; the main
process and the worker each have a metrics listener. W invites a user of Y
(the main process sends the invite) and sends a message (the worker sends the
transaction): each process's listener shows the connections it trusted, as
its own log does, and only the worker probes for backoff recovery.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("synapse.app.homeserver", reason="matrix-synapse is not installed")
from tests.metrics_support import Scrape, parse
from v6alt.lab.netns import FlatNet

from .homeserver import SUBNET, Homeserver
from .matrix import has_message, send, shared_room
from .services import Postgres, Redis

pytestmark = pytest.mark.integration

SENDER = "fedsender1"
MAIN_PORT, WORKER_PORT = 19095, 19096
_SCRAPE = (
    "import sys, urllib.request;"
    "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())"
)
TRUSTED = r"v6alt: TLS peer \S+ accepted for \S+ without CA check \(ip_bound"


def scrape(hs: Homeserver, port: int) -> Scrape:
    result = hs.host.run([sys.executable, "-c", _SCRAPE, f"http://[::1]:{port}/metrics"])
    return parse(result.stdout)


def metrics_listener(port: int) -> dict[str, object]:
    return {"type": "metrics", "port": port, "bind_addresses": ["::1"]}


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Homeserver, Path, Homeserver]]:
    missing = [m for m in ("psycopg2", "txredisapi", "hiredis") if not importlib.util.find_spec(m)]
    missing += [b for b in ("redis-server",) if shutil.which(b) is None]
    if missing:
        pytest.fail(f"the worker deployment test needs {', '.join(missing)}")
    postgres = Postgres(port=18417).start()  # not the workers test's port: sessions may overlap
    redis = Redis(tmp_path_factory.mktemp("redis")).start()
    try:
        with FlatNet(f"v6w-{os.getpid() % 100000}-") as net:
            for index, name in enumerate(("w", "y"), start=1):
                net.add_host(name, f"{SUBNET}{index:x}")
            data = tmp_path_factory.mktemp("hs-w")
            replication = str(data / "replication.sock")
            w = Homeserver(
                net["w"],
                data,
                extra={
                    "enable_metrics": True,
                    "database": postgres.synapse_database(),
                    "redis": {"enabled": True, "path": str(redis.socket)},
                    "instance_map": {"main": {"path": replication}},
                    "federation_sender_instances": [SENDER],
                },
                extra_listeners=[
                    {
                        "path": replication,
                        "type": "http",
                        "resources": [{"names": ["replication"]}],
                    },
                    metrics_listener(MAIN_PORT),
                ],
            )
            y = Homeserver(net["y"], tmp_path_factory.mktemp("hs-y"))
            try:
                for hs in (w, y):
                    hs.prepare()
                    hs.spawn()
                for hs in (w, y):
                    hs.wait_ready()
                sender_log = w.spawn_worker(SENDER, listeners=[metrics_listener(WORKER_PORT)])
                w.wait_worker_ready(sender_log)
                w.wait_for(
                    "the module in the federation sender",
                    lambda: "backoff recovery probes: on" in _log(sender_log),
                    timeout=90,
                )
                yield w, sender_log, y
            finally:
                for hs in (w, y):
                    hs.stop()
    finally:
        redis.stop()
        postgres.stop()


def _log(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def test_main_and_worker_each_export_what_they_did(
    deployment: tuple[Homeserver, Path, Homeserver],
) -> None:
    w, sender_log, y = deployment
    main0, worker0 = scrape(w, MAIN_PORT), scrape(w, WORKER_PORT)
    for got in (main0, worker0):
        assert got.has_family("v6alt_synapse_tls_trust_decisions")
        assert got.label_values("v6alt_synapse_tls_trust_decisions_total", "server_name") == {
            w.server_name
        }
    main_mark, sender_mark = len(w.log_text()), len(_log(sender_log))

    walter, yann = w.register("walter"), y.register("yann")
    room_id = shared_room(w, walter, y, yann, "yann")  # the invite: from the main process
    send(w, walter, room_id, "through the sender")  # the transaction: from the worker
    y.wait_for("W's message on Y", lambda: has_message(y, yann, room_id, "through the sender"))

    name = "v6alt_synapse_tls_trust_decisions_total"
    main_trusted = len(re.findall(TRUSTED, w.log_text()[main_mark:]))
    sender_trusted = len(re.findall(TRUSTED, _log(sender_log)[sender_mark:]))
    assert main_trusted >= 1 and sender_trusted >= 1
    main1, worker1 = scrape(w, MAIN_PORT), scrape(w, WORKER_PORT)
    moved_main = main1.value(name, kind="address_bound") - main0.value(name, kind="address_bound")
    moved_worker = worker1.value(name, kind="address_bound") - worker0.value(
        name, kind="address_bound"
    )
    assert moved_main == main_trusted
    assert moved_worker == sender_trusted
    # Only the sender probes (the main process does not send federation).
    assert main1.value("v6alt_synapse_recovery_probes_total") == 0
    assert "backoff recovery probes: off" in w.log_text()
