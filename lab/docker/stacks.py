"""One compose project of the container tests: a stack from docker/, run with
``docker-compose`` (1.29, the compose file format users run with
``docker compose``) under its own project name, removed with its volumes."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv6Address
from pathlib import Path

from .engine import DOCKER_COMPOSE, DockerError, Engine, run
from .images import ProjectImages

__all__ = ["Network", "Stack", "mesh_stack", "server_name"]


@dataclass
class Network:
    """A docker network the tests made (``docker network create``), removed by :meth:`remove`."""

    engine: Engine
    name: str
    subnet: str
    extra: Sequence[str] = ()

    def create(self) -> Network:
        self.engine.docker(
            ["network", "create", "--ipv6", "--subnet", self.subnet, *self.extra, self.name]
        )
        return self

    def remove(self) -> None:
        with contextlib.suppress(DockerError):
            self.engine.docker(["network", "rm", self.name])


@dataclass
class Stack:
    """``docker-compose -p PROJECT -f FILE`` with ``environment`` set."""

    engine: Engine
    compose_file: Path
    project: str
    environment: dict[str, str] = field(default_factory=dict)

    def compose(self, args: Sequence[str], *, timeout: float = 600) -> str:
        env = {**os.environ, **self.environment}
        argv = [DOCKER_COMPOSE, "--no-ansi", "-p", self.project, "-f", str(self.compose_file)]
        return run([*argv, *args], env=env, timeout=timeout, cwd=self.compose_file.parent)

    def up(self, *services: str) -> float:
        """``up -d --no-build`` (the images are built already); the seconds it took."""
        started = time.monotonic()
        self.compose(["up", "-d", "--no-build", *services])
        return time.monotonic() - started

    def down(self) -> None:
        """Remove the stack's containers, its networks and its volumes."""
        with contextlib.suppress(DockerError):
            self.compose(["down", "--volumes", "--remove-orphans", "--timeout", "5"])

    def logs(self, *services: str) -> str:
        try:
            return self.compose(["logs", "--no-color", "--tail", "200", *services])
        except DockerError as error:
            return str(error)

    def container(self, service: str) -> str:
        """The id of the service's (first) container."""
        found = self.compose(["ps", "-q", service]).split()
        if not found:
            raise DockerError(f"{self.project}: no container for {service}")
        return found[0]

    def exec(self, service: str, argv: Sequence[str], *, user: str | None = None) -> str:
        command = ["exec", *(["--user", user] if user else []), self.container(service), *argv]
        return self.engine.docker(command)

    def state(self, service: str) -> dict[str, object]:
        data = json.loads(
            self.engine.docker(["inspect", "--format", "{{json .State}}", self.container(service)])
        )
        assert isinstance(data, dict)
        return data

    def address(self, service: str, network: str) -> IPv6Address:
        """The service container's global IPv6 address on ``network``."""
        text = self.engine.docker(
            [
                "inspect",
                "--format",
                f'{{{{(index .NetworkSettings.Networks "{network}").GlobalIPv6Address}}}}',
                self.container(service),
            ]
        ).strip()
        return IPv6Address(text)

    def wait_exited(self, service: str, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while True:
            state = self.state(service)
            if state.get("Status") == "exited":
                code = state.get("ExitCode")
                return code if isinstance(code, int) else -1
            if time.monotonic() > deadline:
                raise DockerError(f"{self.project}: {service} still running after {timeout} s")
            time.sleep(0.5)


def mesh_stack(
    compose_file: Path,
    images: ProjectImages,
    underlay: Network,
    registration_secret: str,
    peers: str = "",
) -> Stack:
    """docker/mesh/compose.yaml as the tests and benchmarks run it: the run's
    images, Yggdrasil over ``underlay`` (plain TCP, peering with ``peers``), no
    host ports published (clients use the node's underlay address)."""
    return Stack(
        images.set.engine,
        compose_file,
        f"v6alt-test-{secrets.token_hex(3)}",
        {
            "V6ALT_IMAGE": images.v6alt,
            "V6ALT_SYNAPSE_IMAGE": images.synapse,
            "V6ALT_YGGDRASIL_IMAGE": images.yggdrasil,
            "V6ALT_PROSODY_IMAGE": images.prosody,
            "YGGDRASIL_UNDERLAY": underlay.name,
            "YGGDRASIL_LISTEN": "tcp://[::]:9001",
            "YGGDRASIL_PEERS": peers,
            "V6ALT_REGISTRATION_SECRET": registration_secret,
            "SYNAPSE_CLIENT_PORT": "127.0.0.1:0",
            "XMPP_CLIENT_PORT": "127.0.0.1:0",
        },
    )


def server_name(setup_log: str) -> str:
    """The server name `v6alt docker-setup` printed (the last v6.alt name in its log)."""
    names = re.findall(r"\b([a-z0-9-]+\.v6\.alt)\b", setup_log)
    if not names:
        raise DockerError(f"setup printed no server name:\n{setup_log}")
    return str(names[-1])
