"""A mesh peer that comes back gets its queued events without new activity.

B goes away (its Synapse stops); a message sent on X cannot be delivered and
X backs off from B (stock Synapse: 10 minutes, doubling; X gives up retrying
a transaction after one quick retry so the backoff starts at once). B comes
back: the module's probe finds it reachable, clears the backoff, and X
delivers the queued message with nothing new happening in the room.

With Synapse's default retries, A does not back off for minutes: it retries
the transaction after 4 s, 16 s, then every minute. The module probes a
destination with a transaction in flight too, and ends the retry sleep when
B is reachable again. And with hundreds of dead destinations backed off for
longer than B (on its link, answering no one), B is still probed and found.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable

import pytest

from v6alt.codec import encode

pytest.importorskip("synapse.app.homeserver", reason="matrix-synapse is not installed")

from v6alt.lab.netns import FlatNet

from .homeserver import SUBNET, Homeserver
from .matrix import has_message, send, shared_room

pytestmark = pytest.mark.integration

# Far below stock Synapse's first backoff (10 minutes): only the probe can make it.
DELIVERY_TIMEOUT_S = 90.0


@pytest.fixture(scope="module")
def x_server(homeserver_with_user: Callable[..., tuple[Homeserver, str]]) -> tuple[Homeserver, str]:
    quick_retries = {"max_long_retries": 1, "max_long_retry_delay": 500}
    return homeserver_with_user("i", "xavier", extra={"federation": quick_retries})


def test_queued_events_delivered_after_the_peer_returns(
    pair: tuple[Homeserver, Homeserver],
    users: dict[str, str],
    x_server: tuple[Homeserver, str],
) -> None:
    _, b = pair
    a, alice = x_server
    bob = users["bob"]
    room_id = shared_room(a, alice, b, bob, "bob")
    # B joined with partial state and resyncs it from X in the background; if
    # B stopped before that, it would contact X on restart and that inbound
    # request alone would end X's backoff.
    b.wait_for_log(rf"Clearing partial-state flag for {re.escape(room_id)}")

    b.stop()
    mark = a.log_mark()
    send(a, alice, room_id, "sent while B was away")
    a.wait_for_log(
        rf"Connection to {re.escape(b.server_name)} was unsuccessful .*; backoff now \d+",
        start=mark,
    )
    b.spawn()
    b.wait_ready()
    a.wait_for_log(
        rf"v6alt: {re.escape(b.server_name)} is reachable again at "
        rf"\[{re.escape(str(b.address))}\]:8448: backoff cleared",
        start=mark,
        timeout=DELIVERY_TIMEOUT_S,
    )
    b.wait_for(
        "the queued message on B",
        lambda: has_message(b, bob, room_id, "sent while B was away"),
        timeout=DELIVERY_TIMEOUT_S,
    )


def _room_b_has_settled(a: Homeserver, alice: str, b: Homeserver, bob: str) -> str:
    room_id = shared_room(a, alice, b, bob, "bob")
    b.wait_for_log(rf"Clearing partial-state flag for {re.escape(room_id)}")
    return room_id


def test_a_retrying_transaction_is_woken_when_the_peer_returns(
    pair: tuple[Homeserver, Homeserver], users: dict[str, str]
) -> None:
    a, b = pair
    alice, bob = users["alice"], users["bob"]
    room_id = _room_b_has_settled(a, alice, b, bob)

    b.stop()
    mark = a.log_mark()
    send(a, alice, room_id, "sent while B restarts")
    # Refused: Synapse sleeps before it retries (4 s, 16 s, then every minute);
    # it backs off only after 10 attempts.
    a.wait_for_log(
        rf"\[{re.escape(b.server_name)}\] Request failed: PUT matrix-federation://"
        rf"{re.escape(b.server_name)}/_matrix/federation/v1/send/",
        start=mark,
    )
    b.spawn()
    b.wait_ready()
    a.wait_for_log(
        rf"v6alt: {re.escape(b.server_name)} is reachable again at "
        rf"\[{re.escape(str(b.address))}\]:8448: woke its pending transaction",
        start=mark,
        timeout=DELIVERY_TIMEOUT_S,
    )
    b.wait_for(
        "the message on B",
        lambda: has_message(b, bob, room_id, "sent while B restarts"),
        timeout=DELIVERY_TIMEOUT_S,
    )
    backed_off = f"Connection to {b.server_name} was unsuccessful"
    assert backed_off not in a.log_text()[mark:], "A backed off: the retry was not woken"


def _retransmission_backoff(hs: Homeserver, peer: Homeserver) -> int:
    """The highest retransmission backoff (``ss``: doublings of the RTO) of the
    host's TCP connections to the peer's federation port."""
    out = hs.host.run(["ss", "-tin", "dst", f"[{peer.address}]:8448"]).stdout
    return max((int(n) for n in re.findall(r"\bbackoff:(\d+)", out)), default=0)


def test_a_transaction_stuck_on_a_dead_connection_is_resent_when_the_link_returns(
    pair: tuple[Homeserver, Homeserver], users: dict[str, str], mesh: FlatNet
) -> None:
    """A's transaction sent during a link cut waits on the kernel's retransmission
    timer (0.2 s doubling). The link returns while the next retransmission is
    still 12 s or more away: the probe connects, the module aborts the stalled
    connection and wakes the request, which goes out on a fresh one."""
    a, b = pair
    alice, bob = users["alice"], users["bob"]
    room_id = _room_b_has_settled(a, alice, b, bob)

    mesh.set_link(b.host, up=False)
    try:
        mark = a.log_mark()
        send(a, alice, room_id, "sent into the cut")
        a.wait_for(
            "A's connection to B in retransmission backoff 6 (next resend 12.8 s later)",
            lambda: _retransmission_backoff(a, b) >= 6,
            timeout=60,
        )
    finally:
        mesh.set_link(b.host, up=True)
    a.wait_for_log(
        rf"v6alt: {re.escape(b.server_name)} is reachable again at "
        rf"\[{re.escape(str(b.address))}\]:8448: woke its pending transaction "
        rf"\([1-9]\d* stalled connection\(s\) aborted\)",
        start=mark,
        timeout=DELIVERY_TIMEOUT_S,
    )
    b.wait_for(
        "the message on B",
        lambda: has_message(b, bob, room_id, "sent into the cut"),
        timeout=DELIVERY_TIMEOUT_S,
    )


DEAD_PEERS = 300


def _seed_dead_destinations(hs: Homeserver, count: int) -> list[str]:
    """Backed-off v6.alt destinations on the mesh link that no host answers for
    (each probe of one runs into its timeout), backed off longer than any other."""
    names = [encode(f"{SUBNET}dead:{i:x}") for i in range(count)]
    an_hour_ago = int(time.time() * 1000) - 3_600_000
    with sqlite3.connect(hs.files.tree / "homeserver.db", timeout=60) as db:
        db.executemany(
            "INSERT OR REPLACE INTO destinations "
            "(destination, retry_last_ts, retry_interval, failure_ts) VALUES (?, ?, ?, ?)",
            [(name, an_hour_ago, 86_400_000, an_hour_ago) for name in names],
        )
    db.close()
    return names


def test_a_returning_peer_is_found_among_many_dead_ones(
    pair: tuple[Homeserver, Homeserver],
    users: dict[str, str],
    x_server: tuple[Homeserver, str],
) -> None:
    """Probing the oldest backoffs first, a fixed number per round, would never
    reach B behind 300 dead destinations."""
    _, b = pair
    x, xavier = x_server
    bob = users["bob"]
    room_id = _room_b_has_settled(x, xavier, b, bob)
    dead = _seed_dead_destinations(x, DEAD_PEERS)

    b.stop()
    mark = x.log_mark()
    send(x, xavier, room_id, "sent to B behind the dead")
    x.wait_for_log(
        rf"Connection to {re.escape(b.server_name)} was unsuccessful .*; backoff now \d+",
        start=mark,
    )
    b.spawn()
    b.wait_ready()
    x.wait_for_log(
        rf"v6alt: {re.escape(b.server_name)} is reachable again at "
        rf"\[{re.escape(str(b.address))}\]:8448: backoff cleared",
        start=mark,
        timeout=DELIVERY_TIMEOUT_S,
    )
    b.wait_for(
        "the message on B",
        lambda: has_message(b, bob, room_id, "sent to B behind the dead"),
        timeout=DELIVERY_TIMEOUT_S,
    )
    # None of the dead ones was taken for reachable.
    back = [line for line in x.log_text()[mark:].splitlines() if "is reachable again" in line]
    assert not [line for line in back if any(name in line for name in dead)], back
