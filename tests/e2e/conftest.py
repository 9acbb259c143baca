"""Fixtures for the end-to-end tests: a lab with an XMPP server per host, captures on.

Each test gets its own lab (run directory ``/run/v6alt-e2etest-<tag>-<pid>``,
namespaces ``v6e-<tag><pid>-a``, ...), so it never meets a lab brought up by
hand or another test. A packet capture runs in every namespace from before
the servers start until the test ends; the pcap files stay in the run
directory's ``captures/`` while the lab is up (``V6E_KEEP=1`` copies them to
``/tmp/v6e-captures-<pid>/`` before ``down``).
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv6Address
from pathlib import Path

import pytest

from tests.orphaned_labs import take_down_orphaned_labs
from tests.xmpp_requirements import missing_xmpp_parts
from v6alt.lab import Lab, LabHost
from v6alt.lab.netns import list_netns
from v6alt.lab.xmpp.services import XmppSite, start_xmpp
from v6alt.lab.xmpp.users import XmppUser

from .capture import Capture, Packet, capture_tool, find_leaks

_tags = itertools.count()


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if capture_tool() is None:
        return "needs tcpdump or dumpcap (apt-get install tcpdump)"
    for tool in ("prosody", "prosodyctl", "ip", "openssl", "setpriv", "yggdrasil"):
        if shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
            return f"{tool} not installed"
    return missing_xmpp_parts()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = _missing()
    for item in items:
        if {"mesh", "e2e_env"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@dataclass
class Mesh:
    """A lab up with XMPP servers on every host, captures running in every namespace."""

    lab: Lab
    hosts: list[LabHost]
    sites: list[XmppSite]
    captures: list[Capture]
    users: list[XmppUser] = field(default_factory=list)
    _counter: Iterator[int] = field(default_factory=itertools.count)

    def user(self, site: XmppSite, name: str | None = None) -> XmppUser:
        """A new account on ``site``, logged in from inside the site's namespace."""
        name = name or f"user{next(self._counter)}"
        password = f"pw-{name}"
        user = XmppUser(site.host, site.register(name, password), password)
        self.users.append(user)
        return user

    def allowed_addresses(self) -> set[IPv6Address]:
        addresses = {h.ygg_address for h in self.hosts}
        for host in self.hosts:
            addresses |= {i.ip for i in host.underlay.values()}
        return addresses

    def stop_captures(self) -> dict[str, list[Packet]]:
        return {c.host.host: c.stop() for c in self.captures}

    def leaks(self) -> list[str]:
        """Stop the captures and list every packet that breaks the leak rules, per host."""
        allowed = self.allowed_addresses()
        problems = []
        for host, packets in self.stop_captures().items():
            problems += [f"{host}: {leak}" for leak in find_leaks(packets, allowed)]
        return problems


MeshFactory = Callable[..., Mesh]


@pytest.fixture
def e2e_env() -> tuple[Path, str]:
    """A run directory and namespace prefix for a test that drives the CLI itself."""
    tag, pid = next(_tags), os.getpid()
    return Path(f"/run/v6alt-e2etest-{tag}-{pid}"), f"v6e-{tag}p{pid}-"


@pytest.fixture
def mesh() -> Iterator[MeshFactory]:
    """``mesh(nodes=2, topology="chain")``: a lab, captures, then an XMPP server per host."""
    take_down_orphaned_labs(
        "v6alt-e2etest-*-*", r"v6alt-e2etest-(?P<tag>\d+)-(?P<pid>\d+)", "v6e-{tag}p{pid}-"
    )
    made: list[Mesh] = []
    labs: list[Lab] = []

    def build(nodes: int = 2, topology: str = "chain") -> Mesh:
        tag, pid = next(_tags), os.getpid()
        lab = Lab(run_dir=f"/run/v6alt-e2etest-{tag}-{pid}", prefix=f"v6e-{tag}p{pid}-")
        labs.append(lab)
        hosts = lab.up(nodes=nodes, topology=topology)
        capture_dir = lab.run_dir / "captures"
        capture_dir.mkdir()
        captures = [Capture(host, capture_dir) for host in hosts]
        try:
            sites = start_xmpp(lab)
        except BaseException:
            for capture in captures:
                capture.stop()
            raise
        built = Mesh(lab, hosts, sites, captures)
        made.append(built)
        return built

    try:
        yield build
    finally:
        for built in made:
            for user in built.users:
                user.close()
            built.stop_captures()
            capture_dir = built.lab.run_dir / "captures"
            if os.environ.get("V6E_KEEP"):
                keep = Path(f"/tmp/v6e-captures-{os.getpid()}") / built.lab.run_dir.name
                shutil.copytree(capture_dir, keep, dirs_exist_ok=True)
            shutil.rmtree(capture_dir, ignore_errors=True)
        for lab in labs:
            lab.down()
            leftovers = {n for n in list_netns() if n.startswith(lab.prefix)}
            assert not leftovers, f"namespaces left behind: {leftovers}"
