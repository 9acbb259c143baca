"""Real Synapse homeservers in network namespaces (needs root and iproute2).

Every test module here skips itself (``pytest.importorskip``) only when
matrix-synapse is not installed; any other missing piece (root, ip,
openssl) is a failure, not a skip.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from v6alt.lab.dns_recorder import start_dns_recorder
from v6alt.lab.netns import FlatNet

from .homeserver import Homeserver, flat_mesh


@pytest.fixture(scope="session")
def mesh() -> Iterator[FlatNet]:
    """Hosts on one 200::/7 link: a and b (the documented pair), c (SSRF and
    enforce), d (wrong-peer proxy), e and f (a `tls: off` secure range), g
    (a second source address), h (a range without certificate trust, notaries),
    i (quick federation retries, for backoff recovery), j to m (secure ranges for
    a DNS server name)."""
    yield from flat_mesh(tuple("abcdefghijklm"), tag=str(os.getpid() % 100000))


@pytest.fixture(scope="session")
def pair(
    mesh: FlatNet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Homeserver, Homeserver]]:
    """Homeservers A and B with the documented homeserver.yaml snippet."""
    a = Homeserver(mesh["a"], tmp_path_factory.mktemp("hs-a"))
    b = Homeserver(mesh["b"], tmp_path_factory.mktemp("hs-b"))
    try:
        for hs in (a, b):
            start_dns_recorder(hs.host, hs.dns_log)
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
            start_dns_recorder(hs.host, hs.dns_log, hs.dns_records)
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


@pytest.fixture(scope="module")
def homeserver_with_user(
    mesh: FlatNet,
    start_homeservers: Callable[..., list[Homeserver]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., tuple[Homeserver, str]]:
    """``start(host, localpart, **settings)``: one more homeserver on the mesh host
    ``host`` (``settings``: the launcher's, e.g. ``module_config``, ``extra``),
    stopped when the module ends, and a user on it: (homeserver, access token)."""

    def start(host: str, localpart: str, **settings: Any) -> tuple[Homeserver, str]:
        data = tmp_path_factory.mktemp(f"hs-{host}")
        (hs,) = start_homeservers(Homeserver(mesh[host], data, **settings))
        return hs, hs.register(localpart)

    return start


@pytest.fixture(scope="session")
def users(pair: tuple[Homeserver, Homeserver]) -> dict[str, str]:
    """@alice on A and @bob on B, registered once: access tokens by localpart."""
    a, b = pair
    return {"alice": a.register("alice"), "bob": b.register("bob")}
