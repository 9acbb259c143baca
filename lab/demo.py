"""``v6alt demo``: two Yggdrasil hosts, a server of each protocol on each, a message across.

The steps, each shown as it happens with the v6.alt names involved:

1. check the machine (root, iproute2, yggdrasil, Prosody 13, openssl, slixmpp);
2. the mesh: a lab of two hosts (network namespaces, real Yggdrasil nodes);
3. XMPP servers: a v6alt sidecar and Prosody 13 with mod_v6alt per host,
   each serving the host's own ``<label>.v6.alt`` domain;
4. users: one account per server;
5. an XMPP message from host a to host b, and the reply;
6. the Matrix half, when matrix-synapse is installed (:mod:`.matrix`), else why not;
then the lab is taken down, or left up with ``keep`` (with how to connect).
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from .errors import LabEnvironmentError, LabError
from .host import LabHost
from .lab import Lab
from .matrix import synapse_installed
from .netns import find_tool
from .xmpp.services import XmppSite, check_xmpp_tools, start_xmpp
from .xmpp.users import XmppUser, check_client
from .yggdrasil import find_yggdrasil

__all__ = [
    "DEMO_PREFIX",
    "DEMO_RUN_DIR",
    "DemoResult",
    "LabHomeserver",
    "MatrixHalf",
    "MatrixUser",
    "find_matrix_half",
    "run_demo",
]

DEMO_RUN_DIR: Final = Path("/run/v6alt-demo")
DEMO_PREFIX: Final = "v6demo-"
STEPS: Final = 6
DELIVERY_TIMEOUT: Final = 60.0

Say = Callable[[str], None]


@dataclass
class DemoResult:
    """What the demo did (``--json`` prints it)."""

    hosts: list[dict[str, str]] = field(default_factory=list)
    xmpp: dict[str, Any] = field(default_factory=dict)
    matrix: dict[str, Any] = field(default_factory=dict)
    kept: bool = False
    run_dir: str = ""
    prefix: str = ""


class MatrixUser(Protocol):
    """A registered user of a lab homeserver, driven through the client-server API."""

    @property
    def user_id(self) -> str: ...

    def create_room(self, invite: list[str]) -> str:
        """Create a private room inviting ``invite``; returns the room ID."""
        ...

    def join(self, room_id: str, timeout: float) -> None:
        """Wait for the invite (it comes over federation), then join."""
        ...

    def send_text(self, room_id: str, body: str) -> None: ...

    def wait_text(self, room_id: str, body: str, timeout: float) -> None:
        """Return once ``body`` is in the room's timeline; raise on ``timeout``."""
        ...


class LabHomeserver(Protocol):
    """What the demo asks of a homeserver it started (:class:`.matrix.mesh.LabSynapse`)."""

    @property
    def server_name(self) -> str: ...

    def register(self, localpart: str, password: str) -> MatrixUser: ...


StartHomeserver = Callable[[Lab, LabHost, Callable[[str], None]], LabHomeserver]


@dataclass(frozen=True)
class MatrixHalf:
    """The homeserver starter if the Matrix half can run, else the reason it cannot."""

    start: StartHomeserver | None
    reason: str


def find_matrix_half() -> MatrixHalf:
    """The lab's own starter (:func:`.matrix.mesh.start_homeserver`) when matrix-synapse
    is installed; otherwise the reason the demo gives for skipping the Matrix half."""
    if not synapse_installed():
        return MatrixHalf(None, "matrix-synapse not installed")
    from .matrix.mesh import start_homeserver

    return MatrixHalf(start_homeserver, "matrix-synapse is installed")


def _step(say: Say, number: int, text: str) -> None:
    say(f"[{number}/{STEPS}] {text}")


def preflight() -> None:
    """Everything the XMPP half needs; raises :class:`LabEnvironmentError` (exit 2)."""
    Lab.require_root()
    find_tool("ip", "iproute2", "apt-get install iproute2")
    find_yggdrasil()
    check_xmpp_tools()
    check_client()


def _register(site: XmppSite, user: str, password: str) -> str:
    try:
        return site.register(user, password)
    except LabError:
        # A kept demo lab already has the account; a fresh name keeps the run independent.
        return site.register(f"{user}-{secrets.token_hex(3)}", password)


def _send_across(say: Say, sender: XmppUser, receiver: XmppUser, body: str) -> float:
    started = time.monotonic()
    sender.send(receiver.jid, body)
    received = receiver.wait_message(body, timeout=DELIVERY_TIMEOUT)
    seconds = float(received["at"]) - started
    say(f"      {sender.jid} -> {receiver.jid}: {body!r} delivered in {seconds:.2f} s")
    return seconds


