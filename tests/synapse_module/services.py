"""PostgreSQL and Redis from Debian, private to one test run, on unix sockets only.

Neither opens a TCP port: a unix socket is a file, so homeservers in any
network namespace reach them, and nothing else on the machine is touched.
PostgreSQL refuses to run as root, so it runs as the ``postgres`` user the
Debian package creates.
"""

from __future__ import annotations

import glob
import importlib.util
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from v6alt.lab.netns import run

COMMAND_TIMEOUT = 120.0
PG_USER = "v6s"
PG_DATABASE = "synapse"


def _postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} not found: apt-get install postgresql")
    return found[-1]


def _wait(what: str, ready: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start in {timeout}s")
        time.sleep(0.2)


class Postgres:
    """A PostgreSQL cluster in a fresh directory under /tmp (the ``postgres`` user
    must reach it, so not under pytest's private temporary directories)."""

    def __init__(self, port: int = 18410) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="v6s-postgres-"))
        self.directory.chmod(0o755)
        directory = self.directory
        self.data = directory / "data"
        self.socket_dir = directory / "socket"
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Postgres:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.directory, "postgres")
        shutil.chown(self.socket_dir, "postgres")
        run(["runuser", "-u", "postgres", "--", _postgres_bin("initdb"), "-D", str(self.data),
             "-A", "trust", "-U", PG_USER, "--encoding=UTF8", "--locale=C"],
            timeout=COMMAND_TIMEOUT)  # fmt: skip
        log = open(self.directory / "postgres.log", "wb")  # noqa: SIM115 (the server keeps it)
        self.process = subprocess.Popen(
            ["runuser", "-u", "postgres", "--", _postgres_bin("postgres"), "-D", str(self.data),
             "-k", str(self.socket_dir), "-p", str(self.port), "-c", "listen_addresses="],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        socket = self.socket_dir / f".s.PGSQL.{self.port}"
        _wait("PostgreSQL", socket.exists)
        run([_postgres_bin("createdb"), "-h", str(self.socket_dir), "-p", str(self.port),
             "-U", PG_USER, "-E", "UTF8", "--locale=C", "-T", "template0", PG_DATABASE],
            timeout=COMMAND_TIMEOUT)  # fmt: skip
        return self

    def synapse_database(self) -> dict[str, object]:
        return {
            "name": "psycopg2",
            "args": {
                "user": PG_USER,
                "database": PG_DATABASE,
                "host": str(self.socket_dir),
                "port": self.port,
                "cp_min": 1,
                "cp_max": 5,
            },
        }

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # "smart" shutdown; runuser passes SIGTERM on
            self.process.wait(timeout=30)
        shutil.rmtree(self.directory, ignore_errors=True)


class Redis:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket = directory / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Redis:
        self.directory.mkdir(parents=True, exist_ok=True)
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("redis-server not found: apt-get install redis-server")
        log = open(self.directory / "redis.log", "wb")  # noqa: SIM115 (the server keeps it)
        self.process = subprocess.Popen(
            [server, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", str(self.directory)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        _wait("Redis", self.socket.exists)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def missing_worker_parts() -> list[str]:
    """What a worker deployment needs and this machine lacks (Python clients, servers)."""
    missing = [m for m in ("psycopg2", "txredisapi", "hiredis") if not importlib.util.find_spec(m)]
    return missing + [b for b in ("redis-server",) if shutil.which(b) is None]


@contextmanager
def worker_backends(redis_directory: Path) -> Iterator[tuple[Postgres, Redis]]:
    """A private PostgreSQL and Redis for one worker deployment, stopped on exit.

    Fails the test, naming the install commands, when a part is missing.
    """
    missing = missing_worker_parts()
    if missing:
        pytest.fail(
            f"the worker deployment test needs {', '.join(missing)}: pip install "
            "psycopg2-binary 'txredisapi>=1.4.12,<1.6.0' hiredis; "
            "apt-get install postgresql redis-server"
        )
    postgres = Postgres().start()
    try:
        redis = Redis(redis_directory).start()
        try:
            yield postgres, redis
        finally:
            redis.stop()
    finally:
        postgres.stop()


def worker_settings(data: Path, postgres: Postgres, redis: Redis, sender: str) -> dict[str, Any]:
    """The launcher's settings for a main process whose federation ``sender`` is a worker:
    PostgreSQL, Redis, and the replication listener on a socket in ``data``."""
    replication = str(data / "replication.sock")
    return {
        "extra": {
            "database": postgres.synapse_database(),
            "redis": {"enabled": True, "path": str(redis.socket)},
            "instance_map": {"main": {"path": replication}},
            "federation_sender_instances": [sender],
        },
        "extra_listeners": [
            {"path": replication, "type": "http", "resources": [{"names": ["replication"]}]}
        ],
    }
