"""Stop one lab host's Prosody and start it again, its files and record kept.

For outage tests and benchmarks: the peer's server is down (its port
refuses connections) while the lab, its sidecar and the other servers stay
up::

    stop_prosody(lab, "b")       # SIGTERM, waits until it has exited
    start_prosody(lab, "b")      # same config, data and log; waits until ready

The state file keeps the record throughout (its pid cleared while stopped),
so ``v6alt lab down`` still stops and removes everything.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Final

from ..errors import LabError, LabTimeoutError
from ..lab import Lab
from ..procs import process_start_time, stop_process
from ..service_control import output_tail, service_spawner
from ..state import ServiceRecord
from .files import SiteFiles
from .services import STARTUP_TIMEOUT, _setpriv, xmpp_sites

__all__ = ["start_prosody", "stop_prosody"]

_READY: Final = "Activated service 's2s'"


def _record(services: list[ServiceRecord], host: str) -> ServiceRecord:
    for record in services:
        if record.host == host and record.kind == "prosody":
            return record
    raise LabError(f"{host}: the lab runs no Prosody there (start it with start_xmpp)")


def stop_prosody(lab: Lab, host: str) -> None:
    """Stop ``host``'s Prosody (SIGTERM, SIGKILL after 5 s) and wait until it has exited."""
    with service_spawner(lab) as spawner:
        record = _record(spawner.state.services, host)
        if record.pid is not None and record.pid_start is not None:
            stop_process(record.pid, record.pid_start, record.marker)
        with spawner.guard.critical():
            record.pid = record.pid_start = None
            spawner.save()


def start_prosody(lab: Lab, host: str, timeout: float = STARTUP_TIMEOUT) -> int:
    """Start ``host``'s Prosody again from its files; returns its pid once it serves s2s."""
    site = next((s for s in xmpp_sites(lab) if s.host.host == host), None)
    if site is None:
        raise LabError(f"{host}: no such host in the lab")
    files: SiteFiles = site.files
    offset = files.prosody_log.stat().st_size if files.prosody_log.exists() else 0
    with service_spawner(lab) as spawner:
        record = _record(spawner.state.services, host)
        if record.running():
            raise LabError(f"{host}: Prosody is running already (pid {record.pid})")
        command = [*_setpriv(), "prosody", "--config", str(files.prosody_config), "-F"]
        pid = spawner.spawn(record, site.host, command, files.prosody_output)
    deadline = time.monotonic() + timeout
    while True:
        if process_start_time(pid) != record.pid_start:
            raise LabError(f"{host}: prosody exited{output_tail([files.prosody_output], 8)}")
        if _ready(files.prosody_log, offset):
            return pid
        if time.monotonic() > deadline:
            raise LabTimeoutError(f"timed out waiting for prosody on {host}")
        time.sleep(0.05)


def _ready(log: Path, offset: int) -> bool:
    if not log.exists():
        return False
    with log.open("rb") as handle:
        handle.seek(offset)
        return _READY.encode() in handle.read()
