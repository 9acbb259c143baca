"""Delivery to mesh peers as soon as they are reachable again, after any outage.

Why Synapse alone is slow (checked on 1.100-1.163):

- A transaction is sent with ``long_retries``: a failed attempt (connection
  refused, timed out, reset) is retried after about 4 s, 16 s, then every
  60 s, up to 10 times, and only then does Synapse back the destination off
  (10 minutes at first, doubling to 7 days). During those minutes the
  destination is *not* backed off, so waiting for a backoff finds nothing.
- An attempt made during a link cut sits on a TCP connection whose data (or
  SYN) the kernel resends with exponential backoff; after the link returns
  it stays silent until the next retransmission (up to 2 minutes away), or
  Synapse's 60 s request timeout, whichever comes first.
- Once backed off, only an inbound request from that server, or the backoff
  expiring, ends it.

So for v6.alt destinations the module probes, with bare TCP connections to
the decoded address (no TLS, no request), every destination that Synapse
backs off from *or* has a transaction in flight to, fairly and within a
global rate bound (:mod:`.probe_scheduler`). When a probe connects:

- a backed-off destination gets its backoff cleared and the sender woken,
  as Synapse does on an inbound request;
- a destination with a transaction in flight gets each of this process's
  connections to it that is stuck in retransmission backoff aborted
  (:mod:`.stalled_connections`), and, if any was, or an earlier probe had
  failed, its retry sleep ended (Synapse's ``notify_remote_server_up``), so
  the transaction goes out at once on a fresh connection.

The wake is repeated shortly after (``REWAKE_AFTER_S``), for the request
whose connection was just aborted and only then starts its retry sleep.
Only processes that send federation probe, and only destinations the
outbound judge allows (never-dial names are never probed).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import Any, Final

from v6alt.errors import V6AltNameError
from v6alt.names import parse_matrix_server_name

from .metrics import ModuleMetrics
from .outbound import OutboundJudge
from .probe_scheduler import ProbeLimits, ProbeScheduler
from .stalled_connections import abort_stalled, stalled_transports
from .synapse_seam import SynapseInternals

logger = logging.getLogger("v6alt.synapse_module")

#: How often probes are started (seconds), and how often the candidates are re-read.
TICK_S: Final = 0.1
REFRESH_S: Final = 1.0
#: At most this many backed-off destinations are read per refresh.
MAX_CANDIDATES: Final = 100_000
#: A destination found reachable is woken this long after (seconds): at once,
#: then again for a request that starts its retry sleep only after its
#: stalled connection was aborted.
REWAKE_AFTER_S: Final = (0.0, 0.5, 2.0)


@dataclass(frozen=True)
class _Target:
    address: IPv6Address
    port: int


@dataclass(frozen=True)
class _Result:
    destination: str
    connected: bool
    started: float


class BackoffRecovery:
    def __init__(
        self,
        synapse: SynapseInternals,
        judge: OutboundJudge,
        metrics: ModuleMetrics | None = None,
        limits: ProbeLimits | None = None,
    ) -> None:
        self._synapse = synapse
        self._judge = judge
        self._metrics = metrics
        self.limits = limits or ProbeLimits()
        self._scheduler: ProbeScheduler | None = None
        self._candidates: list[str] = []
        self._backed_off: set[str] = set()
        self._targets: dict[str, _Target | None] = {}
        # When each candidate last failed a probe (the metrics' clock).
        self._failed_at: dict[str, float] = {}
        self._results: list[_Result] = []
        self._refreshed_at = float("-inf")
        self._counts: tuple[int, int] | None = None  # logged when they change
        self._running = False
        self._table_checked = False
        self._disabled = False

    def start(self) -> bool:
        """Start probing if this process sends federation; True if it does."""
        if not self._synapse.sends_federation():
            return False
        self._synapse.api.looping_background_call(
            self._tick,
            TICK_S * 1000,
            desc="v6alt_backoff_recovery",
            run_on_all_instances=True,
        )
        return True

    def _now(self) -> float:
        return float(self._synapse.reactor.seconds())

    def _clock(self) -> float:
        return self._metrics.now() if self._metrics is not None else self._now()

    async def _tick(self) -> None:
        if self._running or self._disabled:
            return
        self._running = True
        try:
            if not self._table_checked:
                problem = await self._synapse.destinations_table_problem()
                self._table_checked = True
                if problem is not None:
                    self._disabled = True
                    logger.error("v6alt: backoff recovery is off: %s", problem)
                    return
            now = self._now()
            if self._scheduler is None:
                self._scheduler = ProbeScheduler(self.limits, now)
            if now - self._refreshed_at >= REFRESH_S:
                self._refreshed_at = now
                await self._refresh()
            results, self._results = self._results, []
            for result in results:
                await self._handle(result)
            for destination in self._scheduler.due(self._candidates, self._now()):
                self._start_probe(destination)
        finally:
            self._running = False

    async def _refresh(self) -> None:
        assert self._scheduler is not None
        backed_off = await self._synapse.backed_off_v6alt_destinations(
            self._synapse.now_ms(), MAX_CANDIDATES
        )
        in_flight = [d for d in self._synapse.destinations_in_flight() if d not in backed_off]
        self._backed_off = set(backed_off)
        candidates = []
        for destination in [*backed_off, *in_flight]:
            if destination not in self._targets:
                self._targets[destination] = self._target(destination)
            if self._targets[destination] is not None:
                candidates.append(destination)
        counts = (len(backed_off), len(candidates) - len(backed_off))
        if counts != self._counts:
            self._counts = counts
            logger.debug(
                "v6alt: backoff recovery round: %d backed-off and %d in-flight v6.alt "
                "destination(s)",
                *counts,
            )
        if self._metrics is not None:
            self._metrics.backed_off(len(backed_off))
        self._candidates = candidates
        self._scheduler.forget_except(candidates)
        keep = set(candidates)
        for table in (self._targets, self._failed_at):
            for gone in table.keys() - keep:
                del table[gone]

    def _target(self, destination: str) -> _Target | None:
        try:
            server = parse_matrix_server_name(destination)
        except V6AltNameError:
            return None
        if not server.is_v6alt or not server.canonical:
            return None
        decision = self._judge.quiet_decision(server.host)
        if decision is None:
            return None
        return _Target(IPv6Address(decision.address), server.port or 8448)

    def _start_probe(self, destination: str) -> None:
        from twisted.internet.endpoints import TCP6ClientEndpoint
        from twisted.internet.protocol import Factory, Protocol

        target = self._targets.get(destination)
        started = self._clock()
        if target is None:
            self._results.append(_Result(destination, False, started))
            return
        endpoint = TCP6ClientEndpoint(  # type: ignore[no-untyped-call]
            self._synapse.reactor, str(target.address), target.port, timeout=self.limits.timeout
        )

        def connected(protocol: Any) -> None:
            protocol.transport.loseConnection()
            self._results.append(_Result(destination, True, started))

        def failed(failure: Any) -> None:
            logger.debug(
                "v6alt: probe of [%s]:%d failed: %s",
                target.address,
                target.port,
                failure.getErrorMessage(),
            )
            self._results.append(_Result(destination, False, started))

        deferred = endpoint.connect(Factory.forProtocol(Protocol))  # type: ignore[no-untyped-call]
        deferred.addCallbacks(connected, failed)

    async def _handle(self, result: _Result) -> None:
        assert self._scheduler is not None
        destination = result.destination
        self._scheduler.finished(destination)
        if self._metrics is not None:
            self._metrics.probe(result.connected)
        if not result.connected:
            self._failed_at[destination] = result.started
            return
        target = self._targets.get(destination)
        if target is None:
            return
        failed_before = destination in self._failed_at
        if destination in self._backed_off:
            self._backed_off.discard(destination)
            await self._synapse.clear_backoff(destination)
            logger.info(
                "v6alt: %s is reachable again at [%s]:%d: backoff cleared, sending queued events",
                destination,
                target.address,
                target.port,
            )
        else:
            stalled = len(stalled_transports(self._synapse.reactor, target.address, target.port))
            if not stalled and not failed_before:
                return
            # From the reactor, outside this round's logging context: aborting a
            # connection runs Synapse's request callbacks at once.
            self._synapse.reactor.callLater(0, self._abort_stalled, target)
            logger.info(
                "v6alt: %s is reachable again at [%s]:%d: woke its pending transaction "
                "(%d stalled connection(s) aborted)",
                destination,
                target.address,
                target.port,
                stalled,
            )
        for delay in REWAKE_AFTER_S:
            self._synapse.reactor.callLater(delay, self._synapse.wake, destination)
        reachable_since = self._failed_at.pop(destination, result.started)
        if self._metrics is not None:
            self._metrics.peer_back(reachable_since)

    def _abort_stalled(self, target: _Target) -> None:
        abort_stalled(self._synapse.reactor, target.address, target.port)
