"""Ctrl-C and SIGTERM that never land between "made it" and "wrote it down".

While a :class:`Interrupts` guard is installed, SIGINT and SIGTERM raise
:class:`KeyboardInterrupt` as usual, except inside ``guard.critical()``
blocks, where they are held until the block ends. A bring-up step wraps
"create the namespace; record it in the state file" in such a block, so an
interrupt arrives either before the step or after it is recorded, and the
clean-up that follows finds everything the lab made.

Signal handlers can only be set from the main thread; elsewhere the guard
does nothing (the caller's own handling applies).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any

__all__ = ["Interrupts"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupts:
    def __init__(self) -> None:
        self._depth = 0
        self._pending: int | None = None
        self._previous: dict[int, Any] = {}
        self._active = False

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self._depth > 0:
            self._pending = signum
            return
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for signum in _SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handler)
            self._active = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._active:
            for signum, previous in self._previous.items():
                signal.signal(signum, previous)
            self._active = False

    @contextmanager
    def critical(self) -> Iterator[None]:
        """Hold interrupts until the block ends, then deliver the last one."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if self._depth == 0 and self._pending is not None:
            signum, self._pending = self._pending, None
            raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")
