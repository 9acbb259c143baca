"""A real Synapse homeserver process inside a test network namespace.

The homeserver.yaml is the documented snippet (docs/synapse-homeserver.yaml)
plus test-only settings (tests/synapse/homeserver-test.yaml), both filled in
with ``string.Template``; the module's ``config:`` mapping may be replaced
per test. The client API is served on a unix socket, so the test process
talks to a homeserver in another network namespace through the file system.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from string import Template
from typing import Any

import yaml
from v6s_netns import Host, run

from v6alt.codec import encode

REPO = Path(__file__).resolve().parents[2]
DOCS_SNIPPET = REPO / "docs" / "synapse-homeserver.yaml"
TEST_SETTINGS = Path(__file__).with_name("homeserver-test.yaml")
START_TIMEOUT = 90.0

LOG_CONFIG = """\
version: 1
formatters:
  plain:
    format: "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
handlers:
  file:
    class: logging.FileHandler
    filename: "{log}"
    formatter: plain
loggers:
  v6alt: {{level: DEBUG}}
  synapse.http.federation: {{level: DEBUG}}
  synapse.storage.SQL: {{level: WARNING}}
  synapse.storage.txn: {{level: WARNING}}
root:
  level: INFO
  handlers: [file]
disable_existing_loggers: false
"""


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def render_config(values: dict[str, str], module_config: Any = None, extra: Any = None) -> Any:
    """The merged homeserver config as data (listeners concatenated)."""
    documented = yaml.safe_load(Template(DOCS_SNIPPET.read_text()).substitute(values))
    test_only = yaml.safe_load(Template(TEST_SETTINGS.read_text()).substitute(values))
    listeners = documented.pop("listeners") + test_only.pop("listeners")
    config = {**documented, **test_only, "listeners": listeners}
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
        self.log_path = data_dir / "homeserver.log"
        self.dns_log = data_dir / "dns-queries.log"
        self.secret = secrets.token_hex(16)
        self.module_config = module_config
        self.extra = extra
        self.env = env
        self.federation_tls = federation_tls
        self.extra_listeners = extra_listeners or []
        self.workers: list[subprocess.Popen[bytes]] = []
        self.process: subprocess.Popen[bytes] | None = None

    # -- set-up ------------------------------------------------------------
    def prepare(self) -> None:
        d = self.data_dir
        d.mkdir(parents=True, exist_ok=True)
        if self.ca_dir is None:
            run(
                "openssl", "req", "-x509", "-newkey", "ec",
                "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-days", "30", "-subj", f"/CN={self.server_name}",
                "-addext", f"subjectAltName=DNS:{self.server_name}",
                "-keyout", str(d / "tls.key"), "-out", str(d / "tls.crt"),
            )  # fmt: skip
        else:
            issue_certificate(self.ca_dir, self.server_name, d / "tls.key", d / "tls.crt")
        from signedjson.key import generate_signing_key, write_signing_keys

        # A fresh key id per instance: several tests reuse a host, hence a server
        # name, and peers cache keys by (server name, key id).
        with open(d / "signing.key", "w") as f:
            write_signing_keys(f, [generate_signing_key(f"a_{secrets.token_hex(4)}")])
        (d / "log.yaml").write_text(LOG_CONFIG.format(log=self.log_path))
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
        (d / "homeserver.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def spawn(self) -> None:
        config = str(self.data_dir / "homeserver.yaml")
        command = [
            *self.host.exec_prefix(), sys.executable, "-m", "synapse.app.homeserver", "-c", config
        ]  # fmt: skip
        env = {**os.environ, **(self.env or {})}
        with open(self.data_dir / "stdout.log", "wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.server_name} exited at start-up:\n{self.output_tail()}")
            try:
                status, _ = self.request("GET", "/health", timeout=2)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(
            f"{self.server_name} did not start in {START_TIMEOUT}s:\n{self.output_tail()}"
        )

    def spawn_worker(self, name: str, app: str = "synapse.app.generic_worker") -> Path:
        """Start a worker process on this homeserver's config; returns its log path."""
        log = self.data_dir / f"{name}.log"
        (self.data_dir / f"{name}-log.yaml").write_text(LOG_CONFIG.format(log=log))
        worker = {
            "worker_app": app,
            "worker_name": name,
            "worker_log_config": str(self.data_dir / f"{name}-log.yaml"),
            "worker_pid_file": str(self.data_dir / f"{name}.pid"),
        }
        (self.data_dir / f"{name}.yaml").write_text(yaml.safe_dump(worker))
        command = [
            *self.host.exec_prefix(), sys.executable, "-m", app,
            "-c", str(self.data_dir / "homeserver.yaml"), "-c", str(self.data_dir / f"{name}.yaml"),
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
        for path in (self.data_dir / "stdout.log", self.log_path):
            if path.exists():
                text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text

    # -- client API --------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        timeout: float = 60,
    ) -> tuple[int, Any]:
        connection = _UnixHTTPConnection(str(self.data_dir / "client.sock"), timeout)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        try:
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        try:
            return response.status, json.loads(raw) if raw else None
        except ValueError:
            return response.status, raw.decode(errors="replace")

    def register(self, localpart: str, password: str = "v6alt-test-password") -> str:
        """Register a user with the shared secret; returns an access token."""
        status, body = self.request("GET", "/_synapse/admin/v1/register")
        assert status == 200, body
        nonce = body["nonce"]
        mac = hmac.new(self.secret.encode(), digestmod=hashlib.sha1)
        mac.update(
            b"\x00".join([nonce.encode(), localpart.encode(), password.encode(), b"notadmin"])
        )
        status, body = self.request(
            "POST",
            "/_synapse/admin/v1/register",
            {"nonce": nonce, "username": localpart, "password": password, "admin": False,
             "mac": mac.hexdigest()},
        )  # fmt: skip
        assert status == 200, body
        return str(body["access_token"])

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    # -- logs --------------------------------------------------------------
    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

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
    directory.mkdir(parents=True, exist_ok=True)
    run(
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-days", "30", "-subj", "/CN=v6alt test CA",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", str(directory / "ca.key"), "-out", str(directory / "ca.crt"),
    )  # fmt: skip
    return directory


def issue_certificate(ca_dir: Path, name: str, key: Path, certificate: Path) -> None:
    """A certificate for DNS name ``name`` signed by the test CA in ``ca_dir``."""
    request = certificate.with_suffix(".csr")
    run(
        "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(request),
    )  # fmt: skip
    extensions = certificate.with_suffix(".ext")
    # Everything strict X.509 verification asks of a leaf certificate.
    extensions.write_text(
        f"subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
    )
    run(
        "openssl", "x509", "-req", "-in", str(request), "-days", "30",
        "-CA", str(ca_dir / "ca.crt"), "-CAkey", str(ca_dir / "ca.key"), "-CAcreateserial",
        "-extfile", str(extensions), "-out", str(certificate),
    )  # fmt: skip


def quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")
