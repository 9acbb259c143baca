"""Real Synapse homeservers in network namespaces (needs root and iproute2).

Every test module here skips itself (``pytest.importorskip``) only when
matrix-synapse is not installed; any other missing piece (root, ip,
openssl) is a failure, not a skip.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Helpers beside the tests. This directory has no __init__.py on purpose: as a
# package named "synapse" it would shadow the real Synapse.
sys.path.insert(0, str(Path(__file__).parent))

from v6s_homeserver import Homeserver
from v6s_netns import Mesh


@pytest.fixture(scope="session")
def mesh() -> Iterator[Mesh]:
    """Hosts on one 200::/7 link: a and b (the documented pair), c (SSRF and
    enforce), d (wrong-peer proxy), e and f (a `tls: off` secure range), g
    (a second source address), h (a range without certificate trust, notaries),
    i (quick federation retries, for backoff recovery), j to m (secure ranges for
    a DNS server name)."""
    with Mesh(("a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m")) as m:
        yield m


@pytest.fixture(scope="session")
def pair(
    mesh: Mesh, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Homeserver, Homeserver]]:
    """Homeservers A and B with the documented homeserver.yaml snippet."""
    a = Homeserver(mesh["a"], tmp_path_factory.mktemp("hs-a"))
    b = Homeserver(mesh["b"], tmp_path_factory.mktemp("hs-b"))
    try:
        for hs in (a, b):
            hs.host.start_dns_recorder(hs.dns_log)
            hs.prepare()
            hs.spawn()
        for hs in (a, b):
            hs.wait_ready()
        yield a, b
    finally:
        for hs in (a, b):
            hs.stop()
            hs.host.stop()


@pytest.fixture(scope="module")
def start_homeservers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., list[Homeserver]]]:
    """Start homeservers for one test module: ``start(Homeserver(...), ...)``;
    they start in parallel (prepared first) and stop when the module ends."""
    started: list[Homeserver] = []

    def start(*servers: Homeserver) -> list[Homeserver]:
        for hs in servers:
            hs.host.start_dns_recorder(hs.dns_log, hs.dns_records)
            hs.prepare()
            hs.spawn()
            started.append(hs)
        for hs in servers:
            hs.wait_ready()
        return list(servers)

    try:
        yield start
    finally:
        for hs in started:
            hs.stop()
            hs.host.stop()


@pytest.fixture(scope="session")
def users(pair: tuple[Homeserver, Homeserver]) -> dict[str, str]:
    """@alice on A and @bob on B, registered once: access tokens by localpart."""
    a, b = pair
    return {"alice": a.register("alice"), "bob": b.register("bob")}
