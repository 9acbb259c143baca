"""docker/mesh/compose.yaml, twice: two stacks whose Yggdrasil nodes peer over
an IPv6 underlay network federate a Matrix message (docs/docker.md)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from ipaddress import IPv6Address, IPv6Network

import pytest

from v6alt.codec import decode
from v6alt.lab.docker.engine import Engine
from v6alt.lab.docker.matrix import TcpClientApi
from v6alt.lab.docker.stacks import Network, Stack
from v6alt.lab.matrix.client import register_user, wait_healthy

from .conftest import REGISTRATION_SECRET, Images, mesh_stack, server_name

pytestmark = pytest.mark.integration

YGGDRASIL = IPv6Network("200::/7")


@pytest.fixture
def two_stacks(engine: Engine, images: Images, underlay: Network) -> Iterator[tuple[Stack, Stack]]:
    first = mesh_stack(engine, images, underlay)
    second: Stack | None = None
    try:
        first.up()
        peer = first.address("yggdrasil", underlay.name)
        second = mesh_stack(engine, images, underlay, peers=f"tcp://[{peer}]:9001")
        second.up()
        yield first, second
    except BaseException:
        for stack in (first, second):
            if stack is not None:
                print(stack.logs())
        raise
    finally:
        for stack in (first, second):
            if stack is not None:
                stack.down()


def _homeserver(stack: Stack, underlay: Network) -> TcpClientApi:
    assert stack.wait_exited("setup", 120) == 0, stack.logs("setup")
    name = server_name(stack.logs("setup"))
    api = TcpClientApi(stack.address("yggdrasil", underlay.name), 8008, name)
    healthy = wait_healthy(
        api, lambda: stack.state("synapse").get("Running") is True, time.monotonic() + 180
    )
    assert healthy, stack.logs("synapse")
    return api


def test_two_mesh_stacks_federate_over_yggdrasil(
    two_stacks: tuple[Stack, Stack], underlay: Network
) -> None:
    first, second = two_stacks
    api_a, api_b = _homeserver(first, underlay), _homeserver(second, underlay)
    # Each server is named by its own Yggdrasil node's address (v6alt whoami
    # inside the stack), and the node is the one in the container.
    for stack, api in ((first, api_a), (second, api_b)):
        address = IPv6Address(decode(api.server_name))
        assert address in YGGDRASIL
        assert str(address) in stack.exec("yggdrasil", ["ip", "-6", "addr", "show", "ygg0"])
    assert api_a.server_name != api_b.server_name

    alice = register_user(api_a, REGISTRATION_SECRET, "alice", "alice-password")
    bob = register_user(api_b, REGISTRATION_SECRET, "bob", "bob-password")
    room = alice.create_room(invite=[bob.user_id])
    bob.join(room, timeout=120)
    alice.send_text(room, "hello over yggdrasil")
    bob.wait_text(room, "hello over yggdrasil", timeout=120)
    bob.send_text(room, "and back")
    alice.wait_text(room, "and back", timeout=120)
    # The link is the two nodes' own: the first node has the second as its peer.
    peers = first.exec(
        "yggdrasil",
        ["yggdrasilctl", "-json", "-endpoint", "unix:///run/yggdrasil/yggdrasil.sock", "getPeers"],
    )
    assert second.address("yggdrasil", underlay.name).compressed in peers
