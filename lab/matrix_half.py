"""Where the Matrix half of ``v6alt demo`` plugs in.

The demo runs a Matrix exchange only when matrix-synapse is importable *and*
the Synapse module package provides a lab homeserver starter::

    # v6alt/synapse_module/lab.py
    def start_homeserver(lab: Lab, host: LabHost, progress: Callable[[str], None]) -> LabHomeserver

returning an object with the :class:`LabHomeserver` interface (a Synapse with
v6alt's module, server name = the host's v6.alt name, recorded in the lab's
state file so ``lab down`` stops it). Without both, the demo says exactly why
the Matrix half was skipped; it never pretends.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import find_spec
from typing import Final, Protocol

from .host import LabHost

__all__ = [
    "HOOK",
    "LabHomeserver",
    "MatrixHalf",
    "MatrixUser",
    "find_matrix_half",
    "synapse_installed",
]

HOOK: Final = ("v6alt.synapse_module.lab", "start_homeserver")


class MatrixUser(Protocol):
    """A registered user of a lab homeserver, driven through the client-server API."""

    @property
    def user_id(self) -> str: ...

    def create_room(self, invite: list[str]) -> str:
        """Create a private room inviting ``invite``; returns the room ID."""
        ...

    def join(self, room_id: str, timeout: float) -> None:
        """Wait for the invite (it comes over federation), then join."""
        ...

    def send_text(self, room_id: str, body: str) -> None: ...

    def wait_text(self, room_id: str, body: str, timeout: float) -> None:
        """Return once ``body`` is in the room's timeline; raise on ``timeout``."""
        ...


class LabHomeserver(Protocol):
    @property
    def server_name(self) -> str: ...

    def register(self, localpart: str, password: str) -> MatrixUser: ...


StartHomeserver = Callable[[object, LabHost, Callable[[str], None]], LabHomeserver]


@dataclass(frozen=True)
class MatrixHalf:
    """The starter if the Matrix half can run, else the reason it cannot."""

    start: StartHomeserver | None
    reason: str


def synapse_installed() -> bool:
    """matrix-synapse is importable: a real package, not a folder named synapse
    that happens to be on sys.path (as tests/synapse is under pytest)."""
    spec = find_spec("synapse")
    return spec is not None and spec.origin is not None


def find_matrix_half() -> MatrixHalf:
    if not synapse_installed():
        return MatrixHalf(None, "matrix-synapse not installed")
    module_name, function_name = HOOK
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            return MatrixHalf(
                None, f"no lab homeserver starter in this v6alt: {module_name} is missing"
            )
        raise
    start = getattr(module, function_name, None)
    if not callable(start):
        return MatrixHalf(None, f"{module_name} has no {function_name}()")
    return MatrixHalf(start, "matrix-synapse and the lab homeserver starter are installed")
