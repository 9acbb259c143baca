"""Which peers the backoff recovery probes, and when: fair and rate-bounded.

Pure bookkeeping (no I/O, the clock is passed in), so it is tested with a
fake clock. The recovery asks :meth:`ProbeScheduler.due` for the destinations
to probe now, given the current candidates (peers Synapse backs off from or
has a transaction in flight to), and reports each probe's end with
:meth:`ProbeScheduler.finished`.

- **Rate bound**: a token bucket of ``rate`` connection attempts per second,
  holding at most ``burst`` tokens; over any window of T seconds at most
  ``burst + rate * T`` probes start, and at most ``burst + rate * timeout``
  are open at once.
- **Fair rotation**: candidates are probed least recently probed first
  (a new one before any probed one), none while its previous probe is open,
  none again within ``period`` seconds. With N candidates each is probed
  every ``max(period, N / rate)`` seconds (plus up to one tick), so with more
  peers than the rate allows, the period stretches evenly for all of them and
  a peer that comes back among many dead ones waits at most that long.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

#: Defaults (docs/synapse.md, "Recovery after an outage").
DEFAULT_RATE: Final = 300.0
DEFAULT_PERIOD_S: Final = 2.0
DEFAULT_TIMEOUT_S: Final = 2.0


@dataclass(frozen=True)
class ProbeLimits:
    """``rate``: connection attempts per second over all peers; ``period``: how
    often each peer is probed when the rate allows; ``timeout``: a probe's
    connect timeout; ``burst``: the bucket's size (default: half a second's
    worth of ``rate``, at least 1)."""

    rate: float = DEFAULT_RATE
    period: float = DEFAULT_PERIOD_S
    timeout: float = DEFAULT_TIMEOUT_S
    burst: float | None = None

    def __post_init__(self) -> None:
        for name in ("rate", "period", "timeout"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, not {value!r}")
        if self.burst is not None and not (math.isfinite(self.burst) and self.burst >= 1):
            raise ValueError(f"burst must be at least 1, not {self.burst!r}")

    @property
    def bucket(self) -> float:
        return self.burst if self.burst is not None else max(1.0, self.rate / 2)

    def cycle(self, candidates: int) -> float:
        """Seconds between two probes of each of ``candidates`` peers (the formula)."""
        return max(self.period, candidates / self.rate)

    def max_open(self) -> int:
        """Probes open at once, at most."""
        return math.ceil(self.bucket + self.rate * self.timeout)


class ProbeScheduler:
    def __init__(self, limits: ProbeLimits, now: float) -> None:
        self.limits = limits
        self._tokens = limits.bucket
        self._refilled_at = now
        # When each candidate's last probe started; absent: never probed.
        self._last: dict[str, float] = {}
        self._open: set[str] = set()
        self._order = 0
        self._seen: dict[str, int] = {}  # first-seen order, for ties among new ones

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._refilled_at)
        self._tokens = min(self.limits.bucket, self._tokens + elapsed * self.limits.rate)
        self._refilled_at = now

    def due(self, candidates: Iterable[str], now: float) -> list[str]:
        """The candidates to probe now (their probes count as started)."""
        self._refill(now)
        wanted = []
        for destination in candidates:
            if destination not in self._seen:
                self._seen[destination] = self._order
                self._order += 1
            if destination in self._open:
                continue
            last = self._last.get(destination)
            if last is None or now - last >= self.limits.period:
                wanted.append(destination)
        if not wanted:
            return []
        budget = int(self._tokens)
        if budget <= 0:
            return []
        wanted.sort(key=lambda d: (self._last.get(d, -math.inf), self._seen[d]))
        chosen = wanted[:budget]
        self._tokens -= len(chosen)
        for destination in chosen:
            self._last[destination] = now
            self._open.add(destination)
        return chosen

    def finished(self, destination: str) -> None:
        self._open.discard(destination)

    def forget_except(self, candidates: Iterable[str]) -> None:
        """Drop what is kept about peers no longer candidates (and not being probed)."""
        keep = set(candidates) | self._open
        for table in (self._last, self._seen):
            for gone in table.keys() - keep:
                del table[gone]

    @property
    def open_probes(self) -> int:
        return len(self._open)


__all__ = ["DEFAULT_PERIOD_S", "DEFAULT_RATE", "DEFAULT_TIMEOUT_S", "ProbeLimits", "ProbeScheduler"]
