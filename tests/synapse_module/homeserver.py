"""A real Synapse homeserver process inside a test network namespace.

The homeserver.yaml is the documented snippet (docs/synapse-homeserver.yaml,
filled in with ``string.Template``) plus the settings of every disposable
homeserver (``lab_config`` of v6alt.synapse_module.lab_files: SQLite, a
registration secret, the client API on a unix socket, generous rate limits);
the module's ``config:`` mapping may be replaced per test. The client API is
served on a unix socket, so the test process talks to a homeserver in another
network namespace through the file system (``ClientApi`` of
v6alt.synapse_module.lab_client).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from string import Template
from typing import Any

import yaml
from v6s_netns import Host

from v6alt.codec import encode
from v6alt.synapse_module.certificates import LabCa, make_lab_ca, self_signed_certificate
from v6alt.synapse_module.lab_client import ClientApi, quote, register_user, wait_healthy
from v6alt.synapse_module.lab_files import (
    LAB_LOGGERS,
    HomeserverFiles,
    lab_config,
    write_config,
    write_server_keys,
)
from v6alt.synapse_module.lab_files import log_config as _log_config

__all__ = ["Homeserver", "log_config", "make_ca", "quote", "render_config"]

REPO = Path(__file__).resolve().parents[2]
DOCS_SNIPPET = REPO / "docs" / "synapse-homeserver.yaml"
START_TIMEOUT = 90.0
#: The lab's loggers, plus the federation client's requests (tests look for them in the log).
TEST_LOGGERS = {
    **LAB_LOGGERS,
    "synapse.http.federation": "DEBUG",
    "synapse.storage.txn": "WARNING",
}
#: The client socket serves keys too: tests query a peer's keys through their own server.
CLIENT_RESOURCES = ("client", "keys")


def log_config(log: Path) -> str:
    """The tests' Synapse logging config: everything into ``log``, the federation client too."""
    return _log_config(log, TEST_LOGGERS)


def render_config(values: dict[str, str], module_config: Any = None, extra: Any = None) -> Any:
    """The merged homeserver config as data: the documented snippet, the disposable server's
    settings (``values["data_dir"]``, ``values["registration_secret"]``), then the overrides."""
    documented = yaml.safe_load(Template(DOCS_SNIPPET.read_text()).substitute(values))
    files = HomeserverFiles(Path(values["data_dir"]), values["server_name"])
    config = lab_config(files, documented, values["registration_secret"], CLIENT_RESOURCES)
    if module_config is not None:
        config["modules"][0]["config"] = module_config
    for key, value in (extra or {}).items():
        config[key] = value
    return config


