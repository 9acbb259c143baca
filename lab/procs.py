"""Processes the lab started, recognised by pid *and* start time.

A pid alone can be reused by an unrelated process after ours exits; the start
time (field 22 of ``/proc/<pid>/stat``, clock ticks since boot) together with
a marker in the command line makes the check fail closed: the lab never
signals a process it cannot prove it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

__all__ = ["is_our_process", "process_start_time", "stop_process"]


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) is in parentheses and may contain spaces.
    fields = stat[stat.rindex(")") + 2 :].split()
    state = fields[0]
    if state in ("Z", "X"):  # exited, only waiting to be reaped
        return None
    return int(fields[19])


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_our_process(pid: int, start_time: int, marker: str) -> bool:
    """True if ``pid`` is still the process started at ``start_time`` with ``marker`` in argv."""
    return process_start_time(pid) == start_time and marker in _cmdline(pid)


def _reap(pid: int) -> None:
    # Our own children must be reaped or they stay as zombies; others are not ours to wait on.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop_process(pid: int, start_time: int, marker: str, grace: float = 5.0) -> bool:
    """SIGTERM, then SIGKILL after ``grace`` seconds; False if it was not ours to stop."""
    if not is_our_process(pid, start_time, marker):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(pid)
        if process_start_time(pid) != start_time:
            return True
        time.sleep(0.05)
    if is_our_process(pid, start_time, marker):
        os.kill(pid, signal.SIGKILL)
        while process_start_time(pid) == start_time:
            _reap(pid)
            time.sleep(0.05)
    return True
