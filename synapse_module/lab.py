"""Synapse homeservers with the v6alt module on lab hosts (the Matrix half of ``v6alt demo``).

::

    lab = Lab(); hosts = lab.up(nodes=2)
    a = start_homeserver(lab, hosts[0], print)   # server name = hosts[0].name
    alice = a.register("alice", "pw")            # a MatrixUser (client-server API)
    lab.down()                                   # stops the homeservers too

Each homeserver runs inside its host's network namespace (this interpreter,
so the v6alt module imports), federation on ``[Yggdrasil address]:8448``
with a self-signed certificate for the host's v6.alt name, SQLite, files in
``<host dir>/matrix``. It is recorded in the lab's state file like the XMPP
servers (a ``ServiceRecord`` of kind ``synapse``, its config path as the
marker, its directory as the tree) the moment it is made, so ``v6alt lab
down`` stops it and removes its files.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Final

from v6alt.lab import Lab, LabError, LabHost, LabNotUpError, LabTimeoutError
from v6alt.lab.errors import LabEnvironmentError
from v6alt.lab.netns import find_tool
from v6alt.lab.procs import is_our_process, process_start_time
from v6alt.lab.state import LabLock, ServiceRecord

from .lab_client import ClientApi, MatrixUser, register_user
from .lab_files import FEDERATION_PORT, HomeserverFiles, write_homeserver_files

__all__ = [
    "SERVICE_KIND",
    "LabSynapse",
    "check_synapse_tools",
    "lab_homeservers",
    "spawn_homeserver",
    "start_homeserver",
    "start_homeservers",
]

SERVICE_KIND: Final = "synapse"
STARTUP_TIMEOUT: Final = 120.0
_DETACHED: list[subprocess.Popen[bytes]] = []

Progress = Callable[[str], None]


def check_synapse_tools() -> None:
    """matrix-synapse importable in this interpreter, and openssl for the certificate."""
    spec = find_spec("synapse")
    # A bare directory named synapse on sys.path is a namespace package (no origin), not Synapse.
    if spec is None or spec.origin is None:
        raise LabEnvironmentError(
            f"matrix-synapse is not installed for {sys.executable}; "
            "install it with: pip install matrix-synapse"
        )
    find_tool("openssl", "openssl", "apt-get install openssl")


@dataclass(frozen=True)
class LabSynapse:
    """A running lab homeserver; implements the demo's ``LabHomeserver`` interface."""

    host: LabHost
    files: HomeserverFiles
    pid: int

    @property
    def server_name(self) -> str:
        return self.files.server_name

    @property
    def federation_endpoint(self) -> str:
        return f"[{self.host.ygg_address}]:{FEDERATION_PORT}"

    @property
    def api(self) -> ClientApi:
        return ClientApi(self.files.client_socket, self.server_name)

    def register(self, localpart: str, password: str) -> MatrixUser:
        """A new (non-admin) user, registered with the shared secret."""
        return register_user(self.api, self.files.secret(), localpart, password)

    def running(self) -> bool:
        return process_start_time(self.pid) is not None

    def log_text(self) -> str:
        path = self.files.log
        return path.read_text(errors="replace") if path.exists() else ""

    def output_tail(self, lines: int = 12) -> str:
        texts = [p.read_text(errors="replace") for p in (self.files.output, self.files.log)
                 if p.exists()]  # fmt: skip
        tail = "\n".join(texts).strip().splitlines()[-lines:]
        return "\n  ".join(["", *tail]) if tail else ""

    def wait_ready(self, deadline: float) -> None:
        """Until the client API answers ``/health`` (all listeners are up by then)."""
        while True:
            if not self.running():
                raise LabError(f"{self.host.host}: synapse exited at start-up{self.output_tail()}")
            try:
                status, _ = self.api.request("GET", "/health", timeout=2)
                if status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise LabTimeoutError(
                    f"timed out waiting for synapse on {self.host.host}{self.output_tail()}"
                )
            time.sleep(0.3)


