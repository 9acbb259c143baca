"""Connection slots of a TCP listener: a total limit and a per-address limit, with eviction.

A listener that refuses new connections once full is held by anyone who opens
enough of them and keeps them open, trickling a byte now and then. Here a new
connection is always taken, and when it is over a limit the open connection
that has gone longest without progress (a complete query or request) is
closed instead: legitimate clients make progress, so they are the last to go,
and whoever holds many slots without using them loses them first. The
per-address limit keeps one address from holding every slot.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

__all__ = ["Slots"]

C = TypeVar("C")


class Slots(Generic[C]):
    """Open connections ordered by their last progress, oldest first."""

    def __init__(self, total: int, per_address: int) -> None:
        self.total = total
        self.per_address = per_address
        self._all: OrderedDict[C, str] = OrderedDict()
        self._by_address: dict[str, OrderedDict[C, None]] = {}

    def __len__(self) -> int:
        return len(self._all)

    def admit(self, conn: C, address: str) -> list[tuple[C, str]]:
        """Register ``conn``; the connections to close for it, each with the reason
        (``per_address`` or ``evicted``). They are already released."""
        victims: list[tuple[C, str]] = []
        own = self._by_address.get(address)
        if own is not None and len(own) >= self.per_address:
            victim = next(iter(own))
            self.release(victim)
            victims.append((victim, "per_address"))
        while len(self._all) >= self.total:
            victim = next(iter(self._all))
            self.release(victim)
            victims.append((victim, "evicted"))
        self._all[conn] = address
        self._by_address.setdefault(address, OrderedDict())[conn] = None
        return victims

    def progress(self, conn: C) -> None:
        """``conn`` completed a query: it moves to the back of the eviction order."""
        address = self._all.get(conn)
        if address is None:
            return
        self._all.move_to_end(conn)
        self._by_address[address].move_to_end(conn)

    def release(self, conn: C) -> None:
        """Forget ``conn`` (closed, or evicted); safe to call twice."""
        address = self._all.pop(conn, None)
        if address is None:
            return
        own = self._by_address[address]
        own.pop(conn, None)
        if not own:
            del self._by_address[address]
