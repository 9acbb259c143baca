"""A mesh peer that comes back gets its queued events without new activity.

B goes away (its Synapse stops); a message sent on X cannot be delivered and
X backs off from B (stock Synapse: 10 minutes, doubling; X gives up retrying
a transaction after one quick retry so the backoff starts at once). B comes
back: the module's probe finds it reachable, clears the backoff, and X
delivers the queued message with nothing new happening in the room.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

pytest.importorskip("synapse.app.homeserver", reason="matrix-synapse is not installed")

from .homeserver import Homeserver
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
