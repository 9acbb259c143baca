"""Starting and stopping the servers that run on lab hosts, always as the state file says.

Every server the lab starts (a sidecar, a Prosody, a homeserver, a DNS
server) is a :class:`ServiceRecord` written to the state file before the
thing it names exists, and its pid the moment it does, so ``v6alt lab down``
(another process, or after a crash) finds and stops everything::

    with service_spawner(lab) as spawner:          # the lab's lock, interrupts held
        tree, pid = spawner.start(host, "synapse", "matrix", prepare)
    stop_service_kinds(lab, ["synapse"])           # the lab and its other servers stay up

``prepare(tree)`` writes the server's files into its new, empty directory and
returns its command and its config file; the config file is the record's
marker, so a recycled pid is never taken for the server.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from .errors import LabError, LabNotUpError
from .host import LabHost
from .interrupts import Interrupts
from .lab import Lab
from .procs import process_start_time
from .state import LabLock, LabState, ServiceRecord
from .teardown import TeardownReport, stop_services

__all__ = [
    "Prepare",
    "ServiceSpawner",
    "ServiceTree",
    "output_tail",
    "service_spawner",
    "stop_service_kinds",
]

#: ``prepare(tree) -> (command, config file)``; the command must name the config file.
Prepare = Callable[[Path], tuple[list[str], Path]]

# Servers outlive this process; holding their Popen objects keeps Python from
# warning that a child it never waited for still runs.
_DETACHED: list[subprocess.Popen[bytes]] = []


def output_tail(paths: Sequence[Path | None], lines: int) -> str:
    """The last ``lines`` lines of the files that exist, each on its own indented line.

    Empty when there is nothing to show; meant to end an error message.
    """
    texts = [path.read_text(errors="replace") for path in paths if path and path.exists()]
    tail = "\n".join(texts).strip().splitlines()[-lines:]
    return "\n  ".join(["", *tail]) if tail else ""


@dataclass(frozen=True)
class ServiceTree:
    """A server's own directory: what it prints goes to ``stdout.log``, its log to ``log_name``."""

    tree: Path
    log_name: ClassVar[str] = "server.log"

    @property
    def log(self) -> Path:
        return self.tree / self.log_name

    @property
    def output(self) -> Path:
        return self.tree / "stdout.log"

    def output_tail(self, lines: int = 12) -> str:
        """The end of its output and log, to end an error message with."""
        return output_tail([self.output, self.log], lines)


class ServiceSpawner:
    """Records and starts servers on the hosts of a lab that is up.

    Use it inside :func:`service_spawner`, which holds the lab's lock and an
    interrupt guard: a Ctrl-C never lands between making a thing and writing
    it down.
    """

    def __init__(self, lab: Lab, state: LabState, guard: Interrupts) -> None:
        self.lab = lab
        self.state = state
        self.guard = guard

    def save(self) -> None:
        self.state.save(self.lab.state_path)

    def host_dir(self, host: str) -> Path:
        """The lab's directory of ``host`` (servers make their trees in it)."""
        directory = self.state.host(host).dir
        if directory is None:
            raise LabNotUpError(f"host {host} of the lab has no directory")
        return Path(directory)

    def record(
        self,
        host: str,
        kind: str,
        marker: str = "",
        tree: Path | None = None,
        tree_mode: int = 0o700,
    ) -> ServiceRecord:
        """Write a new record down; with ``tree``, make that directory (empty) as its own."""
        record = ServiceRecord(host=host, kind=kind, marker=marker)
        with self.guard.critical():
            self.state.services.append(record)
            if tree is not None:
                tree.mkdir(mode=tree_mode)  # exists -> error: not ours to reuse
                record.tree = str(tree)
            self.save()
        return record

    def spawn(
        self, record: ServiceRecord, host: LabHost, command: Sequence[str], output: Path
    ) -> int:
        """Start ``command`` in ``host``'s namespace, detached, output appended to ``output``.

        The command must name the record's marker; its pid and start time are
        recorded at once. `ip netns exec` (and `setpriv`, `sh -c 'exec ...'`)
        exec, so the pid is the server's own. Returns the pid.
        """
        if not record.marker or record.marker not in command:
            raise LabError(
                f"{host.host}: the {record.kind} command does not name its config {record.marker}"
            )
        with self.guard.critical(), output.open("ab") as out:
            proc = subprocess.Popen(
                host.argv(command),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            record.pid, record.pid_start = proc.pid, process_start_time(proc.pid)
            self.save()
        _DETACHED.append(proc)
        return proc.pid

    def start(self, host: LabHost, kind: str, tree_name: str, prepare: Prepare) -> tuple[Path, int]:
        """Record a server, make its tree ``<host dir>/<tree_name>``, ``prepare`` it, start it.

        Its output goes to ``stdout.log`` in the tree. Returns the tree and the pid.
        """
        tree = self.host_dir(host.host) / tree_name
        record = self.record(host.host, kind, tree=tree)
        command, marker = prepare(tree)
        record.marker = str(marker)
        return tree, self.spawn(record, host, command, ServiceTree(tree).output)


@contextmanager
def service_spawner(lab: Lab) -> Iterator[ServiceSpawner]:
    """A :class:`ServiceSpawner` for ``lab`` (up), under its lock and an interrupt guard."""
    with LabLock(lab.run_dir), Interrupts() as guard:
        yield ServiceSpawner(lab, lab.up_state(), guard)


def stop_service_kinds(lab: Lab, kinds: Collection[str]) -> TeardownReport:
    """Stop the servers of ``kinds`` and remove their trees; the lab and the rest stay up."""
    lab.require_root()
    with LabLock(lab.run_dir), Interrupts() as guard, guard.critical():
        state = lab.load_state()
        if state is None:
            return TeardownReport()
        return stop_services(state, lab.state_path, lab.progress, kinds)