def _running_record(lab: Lab, host: LabHost) -> ServiceRecord | None:
    """The recorded homeserver of ``host`` if it still runs; a dead one is forgotten."""
    state = lab.load_state()
    if state is None or not state.complete:
        raise LabNotUpError(f"no lab is up (no complete state in {lab.state_path})")
    for record in list(state.services):
        if record.host != host.host or record.kind != SERVICE_KIND:
            continue
        if (
            record.pid is not None
            and record.pid_start is not None
            and is_our_process(record.pid, record.pid_start, record.marker)
        ):
            return record
        # Died (or never started): its tree is ours, inside the run dir; start afresh.
        if record.tree and Path(lab.run_dir) in Path(record.tree).parents:
            shutil.rmtree(record.tree, ignore_errors=True)
        state.services.remove(record)
        state.save(lab.state_path)
    return None


def spawn_homeserver(lab: Lab, host: LabHost, progress: Progress) -> LabSynapse:
    """Write the files and start Synapse on ``host`` without waiting for it to be ready."""
    lab.require_root()
    check_synapse_tools()
    with LabLock(lab.run_dir):
        existing = _running_record(lab, host)
        if existing is not None:
            assert existing.tree is not None and existing.pid is not None
            progress(f"{host.host}: synapse already running (pid {existing.pid})")
            return LabSynapse(host, HomeserverFiles(Path(existing.tree), host.name), existing.pid)
        state = lab.load_state()
        assert state is not None
        host_dir = state.host(host.host).dir
        if host_dir is None:
            raise LabNotUpError(f"host {host.host} of the lab has no directory")
        files = HomeserverFiles(Path(host_dir) / "matrix", host.name)
        record = ServiceRecord(host=host.host, kind=SERVICE_KIND, marker=str(files.config))
        state.services.append(record)
        files.tree.mkdir(mode=0o700)  # exists -> error: not ours to reuse
        record.tree = str(files.tree)
        state.save(lab.state_path)
        write_homeserver_files(files, host.ygg_address)
        command = [sys.executable, "-m", "synapse.app.homeserver", "-c", str(files.config)]
        # `ip netns exec` execs, so the recorded pid is Synapse's own.
        with files.output.open("ab") as out:
            proc = subprocess.Popen(
                host.argv(command),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        record.pid, record.pid_start = proc.pid, process_start_time(proc.pid)
        state.save(lab.state_path)
        _DETACHED.append(proc)
    progress(
        f"{host.host}: synapse starting (pid {proc.pid}), server name {files.server_name}, "
        f"federation on [{host.ygg_address}]:{FEDERATION_PORT}"
    )
    return LabSynapse(host, files, proc.pid)


def lab_homeservers(lab: Lab) -> list[LabSynapse]:
    """The homeservers that run on a lab that is up (started by this process or another)."""
    hosts = {host.host: host for host in lab.hosts()}
    state = lab.load_state()
    assert state is not None
    servers = []
    for record in state.services:
        if record.kind != SERVICE_KIND or record.tree is None or record.pid is None:
            continue
        if record.pid_start is None or not is_our_process(
            record.pid, record.pid_start, record.marker
        ):
            continue
        host = hosts[record.host]
        servers.append(LabSynapse(host, HomeserverFiles(Path(record.tree), host.name), record.pid))
    return servers


def start_homeservers(
    lab: Lab, hosts: Sequence[LabHost], progress: Progress, timeout: float = STARTUP_TIMEOUT
) -> list[LabSynapse]:
    """Start a homeserver on each of ``hosts`` (side by side) and wait until all are ready."""
    started = time.monotonic()
    servers = [spawn_homeserver(lab, host, progress) for host in hosts]
    for server in servers:
        server.wait_ready(started + timeout)
        progress(
            f"{server.host.host}: synapse ready in {time.monotonic() - started:.1f} s "
            f"({server.server_name})"
        )
    return servers


def start_homeserver(lab: object, host: LabHost, progress: Progress) -> LabSynapse:
    """The demo's hook (``v6alt.lab.matrix_half``): one homeserver on ``host``, ready."""
    if not isinstance(lab, Lab):
        raise TypeError(f"lab: expected a v6alt.lab.Lab, got {type(lab).__name__}")
    return start_homeservers(lab, [host], progress)[0]
