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
down`` stops it and removes its files. Its files and command come from the
one launcher, :class:`~.homeserver.Homeserver`; the lab's service spawner
starts the process.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ..host import LabHost
from ..lab import Lab
from ..procs import process_start_time
from ..service_control import service_spawner
from ..state import LabState, ServiceRecord
from .client import ClientApi, MatrixUser, register_user
from .files import FEDERATION_PORT, HomeserverFiles
from .homeserver import STARTUP_TIMEOUT, Homeserver, check_synapse_tools, wait_synapse_ready

__all__ = [
    "SERVICE_KIND",
    "LabSynapse",
    "lab_homeservers",
    "spawn_homeserver",
    "start_homeserver",
    "start_homeservers",
]

SERVICE_KIND: Final = "synapse"

Progress = Callable[[str], None]


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
        return self.files.log_text()

    def output_tail(self, lines: int = 12) -> str:
        return self.files.output_tail(lines)

    def wait_ready(self, deadline: float) -> None:
        """Until the client API answers ``/health`` (all listeners are up by then)."""
        wait_synapse_ready(self.files, self.running, deadline, self.host.host)


def _running_record(lab: Lab, state: LabState, host: LabHost) -> ServiceRecord | None:
    """The recorded homeserver of ``host`` if it still runs; a dead one is forgotten."""
    for record in list(state.services):
        if record.host != host.host or record.kind != SERVICE_KIND:
            continue
        if record.running():
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
    with service_spawner(lab) as spawner:
        existing = _running_record(lab, spawner.state, host)
        if existing is not None:
            assert existing.tree is not None and existing.pid is not None
            progress(f"{host.host}: synapse already running (pid {existing.pid})")
            return LabSynapse(host, HomeserverFiles(Path(existing.tree), host.name), existing.pid)

        def prepare(tree: Path) -> tuple[list[str], Path]:
            server = Homeserver(tree, host.ygg_address, server_name=host.name)
            server.prepare()
            return server.command(), server.files.config

        tree, pid = spawner.start(host, SERVICE_KIND, "matrix", prepare)
    files = HomeserverFiles(tree, host.name)
    progress(
        f"{host.host}: synapse starting (pid {pid}), server name {files.server_name}, "
        f"federation on [{host.ygg_address}]:{FEDERATION_PORT}"
    )
    return LabSynapse(host, files, pid)


def lab_homeservers(lab: Lab) -> list[LabSynapse]:
    """The homeservers that run on a lab that is up (started by this process or another)."""
    hosts = {host.host: host for host in lab.hosts()}
    state = lab.up_state()
    servers = []
    for record in state.services:
        if record.kind != SERVICE_KIND or record.tree is None or record.pid is None:
            continue
        if not record.running():
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


def start_homeserver(lab: Lab, host: LabHost, progress: Progress) -> LabSynapse:
    """The demo's Matrix half: one homeserver on ``host``, ready."""
    return start_homeservers(lab, [host], progress)[0]