def _xmpp_exchange(say: Say, a: XmppSite, b: XmppSite, result: DemoResult) -> None:
    password = secrets.token_urlsafe(12)
    _step(say, 4, "Users: one account on each XMPP server")
    alice_jid = _register(a, "alice", password)
    bob_jid = _register(b, "bob", password)
    say(f"      {alice_jid} (on host a), {bob_jid} (on host b), password {password}")
    _step(say, 5, "XMPP message across the mesh, and the reply")
    say(
        f"      {a.domain}'s server dials {b.domain} at {b.host.ygg_address} port 5269 "
        "directly: no DNS, its self-signed certificate trusted because the name is the address"
    )
    alice = XmppUser(a.host, alice_jid, password)
    bob = XmppUser(b.host, bob_jid, password)
    try:
        there = _send_across(say, alice, bob, f"Hello {b.domain}, from {a.domain} over Yggdrasil")
        back = _send_across(say, bob, alice, "Hello back, received over Yggdrasil")
    finally:
        alice.close()
        bob.close()
    result.xmpp = {
        "users": [alice_jid, bob_jid],
        "password": password,
        "delivered_seconds": [round(there, 3), round(back, 3)],
    }


def _matrix_half(say: Say, lab: Lab, hosts: list[LabHost], result: DemoResult) -> None:
    half = find_matrix_half()
    if half.start is None:
        say(f"[6/{STEPS}] Matrix half: skipped ({half.reason})")
        result.matrix = {"ran": False, "reason": half.reason}
        return
    _step(say, 6, "Matrix: a Synapse with v6alt's module on each host, a room across")
    a_hs, b_hs = (half.start(lab, host, lambda line: say(f"      {line}")) for host in hosts)
    password = secrets.token_urlsafe(12)
    alice, bob = a_hs.register("alice", password), b_hs.register("bob", password)
    say(f"      {alice.user_id} (on {a_hs.server_name}), {bob.user_id} (on {b_hs.server_name})")
    room = alice.create_room(invite=[bob.user_id])
    bob.join(room, timeout=DELIVERY_TIMEOUT)
    started = time.monotonic()
    body = f"Hello {b_hs.server_name}, from {a_hs.server_name} over Yggdrasil"
    alice.send_text(room, body)
    bob.wait_text(room, body, timeout=DELIVERY_TIMEOUT)
    seconds = time.monotonic() - started
    say(f"      room {room}: {alice.user_id} -> {bob.user_id} delivered in {seconds:.2f} s")
    result.matrix = {"ran": True, "room": room, "users": [alice.user_id, bob.user_id]}


def _how_to_connect(say: Say, lab: Lab, sites: list[XmppSite], result: DemoResult) -> None:
    users = result.xmpp.get("users", [])
    say("The lab is left up (--keep). To use it:")
    for site, jid in zip(sites, users, strict=False):
        say(
            f"  host {site.host.host}: an XMPP client inside namespace {site.host.netns}, "
            f"account {jid}, server ::1 port 5222 (self-signed certificate):"
        )
        say(
            f"    sudo ip netns exec {site.host.netns} {sys.executable} -m v6alt.lab.xmpp.client "
            f"{jid} {result.xmpp.get('password', 'PASSWORD')}"
            '   # then type {"cmd": "send", "to": JID, "body": TEXT}'
        )
    say(f"  status: sudo v6alt lab status --run-dir {lab.run_dir} --prefix {lab.prefix}")
    say(f"  remove: sudo v6alt lab down --run-dir {lab.run_dir} --prefix {lab.prefix}")


def run_demo(
    say: Say,
    keep: bool = False,
    run_dir: Path = DEMO_RUN_DIR,
    prefix: str = DEMO_PREFIX,
    timeout: float = 60.0,
) -> DemoResult:
    """Run the demo; ``say`` gets every line to show. Raises :class:`LabError` on failure."""
    result = DemoResult(kept=keep, run_dir=str(run_dir), prefix=prefix)
    _step(say, 1, "Checking this machine: root, iproute2, yggdrasil, Prosody 13, slixmpp")
    preflight()
    lab = Lab(run_dir=run_dir, prefix=prefix, progress=lambda line: say(f"      . {line}"))
    done = False
    try:
        _step(say, 2, "Mesh: two hosts (network namespaces), a real Yggdrasil node in each")
        hosts = lab.up(nodes=2, timeout=timeout)
        for host in hosts:
            say(f"      host {host.host}: {host.ygg_address} = {host.name}")
            result.hosts.append(
                {"host": host.host, "netns": host.netns, "address": str(host.ygg_address),
                 "name": host.name}
            )  # fmt: skip
        _step(say, 3, "XMPP servers: Prosody 13 + mod_v6alt + v6alt sidecar on each host")
        sites = start_xmpp(lab)
        for site in sites:
            say(f"      host {site.host.host}: XMPP domain {site.domain}, MUC {site.muc_domain}")
        _xmpp_exchange(say, sites[0], sites[1], result)
        _matrix_half(say, lab, hosts, result)
        done = True
    finally:
        if keep and done:
            _how_to_connect(say, lab, sites, result)
        elif keep:
            say(f"Failed; the lab is left up for inspection (--keep), run dir {lab.run_dir}")
        else:
            say("Tearing down: stopping the servers and nodes, deleting the namespaces")
            lab.down()
            say("Done: nothing of the demo is left on this machine")
    return result


def not_root_reason() -> str | None:
    """Why the demo cannot run here (None when it can try)."""
    try:
        Lab.require_root()
    except LabEnvironmentError as error:
        return (
            f"{error}. The demo builds a Yggdrasil mesh of network namespaces; "
            "a Matrix-only demo on loopback (no root) comes with the Matrix half"
        )
    return None
