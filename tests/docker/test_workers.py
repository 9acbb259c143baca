"""docker/workers/compose.yaml federates with an IPv6-only stack: inbound
federation through the generic worker, outbound through one of the two
sharded federation senders, every Synapse process with the module, on
PostgreSQL and Redis (stand-ins for the official images, tests/docker/standin-*)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest

from v6alt.lab.docker.engine import Engine
from v6alt.lab.docker.matrix import TcpClientApi
from v6alt.lab.docker.stacks import Network, Stack, server_name
from v6alt.lab.matrix.client import register_user, wait_healthy

from .conftest import DOCKER_DIR, REGISTRATION_SECRET, Images, ServiceImages
from .test_ipv6_only import LAB_PREFIX
from .test_ipv6_only import _stack as ipv6_only_stack

pytestmark = pytest.mark.integration

SENDERS = ("federation_sender1", "federation_sender2")
WORKERS = ("federation_inbound", *SENDERS)


@pytest.fixture(scope="module")
def network(engine: Engine) -> Iterator[Network]:
    suffix = secrets.token_hex(2)
    created = Network(engine, f"v6alt-test-ipv6-{suffix}", f"3fff:6a1:{suffix}::/64")
    created.create()
    try:
        yield created
    finally:
        created.remove()


@pytest.fixture(scope="module")
def stacks(
    engine: Engine, images: Images, service_images: ServiceImages, network: Network
) -> Iterator[tuple[Stack, Stack]]:
    workers = Stack(
        engine,
        DOCKER_DIR / "workers" / "compose.yaml",
        f"v6alt-test-{secrets.token_hex(3)}",
        {
            "V6ALT_IMAGE": images.v6alt,
            "V6ALT_SYNAPSE_IMAGE": images.synapse,
            "POSTGRES_IMAGE": service_images.postgres,
            "REDIS_IMAGE": service_images.redis,
            "V6ALT_IPV6_NETWORK": network.name,
            "V6ALT_REGISTRATION_SECRET": REGISTRATION_SECRET,
            "V6ALT_UNSAFE_ALLOW": LAB_PREFIX,
            "POSTGRES_PASSWORD": secrets.token_hex(8),
        },
    )
    other = ipv6_only_stack(engine, images, network)
    try:
        workers.up()
        other.up()
        yield workers, other
    except BaseException:
        print(workers.logs(), other.logs())
        raise
    finally:
        workers.down()
        other.down()


def _api(stack: Stack, network: Network, service: str) -> TcpClientApi:
    assert stack.wait_exited("setup", 120) == 0, stack.logs("setup")
    api = TcpClientApi(stack.address("net", network.name), 8008, server_name(stack.logs("setup")))
    running = lambda: stack.state(service).get("Running") is True  # noqa: E731
    assert wait_healthy(api, running, time.monotonic() + 240), stack.logs(service)
    return api


def test_workers_stack_federates_through_a_sharded_sender(
    stacks: tuple[Stack, Stack], network: Network
) -> None:
    workers, other = stacks
    api_w, api_o = _api(workers, network, "synapse"), _api(other, network, "synapse")
    for worker in WORKERS:
        assert workers.state(worker).get("Running") is True, workers.logs(worker)
    alice = register_user(api_w, REGISTRATION_SECRET, "alice", "alice-password")
    bob = register_user(api_o, REGISTRATION_SECRET, "bob", "bob-password")
    # Into the workers stack: bob's server sends to its federation_inbound worker.
    room = bob.create_room(invite=[alice.user_id])
    alice.join(room, timeout=120)
    # Out of it: alice's message leaves through a federation sender.
    alice.send_text(room, "through a sharded sender")
    bob.wait_text(room, "through a sharded sender", timeout=120)
    bob.send_text(room, "and back")
    alice.wait_text(room, "and back", timeout=120)

    sent = f"[{api_o.server_name}] Completed request"
    transactions = {w: workers.logs(w).count(sent) for w in (*SENDERS, "synapse")}
    # One sender has the destination (sharding); transactions go out there, not
    # from the other sender.
    busy = [w for w in SENDERS if transactions[w]]
    assert len(busy) == 1, transactions
    inbound = workers.logs("federation_inbound")
    assert "/_matrix/federation/v1/send/" in inbound, inbound[-3000:]
    # The module is loaded in every process.
    for process in ("synapse", *WORKERS):
        assert "v6alt" in workers.logs(process), process
