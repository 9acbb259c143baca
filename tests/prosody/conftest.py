"""Fixtures for federating real Prosody 13 servers through mod_v6alt and the sidecar."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.xmpp_requirements import missing_xmpp_parts
from v6alt.codec import encode
from v6alt.lab.xmpp.users import XmppUser

from .servers import (
    INSTALLED,
    LabCa,
    Mesh,
    Node,
    ProsodyRelease,
    ProsodyServer,
    Sidecar,
    documented_block,
    make_ca,
    mesh,
)

# Where an unpacked Prosody 0.12 (Debian bookworm's package, `dpkg -x`) lives, if any.
LEGACY_ROOT_VARIABLE = "V6ALT_PROSODY012_ROOT"


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("prosody", "prosodyctl", "ip", "openssl", "runuser", "setpriv"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    return missing_xmpp_parts()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Every test that builds a mesh runs real processes; the others are plain unit tests.
    reason = _missing()
    for item in items:
        if "lab" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def config_template() -> str:
    """The prosody.cfg.lua block shown in docs/prosody.md."""
    return documented_block("prosody-config")


@dataclass
class Site:
    """One node running a sidecar and a Prosody server."""

    node: Node
    sidecar: Sidecar
    server: ProsodyServer
    users: list[XmppUser]

    @property
    def domain(self) -> str:
        return self.server.domain

    def user(self, name: str) -> XmppUser:
        jid = self.server.register(name, "secret-" + name)
        user = XmppUser(self.node, jid, "secret-" + name)
        self.users.append(user)
        return user


SiteFactory = Callable[..., Site]


def messages_both_ways(x: XmppUser, y: XmppUser, there: str, back: str) -> None:
    """``x`` sends ``there`` to ``y``, which receives it and answers ``back``."""
    x.send(y.jid, there)
    y.wait_message(there)
    y.send(x.jid, back)
    x.wait_message(back)


@pytest.fixture
def lab() -> Iterator[Mesh]:
    with mesh() as network:
        yield network


@pytest.fixture
def private_ca(lab: Mesh) -> LabCa:
    return make_ca(lab.root)


@pytest.fixture
def prosody012(lab: Mesh) -> ProsodyRelease:
    """Prosody 0.12 unpacked beside the installed 13 (see docs/prosody.md, "Prosody 0.12")."""
    root = os.environ.get(LEGACY_ROOT_VARIABLE)
    if not root or not (Path(root) / "usr" / "bin" / "prosody").is_file():
        pytest.skip(f"set {LEGACY_ROOT_VARIABLE} to an unpacked prosody 0.12 package")
    return ProsodyRelease.unpacked(Path(root), lab.root, documented_block("prosody-0.12-config"))


@pytest.fixture
def site(lab: Mesh, config_template: str) -> Iterator[SiteFactory]:
    """``site(name, address, domain=None, sidecar_yaml="", issuer=None, trusted=None,
    release=INSTALLED, settings="", host_settings="")`` starts a full server node
    (certificate self-signed unless ``issuer``; ``trusted`` is a private CA the server
    accepts besides the system store;
    ``settings``: extra global prosody.cfg.lua lines; ``host_settings``: extra lines for
    the VirtualHost)."""
    sites: list[Site] = []

    def start(
        name: str,
        address: str,
        domain: str | None = None,
        sidecar_yaml: str = "",
        issuer: LabCa | None = None,
        trusted: LabCa | None = None,
        release: ProsodyRelease = INSTALLED,
        settings: str = "",
        host_settings: str = "",
    ) -> Site:
        node = lab.add_node(name, address)
        sidecar = Sidecar(node, sidecar_yaml)
        sidecar.start()
        server = ProsodyServer(
            node,
            domain or encode(address),
            config_template,
            issuer,
            trusted,
            release,
            settings,
            host_settings,
        )
        server.start()
        started = Site(node, sidecar, server, [])
        sites.append(started)
        return started

    yield start
    for started in sites:
        for user in started.users:
            user.close()
        started.server.terminate()
    for started in sites:
        started.server.stop()
        started.sidecar.kill()
