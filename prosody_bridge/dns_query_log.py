"""The sidecar's rate-limited log of the DNS queries it refused or could not answer.

Both listeners (:mod:`.dns_udp`, :mod:`.dns_tcp`) and the forwarder
(:mod:`.dns_forwarder`) note here what an operator should see: policy
refusals, zones not served, malformed packets, forwarders that failed.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

__all__ = ["LOG_CLASSES_TRACKED", "DnsQueryLog"]

log = logging.getLogger("v6alt.sidecar.dns")

_DIGITS = re.compile(rb"[0-9]+")
LOG_CLASSES_TRACKED = 256


class DnsQueryLog:
    """At most ``limit`` log lines per interval about refused and malformed queries.

    Refusals are what an operator needs to see (a policy rule hit, a zone not
    served, malformed packets), but a flood must not turn into a log flood,
    whatever the packets say. Each class gets one line per interval, with the
    number of its repeats; the classes are keyed without their digits (a
    class number or a count chosen by the client makes no new class), at most
    :data:`LOG_CLASSES_TRACKED` are tracked, and all classes together get
    ``limit`` lines per interval. What the limit held back is summed up in
    one line when the next interval begins.
    """

    def __init__(
        self,
        logger: logging.Logger = log,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        limit: int = 20,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self.limit = limit
        self._last: dict[bytes, float] = {}
        self._suppressed: dict[bytes, int] = {}
        self._window = -interval
        self._lines = 0
        self._held = 0  # notes the limit (or the class table) held back this window

    def note(self, log_class: str, peer: str) -> None:
        now = self._clock()
        if now - self._window >= self._interval:
            self._new_window(now)
        key = _DIGITS.sub(b"#", log_class.encode("utf-8", "replace"))
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        if self._lines >= self.limit or (last is None and len(self._last) >= LOG_CLASSES_TRACKED):
            self._held += 1
            return
        self._lines += 1
        self._last[key] = now
        more = self._suppressed.pop(key, 0)
        tail = f" ({more} more of this class in the last {self._interval:.0f} s)" if more else ""
        self._logger.warning("dns query %s from %s%s", log_class[:200], peer, tail)

    def _new_window(self, now: float) -> None:
        if self._held:
            self._logger.warning(
                "%d more refused or malformed dns queries not logged in the last %.0f s "
                "(at most %d lines per interval: sidecar.limits.log_lines_per_minute)",
                self._held,
                self._interval,
                self.limit,
            )
        self._window = now
        self._lines = 0
        self._held = 0
        stale = [k for k, t in self._last.items() if now - t >= self._interval]
        for k in stale:
            del self._last[k]
        if len(self._suppressed) > LOG_CLASSES_TRACKED:
            self._suppressed = {k: n for k, n in self._suppressed.items() if k in self._last}
