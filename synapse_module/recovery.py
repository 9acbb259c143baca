"""Recovery from Synapse's destination backoff for mesh peers.

Stock Synapse backs off from an unreachable destination for 10 minutes,
doubling up to 7 days, and only an inbound request from that server (or the
backoff expiring) ends it. Mesh links come and go, so for v6.alt
destinations the module probes instead: every ``INTERVAL_S`` seconds it
opens a bare TCP connection to each backed-off v6.alt destination's decoded
address (no TLS, no request). When one connects, it clears the backoff and
wakes the federation sender, exactly as Synapse does on an inbound request,
and the queued events go out at once.

Probe cost is bounded: at most ``MAX_PROBES`` destinations per round, at
most one connection attempt per destination per round, each abandoned after
``PROBE_TIMEOUT_S``; rounds never overlap. Only processes that send
federation (the main process, or federation_sender workers) probe, and only
destinations the outbound judge allows (never-dial names are never probed).
"""

from __future__ import annotations

import logging

from v6alt.errors import V6AltNameError
from v6alt.names import parse_matrix_server_name

from .metrics import ModuleMetrics
from .outbound import OutboundJudge
from .synapse_seam import SynapseInternals, yieldable

logger = logging.getLogger("v6alt.synapse_module")

INTERVAL_S = 5.0
MAX_PROBES = 32
PROBE_TIMEOUT_S = 2.0


class BackoffRecovery:
    def __init__(
        self,
        synapse: SynapseInternals,
        judge: OutboundJudge,
        metrics: ModuleMetrics | None = None,
    ) -> None:
        self._synapse = synapse
        self._judge = judge
        self._metrics = metrics
        # When each backed-off destination last failed a probe (the metrics'
        # clock): the peer came back after that. Only this round's are kept.
        self._failed_at: dict[str, float] = {}
        self._running = False
        self._table_checked = False
        self._disabled = False

    def start(self) -> bool:
        """Start probing if this process sends federation; True if it does."""
        if not self._synapse.sends_federation():
            return False
        self._synapse.api.looping_background_call(
            self._round,
            INTERVAL_S * 1000,
            desc="v6alt_backoff_recovery",
            run_on_all_instances=True,
        )
        return True

    async def _round(self) -> None:
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
            now_ms = self._synapse.now_ms()
            destinations = await self._synapse.backed_off_v6alt_destinations(now_ms, MAX_PROBES)
            logger.debug(
                "v6alt: backoff recovery round: %d backed-off v6.alt destination(s)",
                len(destinations),
            )
            if self._metrics is not None:
                self._metrics.backed_off(len(destinations))
            for gone in self._failed_at.keys() - set(destinations):
                del self._failed_at[gone]
            for destination in destinations:
                await self._probe(destination)
        finally:
            self._running = False

    async def _probe(self, destination: str) -> None:
        try:
            server = parse_matrix_server_name(destination)
        except V6AltNameError:
            return
        if not server.is_v6alt or not server.canonical:
            return
        decision = self._judge.quiet_decision(server.host)
        if decision is None:
            return
        port = server.port or 8448
        started = self._metrics.now() if self._metrics is not None else 0.0
        connected = await self._connects(str(decision.address), port)
        if self._metrics is not None:
            self._metrics.probe(connected)
        if not connected:
            self._failed_at[destination] = started
            return
        logger.info(
            "v6alt: %s is reachable again at [%s]:%d: backoff cleared, sending queued events",
            destination,
            decision.address,
            port,
        )
        await self._synapse.clear_backoff(destination)
        reachable_since = self._failed_at.pop(destination, started)
        if self._metrics is not None:
            self._metrics.peer_back(reachable_since)

    async def _connects(self, address: str, port: int) -> bool:
        from twisted.internet.endpoints import TCP6ClientEndpoint
        from twisted.internet.protocol import Factory, Protocol

        endpoint = TCP6ClientEndpoint(  # type: ignore[no-untyped-call]
            self._synapse.reactor, address, port, timeout=PROBE_TIMEOUT_S
        )
        try:
            protocol = await yieldable(
                endpoint.connect(Factory.forProtocol(Protocol))  # type: ignore[no-untyped-call]
            )
        except Exception as e:
            logger.debug("v6alt: probe of [%s]:%d failed: %s", address, port, e)
            return False
        protocol.transport.loseConnection()
        return True
