"""A running Docker engine for the tests: Debian's docker.io (dockerd 20.10).

:class:`Engine` uses the dockerd that runs, or starts one as a background
process and stops it again on :meth:`Engine.close`. A dockerd loads
br_netfilter and sets the IPv4 FORWARD policy to DROP (docs/docker.md); when
this engine started it, closing it puts the policy and the bridge sysctls
back as they were, so the namespace labs of later tests keep working.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

__all__ = ["DOCKER", "DOCKER_COMPOSE", "DockerError", "Engine", "missing_tools", "run"]

# Debian's client, not another docker that may come first on PATH.
DOCKER: Final = "/usr/bin/docker"
DOCKER_COMPOSE: Final = "/usr/bin/docker-compose"
DOCKERD: Final = "/usr/sbin/dockerd"
DEBOOTSTRAP: Final = "/usr/sbin/debootstrap"
START_TIMEOUT: Final = 60.0
_BRIDGE_SYSCTLS: Final = (
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
)


class DockerError(RuntimeError):
    """A docker command failed (its output is in the message)."""


def missing_tools() -> list[str]:
    """The commands the container tests need that are not installed."""
    return [t for t in (DOCKER, DOCKERD, DOCKER_COMPOSE, DEBOOTSTRAP) if not Path(t).exists()]


def _forward_policy() -> str | None:
    try:
        out = subprocess.run(
            ["iptables", "-S", "FORWARD"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    for line in out.splitlines():
        if line.startswith("-P FORWARD "):
            return line.split()[2]
    return None


def _read_sysctl(name: str) -> str | None:
    try:
        return Path("/proc/sys", name).read_text().strip()
    except OSError:
        return None


class Engine:
    """The docker engine, started by :meth:`start` if it was not running."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._process: subprocess.Popen[bytes] | None = None
        self._policy: str | None = None
        self._sysctls: dict[str, str | None] = {}

    @property
    def started_here(self) -> bool:
        return self._process is not None

    def running(self) -> bool:
        done = subprocess.run(
            [DOCKER, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            check=False,
        )
        return done.returncode == 0

    def start(self) -> None:
        if self.running():
            return
        self._policy = _forward_policy()
        self._sysctls = {name: _read_sysctl(name) for name in _BRIDGE_SYSCTLS}
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / "dockerd.log").open("ab")
        # Its own session: a Ctrl-C in the test run reaches it only through close().
        self._process = subprocess.Popen(
            [DOCKERD], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.running():
            if self._process.poll() is not None:
                raise DockerError(f"dockerd exited ({self._process.returncode}); see {log.name}")
            if time.monotonic() > deadline:
                raise DockerError(f"dockerd did not answer within {START_TIMEOUT:.0f} s")
            time.sleep(0.3)

    def close(self) -> None:
        """Stop dockerd if this engine started it, and undo its host-wide settings."""
        process, self._process = self._process, None
        if process is None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if self._policy is not None:
            subprocess.run(["iptables", "-P", "FORWARD", self._policy], check=False)
        for name, value in self._sysctls.items():
            path = Path("/proc/sys", name)
            if path.exists():
                path.write_text(value if value is not None else "0")

    def docker(
        self, args: Sequence[str], *, input: bytes | None = None, timeout: float = 600
    ) -> str:
        """Run ``docker ARGS``; its stdout. Raises :class:`DockerError` on failure."""
        return run([DOCKER, *args], input=input, timeout=timeout)


def run(
    argv: Sequence[str],
    *,
    input: bytes | None = None,
    timeout: float = 600,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> str:
    """Run a command; its stdout. Raises :class:`DockerError` with its output on failure."""
    done = subprocess.run(
        list(argv),
        input=input,
        capture_output=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
        check=False,
    )
    if done.returncode != 0:
        raise DockerError(
            f"{' '.join(argv[:4])} ... failed ({done.returncode}):\n"
            f"{done.stdout.decode(errors='replace')[-3000:]}"
            f"{done.stderr.decode(errors='replace')[-3000:]}"
        )
    return done.stdout.decode(errors="replace")
