"""Fixtures of the container tests (tox env ``docker``).

One Docker engine for the session (Debian's docker.io, started here when it
is not running and stopped again), one set of images built from docker/ as
docs/docker.md says, on the cached local base image and the stand-in for the
official Synapse image. Every container, network, volume and image made here
is removed at the end; only the base image stays (lab/docker/images.py).
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from v6alt.lab.docker import stacks
from v6alt.lab.docker.engine import Engine, missing_tools
from v6alt.lab.docker.images import ImageSet, ProjectImages, build_project_images
from v6alt.lab.docker.stacks import Network, Stack

REPO = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO / "docker"
STANDIN_DIR = Path(__file__).resolve().parent / "standin"
# The Synapse release the stand-in carries: the newest tested one, which
# docker/synapse/Dockerfile names as its default base.
SYNAPSE_VERSION = "1.163.2"
REGISTRATION_SECRET = "v6alt-docker-tests"


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "the container tests need root (dockerd, debootstrap)"
    tools = missing_tools()
    if tools:
        return f"missing {', '.join(tools)} (scripts/install-deps.sh docker)"
    if not Path("/dev/net/tun").exists():
        return "no /dev/net/tun for Yggdrasil"
    if shutil.which("luarocks") is None:
        return "missing luarocks (scripts/install-deps.sh packaging) for mod_v6alt's rock"
    return None


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    engine = Engine(tmp_path_factory.mktemp("dockerd"))
    engine.start()
    try:
        yield engine
    finally:
        engine.close()


Images = ProjectImages


@pytest.fixture(scope="session")
def images(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Images]:
    work = tmp_path_factory.mktemp("images")
    image_set = ImageSet(engine, f"run-{secrets.token_hex(4)}")
    try:
        yield build_project_images(image_set, REPO, STANDIN_DIR, work, SYNAPSE_VERSION)
    finally:
        image_set.remove()


@pytest.fixture(scope="module")
def underlay(engine: Engine) -> Iterator[Network]:
    """An IPv6 network between two stacks (the Yggdrasil nodes peer over it)."""
    suffix = secrets.token_hex(2)
    network = Network(engine, f"v6alt-test-underlay-{suffix}", f"fd42:6a17:{suffix}::/64")
    network.create()
    try:
        yield network
    finally:
        network.remove()


def mesh_stack(engine: Engine, images: Images, network: Network, peers: str = "") -> Stack:
    assert engine is images.set.engine
    return stacks.mesh_stack(
        DOCKER_DIR / "mesh" / "compose.yaml", images, network, REGISTRATION_SECRET, peers
    )


@dataclass
class ContainerNetns:
    """A container's network namespace, for a host process (the lab's XMPP
    client) to run in: ``nsenter --net=/proc/PID/ns/net``."""

    pid: int

    def argv(self, cmd: Sequence[str], /) -> list[str]:
        return ["nsenter", f"--net=/proc/{self.pid}/ns/net", *cmd]


def container_netns(stack: Stack, service: str) -> ContainerNetns:
    state = stack.state(service)
    pid = state.get("Pid")
    assert isinstance(pid, int) and pid > 0, state
    return ContainerNetns(pid)


@dataclass
class ServiceImages:
    """Stand-ins for the official PostgreSQL and Redis images (the workers stack)."""

    postgres: str
    redis: str


@pytest.fixture(scope="session")
def service_images(images: Images) -> ServiceImages:
    here = Path(__file__).resolve().parent
    built = {}
    for name in ("postgres", "redis"):
        context = here / f"standin-{name}"
        built[name] = images.set.build(
            f"{name}-standin",
            context,
            context / "Dockerfile",
            {"BASE_IMAGE": images.base},
            network_host=True,
        )
    return ServiceImages(built["postgres"], built["redis"])
