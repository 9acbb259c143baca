"""The module in a worker deployment: main process plus a federation_sender.

W runs on PostgreSQL and Redis (Debian packages, private instances on unix
sockets); its outbound federation is sent by the worker ``fedsender1``.
The module loads in both processes; only the sender probes for backoff
recovery. W and B exchange messages with v6.alt names both ways.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("synapse.app.homeserver", reason="matrix-synapse is not installed")
from v6alt.lab.netns import FlatNet

from .homeserver import Homeserver
from .matrix import has_message, send, shared_room
from .services import worker_backends, worker_settings

pytestmark = pytest.mark.integration

SENDER = "fedsender1"


@pytest.fixture(scope="module")
def worker_deployment(
    mesh: FlatNet,
    start_homeservers: Callable[..., list[Homeserver]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Homeserver, Path, str]]:
    data = tmp_path_factory.mktemp("hs-w")
    with worker_backends(tmp_path_factory.mktemp("redis")) as (postgres, redis):
        w = Homeserver(mesh["g"], data, **worker_settings(data, postgres, redis, SENDER))
        start_homeservers(w)
        sender_log = w.spawn_worker(SENDER)
        w.wait_worker_ready(sender_log)
        w.wait_for_log(r"v6alt: federation with \.v6\.alt names enabled", timeout=60)
        yield w, sender_log, w.register("walter")
        w.stop()


def _log(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def test_module_loads_in_main_and_sender(worker_deployment: tuple[Homeserver, Path, str]) -> None:
    w, sender_log, _ = worker_deployment
    assert "backoff recovery probes: off (this process does not send federation)" in w.log_text()
    w.wait_for(
        "the module in the federation sender",
        lambda: "backoff recovery probes: on" in _log(sender_log),
    )


def test_backoff_recovery_rounds_run_on_postgresql(
    worker_deployment: tuple[Homeserver, Path, str],
) -> None:
    """The recovery's query of the destinations table runs on PostgreSQL too
    (its LIKE patterns once clashed with psycopg2's placeholders)."""
    w, sender_log, _ = worker_deployment
    w.wait_for(
        "a recovery round in the federation sender",
        lambda: "v6alt: backoff recovery round:" in _log(sender_log),
    )
    log = _log(sender_log)
    assert "Background process 'v6alt_backoff_recovery' threw an exception" not in log
    assert "backoff recovery is off" not in log


def test_messages_both_ways_through_the_federation_sender(
    pair: tuple[Homeserver, Homeserver],
    users: dict[str, str],
    worker_deployment: tuple[Homeserver, Path, str],
) -> None:
    _, b = pair
    w, sender_log, walter = worker_deployment
    bob = users["bob"]
    room_id = shared_room(w, walter, b, bob, "bob")
    send(w, walter, room_id, "from the worker deployment")
    b.wait_for(
        "W's message on B", lambda: has_message(b, bob, room_id, "from the worker deployment")
    )
    send(b, bob, room_id, "to the worker deployment")
    w.wait_for(
        "B's message on W", lambda: has_message(w, walter, room_id, "to the worker deployment")
    )
    # The transactions to B left from the sender, through the module.
    name = re.escape(b.server_name)
    assert re.search(rf"TX \[{name}\] .*Sending transaction", _log(sender_log))
    assert re.search(
        rf"v6alt: TLS peer {re.escape(str(b.address))} accepted for {name}", _log(sender_log)
    )
    assert not re.search(rf"TX \[{name}\] .*Sending transaction", w.log_text())
