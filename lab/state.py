"""The state file: exactly what a lab made, written as each thing is made.

``down`` (and the clean-up after a failed ``up``) removes only what is listed
here, and checks each item is still the one the lab made (namespace inode,
process start time) before touching it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar

from .errors import LabError, LabStateError
from .procs import is_our_process

__all__ = [
    "STATE_VERSION",
    "HostRecord",
    "LabLock",
    "LabState",
    "LinkRecord",
    "ServiceRecord",
    "load_state",
]

STATE_VERSION: Final = 1
STATE_FILE: Final = "state.json"
LOCK_FILE: Final = "lock"
#: In a run directory a lab created (not one it was given): removed with it.
MADE_MARKER: Final = "made-by-lab"

T = TypeVar("T")


@dataclass
class HostRecord:
    """One host; a field stays None until the thing it names has been made."""

    host: str
    netns: str
    netns_inode: int | None = None
    dir: str | None = None
    config: str | None = None
    log: str | None = None
    admin_socket: str | None = None
    pid: int | None = None
    pid_start: int | None = None
    ygg_address: str | None = None
    tun_ifname: str | None = None


@dataclass
class LinkRecord:
    """One veth pair; ``created`` is set once ``ip link add`` succeeded."""

    left: str
    right: str
    left_ifname: str
    right_ifname: str
    left_address: str
    right_address: str
    created: bool = False


@dataclass
class ServiceRecord:
    """One process the lab runs on a host besides Yggdrasil (a sidecar, a Prosody).

    ``marker`` is a path in the process's command line (its config file), so a
    recycled pid is never signalled. ``tree`` is a directory the lab created
    empty for this service alone (config, certificate, data, logs); ``down``
    removes it with everything in it once the process is stopped.
    """

    host: str
    kind: str
    marker: str
    tree: str | None = None
    pid: int | None = None
    pid_start: int | None = None

    def running(self) -> bool:
        """The recorded process still runs: same pid, same start time, marker in its argv."""
        return (
            self.pid is not None
            and self.pid_start is not None
            and is_our_process(self.pid, self.pid_start, self.marker)
        )


@dataclass
class LabState:
    prefix: str
    topology: str
    nodes: int
    run_dir: str
    yggdrasil: str
    version: int = STATE_VERSION
    created_at: float = field(default_factory=time.time)
    complete: bool = False
    made_run_dir: bool = False  # the run directory did not exist before this lab
    hosts: list[HostRecord] = field(default_factory=list)
    links: list[LinkRecord] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)  # shared directories the lab made
    services: list[ServiceRecord] = field(default_factory=list)  # stopped first by ``down``

    def host(self, name: str) -> HostRecord:
        for record in self.hosts:
            if record.host == name:
                return record
        raise KeyError(name)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    def save(self, path: Path) -> None:
        """Write atomically (temp file + rename) so a crash never leaves half a file."""
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as stream:
            stream.write(self.to_json())
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)

    @classmethod
    def from_dict(cls, data: Any) -> LabState:
        if not isinstance(data, dict):
            raise LabStateError("the state is not a JSON object")
        if data.get("version") != STATE_VERSION:
            raise LabStateError(f"state version {data.get('version')!r} is not {STATE_VERSION}")
        hosts = [_build(HostRecord, h) for h in _list(data, "hosts")]
        links = [_build(LinkRecord, lk) for lk in _list(data, "links")]
        services = [_build(ServiceRecord, sv) for sv in _list(data, "services")]
        base = {k: v for k, v in data.items() if k not in ("hosts", "links", "services")}
        state = _build(cls, base)
        state.hosts, state.links, state.services = hosts, links, services
        return state


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise LabStateError(f"{key}: not a list")
    return value


_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "int": (int,),
    "int | None": (int, type(None)),
    "str": (str,),
    "str | None": (str, type(None)),
    "bool": (bool,),
    "float": (float, int),
    "list[HostRecord]": (list,),
    "list[LinkRecord]": (list,),
    "list[ServiceRecord]": (list,),
    "list[str]": (list,),
}


def _build(cls: Callable[..., T], data: Any) -> T:
    """Construct a record, checking every field is present-or-defaulted and of its type."""
    if not isinstance(data, dict):
        raise LabStateError(f"{getattr(cls, '__name__', cls)}: not a JSON object")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - set(fields)
    if unknown:
        raise LabStateError(f"unknown keys {sorted(unknown)}")
    for name, value in data.items():
        allowed = _TYPES.get(str(fields[name].type), (object,))
        if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
            raise LabStateError(f"{name}: {value!r} has the wrong type")
    try:
        return cls(**data)
    except TypeError as exc:
        raise LabStateError(str(exc)) from exc


def load_state(path: Path) -> LabState | None:
    """The recorded lab, None if there is no state file; a damaged file is an error."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return LabState.from_dict(json.loads(text))
    except (ValueError, LabStateError) as exc:
        raise LabStateError(
            f"state file {path} is damaged ({exc}); check `ip netns list` and "
            f"remove the lab's namespaces and {path} by hand"
        ) from exc


class LabLock:
    """An exclusive lock on the run directory, so two ``up``/``down`` never interleave."""

    def __init__(self, run_dir: Path, timeout: float = 120.0) -> None:
        self.path = run_dir / LOCK_FILE
        self.timeout = timeout
        self._fd: int | None = None

    def _open(self) -> int:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> LabLock:
        fd = self._open()
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() > deadline:
                    raise LabError(
                        f"another lab command holds {self.path} for over {self.timeout:g} s"
                    ) from None
                time.sleep(0.1)
                fd = self._open()
                continue
            # The holder before us may have removed the lock file (and run directory)
            # on its way out; a lock on an unlinked file protects nothing, so retry.
            try:
                current = os.stat(self.path).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(fd).st_ino:
                break
            os.close(fd)
            fd = self._open()
        self._fd = fd
        return self

    def remove_run_dir(self) -> None:
        """Remove the lock file and the run directory (if empty) while still holding the lock."""
        with contextlib.suppress(FileNotFoundError):
            (self.path.parent / MADE_MARKER).unlink()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        with contextlib.suppress(OSError):
            self.path.parent.rmdir()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
