"""docker/mesh/compose.yaml, twice: two stacks whose Yggdrasil nodes peer over
an IPv6 underlay network federate a Matrix message and an XMPP message, each
way (docs/docker.md). Prosody's mod_v6alt is the one `prosodyctl install`
put into the image from the project's rock."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from ipaddress import IPv6Address, IPv6Network

import pytest

from v6alt.codec import decode
from v6alt.lab.docker.engine import Engine
from v6alt.lab.docker.matrix import TcpClientApi
from v6alt.lab.docker.stacks import Network, Stack, server_name
from v6alt.lab.matrix.client import register_user, wait_healthy
from v6alt.lab.xmpp.users import XmppUser

from .conftest import REGISTRATION_SECRET, Images, container_netns, mesh_stack

pytestmark = pytest.mark.integration

YGGDRASIL = IPv6Network("200::/7")
# Where the Prosody image's `prosodyctl install` put the rock (installer_plugin_path).
PLUGINS = "/usr/local/lib/prosody/plugins"


@pytest.fixture(scope="module")
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


def _xmpp_user(stack: Stack, name: str, user: str) -> XmppUser:
    config = "/run/prosody/prosody.cfg.lua"
    deadline = time.monotonic() + 60
    while True:  # prosody-start writes the config, then Prosody opens its ports
        try:
            stack.exec("prosody", ["prosodyctl", "--config", config, "register", user, name, "pw"])
            break
        except Exception:
            if time.monotonic() > deadline:
                print(stack.logs("prosody", "sidecar"))
                raise
            time.sleep(1)
    return XmppUser(container_netns(stack, "yggdrasil"), f"{user}@{name}", "pw", 60)


def test_xmpp_over_yggdrasil_with_the_rock_installed_module(
    two_stacks: tuple[Stack, Stack], underlay: Network
) -> None:
    first, second = two_stacks
    names = []
    for stack in (first, second):
        assert stack.wait_exited("setup", 120) == 0, stack.logs("setup")
        names.append(server_name(stack.logs("setup")))
    # Prosody loads mod_v6alt from the installer plugin directory (the rock).
    installed = first.exec("prosody", ["ls", f"{PLUGINS}/share/lua/5.4/mod_v6alt"])
    assert "v6alt_internals.lua" in installed
    alice = _xmpp_user(first, names[0], "alice")
    bob = _xmpp_user(second, names[1], "bob")
    try:
        alice.send(bob.jid, "xmpp over yggdrasil")
        bob.wait_message("xmpp over yggdrasil", timeout=90)
        bob.send(alice.jid, "and back")
        alice.wait_message("and back", timeout=90)
    except BaseException:
        print(first.logs("prosody", "sidecar"), second.logs("prosody", "sidecar"))
        raise
    finally:
        alice.close()
        bob.close()
    # ...and from nowhere else: the image has no other copy of the module.
    where = ["/usr", "/etc", "/var/lib/prosody", "/opt"]
    copies = first.exec("prosody", ["find", *where, "-name", "mod_v6alt.lua"]).split()
    assert copies == [f"{PLUGINS}/share/lua/5.4/mod_v6alt.lua"]


# Written by the sidecar's own user with the image's v6alt, as the sidecar
# writes a first pin (PinStore.update, atomic replace in the directory).
_WRITE_PIN = """
from v6alt.pin_store import PinStore
from v6alt.pins import Pin
PinStore("/var/lib/v6alt/xmpp-pins.json").update("fiabbgadu-e.v6.alt", lambda _: Pin(
    name="fiabbgadu-e.v6.alt", protocol="xmpp", address="2a00:1098:3a0::1",
    spki_sha256="ab" * 32, first_seen_ms=1, updated_ms=1))
"""


def test_sidecar_pin_file_outlives_its_container(two_stacks: tuple[Stack, Stack]) -> None:
    """The sidecar's pin directory is a named volume its user can write: a pin
    written before the container is recreated is still there after."""
    first, _ = two_stacks
    pin_file = "/var/lib/v6alt/xmpp-pins.json"
    first.exec("sidecar", ["/opt/v6alt/bin/python", "-c", _WRITE_PIN], user="v6alt")
    mounts = json.loads(
        first.engine.docker(["inspect", "--format", "{{json .Mounts}}", first.container("sidecar")])
    )
    assert [m.get("Type") for m in mounts if m.get("Destination") == "/var/lib/v6alt"] == [
        "volume"
    ], mounts
    before = first.container("sidecar")
    first.compose(["up", "-d", "--no-build", "--force-recreate", "--no-deps", "sidecar"])
    assert first.container("sidecar") != before
    listed = json.loads(
        first.exec("sidecar", ["v6alt", "pins", "list", "--file", pin_file, "--json"])
    )
    assert [pin["name"] for pin in listed["pins"]] == ["fiabbgadu-e.v6.alt"], listed
