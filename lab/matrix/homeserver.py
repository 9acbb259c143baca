"""The one homeserver launcher: a Synapse process on its own files, wherever it runs.

The lab, the Synapse tests, the checker's tests, the loopback demo and the
benchmarks all start Synapse through :class:`Homeserver`, parametrised by
what differs between them:

- where: in a network namespace (``netns``, e.g. a host of a
  :class:`~v6alt.lab.netns.FlatNet` or of the Yggdrasil lab) or in this one
  (loopback, the demo without root);
- on which address and port, under which server name (by default the
  address's v6.alt name, with the port when it is not 8448);
- module or stock: the documented settings with the v6alt module, or
  without it and trusting a test CA (``ca``);
- the overrides a test needs (the module's ``config:``, top-level keys,
  listeners, a homeserver.yaml ``template`` such as the documented snippet).

::

    hs = Homeserver(tree, address, netns="v6f-1-a")
    hs.start()                                  # files written, process up, /health answers
    alice = hs.register("alice", "pw")          # a MatrixUser (client-server API)
    hs.stop()

Synapse runs in this interpreter (so the v6alt module imports); its client
API is served on a unix socket in its directory, reached from any namespace
through the file system. The lab's homeservers, recorded in the lab's state
file, are written by :meth:`Homeserver.prepare` and started with
:meth:`Homeserver.command` by the lab's service spawner (:mod:`.mesh`).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any, Final

import yaml

from v6alt.codec import encode

from ..certificates import CertificateIssuer, LabCa
from ..errors import LabEnvironmentError, LabError, LabTimeoutError
from ..netns import find_tool, netns_exec_argv
from . import synapse_installed
from .client import ClientApi, MatrixUser, register_user, wait_healthy
from .files import FEDERATION_PORT, LAB_LOGGERS, HomeserverFiles, log_config, write_homeserver_files

__all__ = [
    "STARTUP_TIMEOUT",
    "Homeserver",
    "check_synapse_tools",
    "synapse_command",
    "wait_synapse_ready",
]

STARTUP_TIMEOUT: Final = 120.0
STOP_TIMEOUT: Final = 30.0
#: What a worker logs once its replication over Redis is up (Synapse 1.100-1.163).
WORKER_REPLICATING: Final = "REPLICATE successfully sent"


def check_synapse_tools() -> None:
    """matrix-synapse importable in this interpreter, and openssl for the certificate."""
    if not synapse_installed():
        raise LabEnvironmentError(
            f"matrix-synapse is not installed for {sys.executable}; "
            "install it with: pip install matrix-synapse"
        )
    find_tool("openssl", "openssl", "apt-get install openssl")


def synapse_command(files: HomeserverFiles, app: str = "synapse.app.homeserver") -> list[str]:
    """Synapse on ``files.config``, in this interpreter (so the v6alt module imports)."""
    return [sys.executable, "-m", app, "-c", str(files.config)]


def wait_synapse_ready(
    files: HomeserverFiles, running: Callable[[], bool], deadline: float, where: str
) -> None:
    """Until its client API answers ``/health`` (all listeners are up by then).

    :class:`LabError` naming ``where`` once the process has exited,
    :class:`LabTimeoutError` after ``deadline`` (:func:`time.monotonic`).
    """
    if wait_healthy(ClientApi(files.client_socket, files.server_name), running, deadline):
        return
    if not running():
        raise LabError(f"{where}: synapse exited at start-up{files.output_tail()}")
    raise LabTimeoutError(f"timed out waiting for synapse on {where}{files.output_tail()}")


def default_server_name(address: IPv6Address, port: int = FEDERATION_PORT) -> str:
    """The v6.alt name of ``address``, with ``:port`` unless it is the default 8448."""
    name = encode(address)
    return name if port == FEDERATION_PORT else f"{name}:{port}"


class Homeserver:
    """One Synapse process (with the v6alt module, or stock) on its files in ``tree``."""

    def __init__(
        self,
        tree: Path,
        address: IPv6Address,
        *,
        server_name: str | None = None,
        netns: str | None = None,
        port: int = FEDERATION_PORT,
        ca: LabCa | None = None,
        issuer: CertificateIssuer | None = None,
        template: Path | None = None,
        module_config: Any = None,
        extra: Mapping[str, Any] | None = None,
        federation_tls: bool = True,
        extra_listeners: Sequence[Any] = (),
        unsafe_allow: Sequence[str] = (),
        loggers: Mapping[str, str] = LAB_LOGGERS,
        client_resources: Sequence[str] = ("client",),
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``ca``: a stock homeserver (no module) whose certificate ``ca`` issues and
        which trusts ``ca``; ``issuer``: who issues the certificate otherwise
        (self-signed by default). The rest: see :func:`.files.homeserver_config`."""
        self.tree = tree
        self.address = address
        self.port = port
        self.server_name = server_name or default_server_name(address, port)
        self.netns = netns
        self.ca = ca
        self.issuer = issuer
        self.template = template
        self.module_config = module_config
        self.extra = extra
        self.federation_tls = federation_tls
        self.extra_listeners = list(extra_listeners)
        self.unsafe_allow = list(unsafe_allow)
        self.loggers = loggers
        self.client_resources = tuple(client_resources)
        self.env = env
        self.secret = ""  # written by prepare()
        self.process: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []

    @property
    def files(self) -> HomeserverFiles:
        return HomeserverFiles(self.tree, self.server_name)

    @property
    def log_path(self) -> Path:
        return self.files.log

    # -- set-up ------------------------------------------------------------
    def prepare(self) -> None:
        """Write config, certificate, signing key and secret (a fresh signing key id
        every time: tests reuse a host, hence a server name)."""
        self.tree.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.secret = write_homeserver_files(
            self.files,
            self.address,
            ca=self.ca,
            issuer=self.issuer,
            loggers=self.loggers,
            port=self.port,
            template=self.template,
            module_config=self.module_config,
            extra=self.extra,
            federation_tls=self.federation_tls,
            extra_listeners=self.extra_listeners,
            unsafe_allow=self.unsafe_allow,
            client_resources=self.client_resources,
        )

    def command(self, app: str = "synapse.app.homeserver", *configs: Path) -> list[str]:
        """The argv that runs ``app`` on this homeserver's config (in its namespace, if any)."""
        argv = [*synapse_command(self.files, app), *(a for c in configs for a in ("-c", str(c)))]
        return netns_exec_argv(self.netns, argv) if self.netns else argv

    def _popen(self, argv: list[str], output: Path) -> subprocess.Popen[bytes]:
        env = {**os.environ, **(self.env or {})}
        with output.open("ab") as out:
            return subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                start_new_session=True,
            )  # fmt: skip

    def spawn(self) -> None:
        """Start the process without waiting for it to be ready."""
        self.process = self._popen(self.command(), self.files.output)

    def start(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Write the files, start the process and wait until it is ready."""
        self.prepare()
        self.spawn()
        self.wait_ready(time.monotonic() + timeout)

    @property
    def pid(self) -> int:
        """The homeserver process's id (after :meth:`spawn`)."""
        if self.process is None:
            raise LabError(f"{self.server_name}: not started")
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, deadline: float | None = None) -> None:
        """Until the client API answers ``/health`` (by ``deadline``, :func:`time.monotonic`)."""
        assert self.process is not None, "spawn() first"
        deadline = time.monotonic() + STARTUP_TIMEOUT if deadline is None else deadline
        wait_synapse_ready(self.files, self.running, deadline, self.server_name)

    def spawn_worker(
        self,
        name: str,
        app: str = "synapse.app.generic_worker",
        listeners: Sequence[Mapping[str, Any]] = (),
    ) -> Path:
        """Start a worker process on this homeserver's config; returns its log path.

        ``listeners``: the worker's own (``worker_listeners``), e.g. a metrics port.
        """
        log = self.tree / f"{name}.log"
        (self.tree / f"{name}-log.yaml").write_text(log_config(log, self.loggers))
        worker: dict[str, Any] = {
            "worker_app": app,
            "worker_name": name,
            "worker_log_config": str(self.tree / f"{name}-log.yaml"),
            "worker_pid_file": str(self.tree / f"{name}.pid"),
        }
        if listeners:
            worker["worker_listeners"] = [dict(listener) for listener in listeners]
        (self.tree / f"{name}.yaml").write_text(yaml.safe_dump(worker))
        argv = self.command(app, self.tree / f"{name}.yaml")
        self.workers.append(self._popen(argv, self.tree / f"{name}.stdout.log"))
        return log

    def wait_worker_ready(self, log: Path, timeout: float = 90.0) -> None:
        """Until the worker logging to ``log`` replicates from the main process.

        A federation sender sends only what is written after its replication
        is up: a test that sends earlier loses the race.
        """
        self.wait_for(
            f"{log.stem}: replication up ({WORKER_REPLICATING!r} in its log)",
            lambda: log.exists() and WORKER_REPLICATING in log.read_text(errors="replace"),
            timeout,
        )

    def stop(self) -> None:
        """SIGTERM to each process group (workers first), SIGKILL if it lingers."""
        for process in [*self.workers, self.process]:
            if process is None or process.poll() is not None:
                continue
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
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

    def register(self, localpart: str, password: str) -> MatrixUser:
        """A new (non-admin) user, registered with the shared secret."""
        return register_user(self.api, self.secret or self.files.secret(), localpart, password)

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    # -- logs --------------------------------------------------------------
    def log_text(self) -> str:
        return self.files.log_text()

    def log_mark(self) -> int:
        return len(self.log_text())

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
            rf"synapse\.access\.{scheme}\.{self.port} - INFO - {re.escape(str(source))} .*{path}",
            start=start,
        )
