"""Fixtures of the container tests (tox env ``docker``).

One Docker engine for the session (Debian's docker.io, started here when it
is not running and stopped again), one set of images built from docker/ as
docs/docker.md says, on the cached local base image and the stand-in for the
official Synapse image. Every container, network, volume and image made here
is removed at the end; only the base image stays (lab/docker/images.py).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from v6alt.lab.docker.engine import Engine, missing_tools, run
from v6alt.lab.docker.images import ImageSet, base_image, wheelhouse
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


@dataclass
class Images:
    base: str
    standin: str
    synapse: str
    v6alt: str
    yggdrasil: str
    prosody: str
    set: ImageSet
    base_seconds: float


@pytest.fixture(scope="session")
def images(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Images]:
    work = tmp_path_factory.mktemp("images")
    image_set = ImageSet(engine, f"run-{secrets.token_hex(4)}")
    try:
        base, base_seconds = base_image(engine, work)
        # The stand-in for the official image: the base, pip, Synapse's wheels.
        standin_context = work / "standin"
        shutil.copytree(STANDIN_DIR, standin_context)
        wheelhouse(
            REPO,
            standin_context / "wheels",
            [f"matrix-synapse[redis]=={SYNAPSE_VERSION}", "psycopg2-binary"],
        )
        standin = image_set.build(
            "synapse-standin",
            standin_context,
            standin_context / "Dockerfile",
            {"BASE_IMAGE": base},
        )
        # The project's images, from a copy of docker/ with the wheels in dist/
        # (docs/docker.md: python -m build --wheel --outdir docker/dist .).
        context = work / "docker"
        shutil.copytree(DOCKER_DIR, context, ignore=shutil.ignore_patterns("dist"))
        wheelhouse(REPO, context / "dist", ["v6alt[sidecar,check]"])
        # mod_v6alt's rock, for prosodyctl install in the Prosody image.
        run([str(REPO / "scripts" / "build-rock.sh"), str(context / "dist")], timeout=300)
        offline = {"PIP_OPTIONS": "--no-index"}
        synapse = image_set.build(
            "synapse",
            context,
            context / "synapse" / "Dockerfile",
            {"SYNAPSE_IMAGE": standin, **offline},
        )
        v6alt = image_set.build(
            "v6alt", context, context / "v6alt" / "Dockerfile", {"BASE_IMAGE": base, **offline}
        )
        yggdrasil = image_set.build(
            "yggdrasil",
            context,
            context / "yggdrasil" / "Dockerfile",
            {"V6ALT_IMAGE": v6alt},
            network_host=True,
        )
        prosody = image_set.build(
            "prosody",
            context,
            context / "prosody" / "Dockerfile",
            {"BASE_IMAGE": base},
            network_host=True,
        )
        yield Images(base, standin, synapse, v6alt, yggdrasil, prosody, image_set, base_seconds)
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


def server_name(setup_log: str) -> str:
    """The name v6alt-docker-setup printed."""
    names = re.findall(r"\b([a-z0-9-]+\.v6\.alt)\b", setup_log)
    assert names, f"setup printed no server name:\n{setup_log}"
    return names[-1]


def mesh_stack(engine: Engine, images: Images, network: Network, peers: str = "") -> Stack:
    return Stack(
        engine,
        DOCKER_DIR / "mesh" / "compose.yaml",
        f"v6alt-test-{secrets.token_hex(3)}",
        {
            "V6ALT_IMAGE": images.v6alt,
            "V6ALT_SYNAPSE_IMAGE": images.synapse,
            "V6ALT_YGGDRASIL_IMAGE": images.yggdrasil,
            "V6ALT_PROSODY_IMAGE": images.prosody,
            "YGGDRASIL_UNDERLAY": network.name,
            "YGGDRASIL_LISTEN": "tcp://[::]:9001",
            "YGGDRASIL_PEERS": peers,
            "V6ALT_REGISTRATION_SECRET": REGISTRATION_SECRET,
            "SYNAPSE_CLIENT_PORT": "127.0.0.1:0",
            "XMPP_CLIENT_PORT": "127.0.0.1:0",
        },
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