class Homeserver:
    def __init__(
        self,
        host: Host,
        data_dir: Path,
        *,
        module_config: Any = None,
        extra: Any = None,
        env: dict[str, str] | None = None,
        federation_tls: bool = True,
        extra_listeners: list[Any] | None = None,
        server_name: str | None = None,
        ca_dir: Path | None = None,
        dns_records: dict[str, str] | None = None,
    ) -> None:
        self.host = host
        self.address = host.address
        self.server_name = server_name or encode(self.address)
        self.ca_dir = ca_dir
        # AAAA records the namespace's DNS recorder answers (name -> address).
        self.dns_records = dns_records
        self.data_dir = data_dir
        self.log_path = self.files.log
        self.dns_log = data_dir / "dns-queries.log"
        self.secret = ""  # written by prepare()
        self.module_config = module_config
        self.extra = extra
        self.env = env
        self.federation_tls = federation_tls
        self.extra_listeners = extra_listeners or []
        self.workers: list[subprocess.Popen[bytes]] = []
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def files(self) -> HomeserverFiles:
        return HomeserverFiles(self.data_dir, self.server_name)

    # -- set-up ------------------------------------------------------------
    def prepare(self) -> None:
        d = self.data_dir
        d.mkdir(parents=True, exist_ok=True)
        issuer = self_signed_certificate if self.ca_dir is None else LabCa(self.ca_dir).issue
        # Several tests reuse a host, hence a server name: the signing key's id is fresh.
        self.secret = write_server_keys(self.files, issuer, TEST_LOGGERS)
        values = {
            "server_name": self.server_name,
            "mesh_address": str(self.address),
            "tls_certificate_path": str(d / "tls.crt"),
            "tls_private_key_path": str(d / "tls.key"),
            "data_dir": str(d),
            "registration_secret": self.secret,
        }
        config = render_config(values, self.module_config, self.extra)
        if not self.federation_tls:
            # A `tls: off` secure range: the documented federation listener, plain HTTP.
            config["listeners"][0]["tls"] = False
        config["listeners"] += self.extra_listeners
        write_config(self.files, config)

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def spawn(self) -> None:
        config = str(self.files.config)
        command = [
            *self.host.exec_prefix(), sys.executable, "-m", "synapse.app.homeserver", "-c", config
        ]  # fmt: skip
        env = {**os.environ, **(self.env or {})}
        with open(self.files.output, "wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self) -> None:
        assert self.process is not None
        if wait_healthy(self.api, self.running, time.monotonic() + START_TIMEOUT):
            return
        if not self.running():
            raise RuntimeError(f"{self.server_name} exited at start-up:\n{self.output_tail()}")
        raise RuntimeError(
            f"{self.server_name} did not start in {START_TIMEOUT}s:\n{self.output_tail()}"
        )

    def spawn_worker(self, name: str, app: str = "synapse.app.generic_worker") -> Path:
        """Start a worker process on this homeserver's config; returns its log path."""
        log = self.data_dir / f"{name}.log"
        (self.data_dir / f"{name}-log.yaml").write_text(log_config(log))
        worker = {
            "worker_app": app,
            "worker_name": name,
            "worker_log_config": str(self.data_dir / f"{name}-log.yaml"),
            "worker_pid_file": str(self.data_dir / f"{name}.pid"),
        }
        (self.data_dir / f"{name}.yaml").write_text(yaml.safe_dump(worker))
        command = [
            *self.host.exec_prefix(), sys.executable, "-m", app,
            "-c", str(self.files.config), "-c", str(self.data_dir / f"{name}.yaml"),
        ]  # fmt: skip
        with open(self.data_dir / f"{name}.stdout.log", "wb") as out:
            self.workers.append(
                subprocess.Popen(
                    command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
        return log

    def stop(self) -> None:
        for process in [*self.workers, self.process]:
            if process is None or process.poll() is not None:
                continue
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.workers.clear()

    def output_tail(self, lines: int = 15) -> str:
        text = ""
        for path in (self.files.output, self.log_path):
            if path.exists():
                text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text

    # -- client API --------------------------------------------------------
    @property
    def api(self) -> ClientApi:
        return ClientApi(self.files.client_socket, self.server_name)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        timeout: float = 60,
    ) -> tuple[int, Any]:
        return self.api.request(method, path, body, token, timeout)

    def register(self, localpart: str, password: str = "v6alt-test-password") -> str:
        """Register a user with the shared secret; returns an access token."""
        return register_user(self.api, self.secret, localpart, password).token

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    # -- logs --------------------------------------------------------------
    def log_text(self) -> str:
        return self.files.log_text()

    def wait_for_log(self, pattern: str, timeout: float = 30.0, start: int = 0) -> str:
        """Wait until ``pattern`` (regex) appears in the log after offset ``start``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.log_text(), start)
            if match:
                return match.group(0)
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.server_name}: no log line matching {pattern!r} in {timeout}s:\n"
                    f"{self.output_tail()}"
                )
            time.sleep(0.2)

    def wait_for_request(
        self, source: object, path: str, *, scheme: str = "https?", start: int = 0
    ) -> str:
        """Wait until the federation listener's access log shows a request from the
        address ``source`` whose line matches ``path`` (regex); ``scheme``: http,
        https or https?."""
        return self.wait_for_log(
            rf"synapse\.access\.{scheme}\.8448 - INFO - {re.escape(str(source))} .*{path}",
            start=start,
        )

    def wait_for(self, what: str, probe: Any, timeout: float = 30.0, interval: float = 0.3) -> Any:
        """Poll ``probe()`` until it returns something truthy; fail naming ``what``."""
        deadline = time.monotonic() + timeout
        while True:
            result = probe()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.server_name}: {what} not seen in {timeout}s")
            time.sleep(interval)

    def log_mark(self) -> int:
        return len(self.log_text())


def make_ca(directory: Path) -> Path:
    """A test certificate authority: ``ca.crt`` and ``ca.key`` in ``directory``."""
    return make_lab_ca(directory, "v6alt test CA").directory
