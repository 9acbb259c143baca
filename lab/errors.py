"""Errors of the lab; each carries the CLI exit status it maps to."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from v6alt.errors import V6AltError

__all__ = [
    "LabCommandError",
    "LabConflictError",
    "LabEnvironmentError",
    "LabError",
    "LabNotUpError",
    "LabStateError",
    "LabTimeoutError",
    "LabUsageError",
]


class LabError(V6AltError):
    """Something the lab could not do; the message says what and what to do."""

    exit_code: ClassVar[int] = 1


class LabUsageError(LabError):
    """Bad arguments, e.g. ``--nodes 0`` or a lab already up with other settings."""

    exit_code: ClassVar[int] = 2


class LabEnvironmentError(LabError):
    """The machine cannot run a lab: not root, ``ip`` or ``yggdrasil`` missing, no TUN."""

    exit_code: ClassVar[int] = 2


class LabConflictError(LabError):
    """Something the lab would create already exists and was not made by this lab."""


class LabStateError(LabError):
    """The state file is unreadable or does not describe a lab."""


class LabNotUpError(LabError):
    """An operation needs a running lab and there is none."""


class LabTimeoutError(LabError):
    """A bring-up step did not finish in time (the message names the step and hosts)."""


class LabCommandError(LabError):
    """An external command (``ip``, ``yggdrasil``) failed."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr.strip()
        detail = self.stderr.splitlines()[-1] if self.stderr else "no error output"
        super().__init__(f"`{' '.join(self.argv)}` failed (exit {returncode}): {detail}")
