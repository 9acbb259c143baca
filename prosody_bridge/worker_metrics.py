"""The UDP workers' counts, carried to the primary process that serves ``/metrics``.

Before each worker is forked the sidecar makes a SOCK_SEQPACKET socket pair:
one end stays in the worker, the other in the primary. Every
:data:`SNAPSHOT_INTERVAL` seconds (and once more when it stops) the worker
sends its cumulative counts (:meth:`SidecarMetrics.snapshot`, one message);
the primary keeps the latest per worker and adds them up when scraped. A
lost or skipped message costs nothing: the next one carries the same counts
and more. When a worker exits the primary reads end-of-file and keeps its
last counts (counters never go backwards); its reply cache stops counting.

Nothing of this runs on the DNS path: the workers count in plain integers as
the primary does, and the sending is a timer.
"""

from __future__ import annotations

import logging
import socket
from typing import Any, Final

from twisted.internet.interfaces import IReadDescriptor
from twisted.internet.task import LoopingCall
from zope.interface import implementer

from .metrics import SidecarMetrics

__all__ = ["SNAPSHOT_INTERVAL", "SnapshotReader", "SnapshotSender", "link_pair"]

log = logging.getLogger("v6alt.sidecar")

#: Seconds between two snapshots of a worker: how far /metrics may lag behind it.
SNAPSHOT_INTERVAL: Final = 1.0
#: The largest snapshot read (label sets are bounded: a few kB in practice).
SNAPSHOT_MAX: Final = 1 << 20


def link_pair() -> tuple[socket.socket, socket.socket]:
    """(the primary's end, the worker's end), made before the worker is forked."""
    primary, worker = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for end in (primary, worker):
        end.setblocking(False)
        end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNAPSHOT_MAX)
        end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SNAPSHOT_MAX)
    return primary, worker


class SnapshotSender:
    """In a worker: sends its counts to the primary on a timer."""

    def __init__(self, sock: socket.socket, metrics: SidecarMetrics, reactor: Any) -> None:
        self._sock: socket.socket | None = sock
        self._metrics = metrics
        self._reactor = reactor
        self._loop = LoopingCall(self.send)
        self._loop.clock = reactor

    def start(self) -> None:
        self._loop.start(SNAPSHOT_INTERVAL, now=True)
        # A worker stopped on its own (SIGTERM) reports its very last counts.
        self._reactor.addSystemEventTrigger("before", "shutdown", self.send)

    def send(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            sock.send(self._metrics.snapshot())
        except (BlockingIOError, InterruptedError):
            pass  # the primary is busy: the next snapshot carries these counts too
        except OSError as exc:  # the primary is gone
            log.warning("worker metrics: cannot reach the primary process: %s", exc)
            self._sock = None
            if self._loop.running:
                self._loop.stop()
            sock.close()


@implementer(IReadDescriptor)
class SnapshotReader:
    """In the primary: keeps the latest snapshot of worker ``worker``."""

    def __init__(
        self, sock: socket.socket, worker: int, metrics: SidecarMetrics, reactor: Any
    ) -> None:
        self._sock = sock
        self._worker = worker
        self._metrics = metrics
        self._reactor = reactor
        self._stopping = False  # the sidecar is stopping: workers exit as they should

    def start(self) -> None:
        self._reactor.addReader(self)
        self._reactor.addSystemEventTrigger("before", "shutdown", self._stop)

    def _stop(self) -> None:
        self._stopping = True

    def fileno(self) -> int:
        return self._sock.fileno()

    def logPrefix(self) -> str:
        return f"worker-metrics-{self._worker}"

    def doRead(self) -> None:
        while True:
            try:
                data = self._sock.recv(SNAPSHOT_MAX)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:  # end of file: the worker exited
                self._reactor.removeReader(self)
                self._gone()
                return
            try:
                self._metrics.absorb(self._worker, data)
            except (ValueError, TypeError, KeyError) as exc:
                log.warning(
                    "worker metrics: unreadable snapshot from worker %d: %s", self._worker, exc
                )

    def connectionLost(self, reason: object) -> None:
        self._gone()

    def _gone(self) -> None:
        if self._sock.fileno() == -1:
            return
        self._sock.close()
        self._metrics.worker_gone(self._worker)
        if not self._stopping:
            log.warning("UDP worker %d exited; its counts stay in /metrics", self._worker)
