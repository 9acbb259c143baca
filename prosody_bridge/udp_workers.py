"""The sidecar's extra UDP worker processes (``v6alt sidecar --workers N``).

Each worker answers DNS over UDP on its own SO_REUSEPORT socket, opened
before the fork; the kernel spreads the queries over the processes. Workers
are forked before the reactor is imported (a forked epoll reactor would share
its kernel state with the parent) and die with the process that forked them.
Each gets a socket pair to the primary, also made before its fork, for its
counts (:mod:`.worker_metrics`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

from .worker_metrics import link_pair

__all__ = ["ProcessRole", "WorkerStartFailed", "fork_workers", "reap_workers", "signal_workers"]


@dataclass
class ProcessRole:
    """What this process is once the workers are forked: the primary, or one worker."""

    udp_socket: socket.socket  # the DNS socket this process answers on
    primary: bool = True
    # In the primary: the workers' pids, and its end of each worker's metrics
    # link by worker number (1, 2, ...).
    workers: list[int] = field(default_factory=list)
    links: dict[int, socket.socket] = field(default_factory=dict)
    to_primary: socket.socket | None = None  # in a worker: its end of the link


class WorkerStartFailed(Exception):
    """A worker could not be started; ``started`` are the workers already running."""

    def __init__(self, reason: str, started: list[int]) -> None:
        super().__init__(reason)
        self.started = started


def fork_workers(udp_socket: socket.socket, extra_sockets: list[socket.socket]) -> ProcessRole:
    """Fork one worker per extra socket; returns in the primary and in every worker,
    each with its own role and only its own sockets left open."""
    role = ProcessRole(udp_socket)
    for index, extra in enumerate(extra_sockets):
        try:
            primary_end, worker_end = link_pair()
        except OSError as exc:
            raise WorkerStartFailed(f"cannot start worker metrics: {exc}", role.workers) from exc
        pid = _fork_worker()
        if pid == 0:
            udp_socket.close()
            for other in extra_sockets[index + 1 :]:
                other.close()
            primary_end.close()
            for link in role.links.values():
                link.close()
            return ProcessRole(extra, primary=False, to_primary=worker_end)
        extra.close()
        worker_end.close()
        role.links[index + 1] = primary_end
        role.workers.append(pid)
    return role


def signal_workers(pids: Iterable[int], signum: int) -> None:
    """Send ``signum`` to the workers still there."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def reap_workers(pids: Iterable[int]) -> None:
    """Wait for the workers to exit."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def _fork_worker() -> int:
    """Fork one worker: its pid in the parent, 0 in the worker."""
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        # Die with the parent, so a stopped service leaves no workers behind.
        _die_with_parent(parent)
    return pid


def _die_with_parent(parent: int) -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(0)
