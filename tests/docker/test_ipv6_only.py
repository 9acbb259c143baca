"""docker/ipv6-only/compose.yaml, twice: two stacks on one IPv6 network
federate a Matrix message with no IPv4 in their network namespaces
(docs/docker.md). The network's prefix is in the documentation range
3fff::/20 (RFC 9637), lifted out of the never-dial list with
V6ALT_UNSAFE_ALLOW, as docs/docker.md says for labs; on a real host it is the
host's routed global /64 and nothing is lifted."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from ipaddress import IPv6Address

import pytest

from v6alt.codec import decode
from v6alt.lab.docker.engine import Engine
from v6alt.lab.docker.matrix import TcpClientApi
from v6alt.lab.docker.stacks import Network, Stack, server_name
from v6alt.lab.matrix.client import register_user, wait_healthy

from .conftest import DOCKER_DIR, REGISTRATION_SECRET, Images

pytestmark = pytest.mark.integration

LAB_PREFIX = "3fff:6a1::/32"


def _stack(engine: Engine, images: Images, network: Network) -> Stack:
    return Stack(
        engine,
        DOCKER_DIR / "ipv6-only" / "compose.yaml",
        f"v6alt-test-{secrets.token_hex(3)}",
        {
            "V6ALT_IMAGE": images.v6alt,
            "V6ALT_SYNAPSE_IMAGE": images.synapse,
            "V6ALT_IPV6_NETWORK": network.name,
            "V6ALT_REGISTRATION_SECRET": REGISTRATION_SECRET,
            "V6ALT_UNSAFE_ALLOW": LAB_PREFIX,
        },
    )


@pytest.fixture(scope="module")
def ipv6_network(engine: Engine) -> Iterator[Network]:
    suffix = secrets.token_hex(2)
    network = Network(engine, f"v6alt-test-ipv6-{suffix}", f"3fff:6a1:{suffix}::/64")
    network.create()
    try:
        yield network
    finally:
        network.remove()


@pytest.fixture(scope="module")
def two_stacks(
    engine: Engine, images: Images, ipv6_network: Network
) -> Iterator[tuple[Stack, Stack]]:
    stacks = [_stack(engine, images, ipv6_network), _stack(engine, images, ipv6_network)]
    try:
        for stack in stacks:
            stack.up()
        yield stacks[0], stacks[1]
    except BaseException:
        for stack in stacks:
            print(stack.logs())
        raise
    finally:
        for stack in stacks:
            stack.down()


def _homeserver(stack: Stack, network: Network) -> TcpClientApi:
    assert stack.wait_exited("setup", 120) == 0, stack.logs("setup")
    name = server_name(stack.logs("setup"))
    address = stack.address("net", network.name)
    assert IPv6Address(decode(name)) == address
    api = TcpClientApi(address, 8008, name)
    running = lambda: stack.state("synapse").get("Running") is True  # noqa: E731
    assert wait_healthy(api, running, time.monotonic() + 180), stack.logs("synapse")
    return api


def test_no_ipv4_in_the_stack(two_stacks: tuple[Stack, Stack], ipv6_network: Network) -> None:
    first, second = two_stacks
    assert first.wait_exited("setup", 120) == 0
    # Docker gave the container an IPv4 address on the network; the stack removed it.
    docker_ipv4 = first.engine.docker(
        [
            "inspect",
            "--format",
            f'{{{{(index .NetworkSettings.Networks "{ipv6_network.name}").IPAddress}}}}',
            second.container("net"),
        ]
    ).strip()
    assert docker_ipv4, "docker gave no IPv4 address: this check would prove nothing"
    for service in ("net", "synapse"):
        assert "inet " not in first.exec(service, ["ip", "-4", "addr", "show", "scope", "global"])
        assert first.exec(service, ["ip", "-4", "route", "show"]).strip() == ""
    probe = (
        "import socket, sys\n"
        "s = socket.socket()\n"
        "s.settimeout(3)\n"
        "try:\n"
        f"    s.connect(({docker_ipv4!r}, 8008))\n"
        "except OSError as e:\n"
        "    print(e.errno)\n"
        "else:\n"
        "    print('connected')\n"
    )
    errno = first.exec("synapse", ["python", "-c", probe]).strip()
    assert errno == "101", f"IPv4 to the other stack did not fail as unreachable: {errno}"


def test_two_ipv6_only_stacks_federate(
    two_stacks: tuple[Stack, Stack], ipv6_network: Network
) -> None:
    first, second = two_stacks
    api_a, api_b = _homeserver(first, ipv6_network), _homeserver(second, ipv6_network)
    alice = register_user(api_a, REGISTRATION_SECRET, "alice", "alice-password")
    bob = register_user(api_b, REGISTRATION_SECRET, "bob", "bob-password")
    room = alice.create_room(invite=[bob.user_id])
    bob.join(room, timeout=120)
    alice.send_text(room, "hello over ipv6 only")
    bob.wait_text(room, "hello over ipv6 only", timeout=120)
    bob.send_text(room, "and back")
    alice.wait_text(room, "and back", timeout=120)
