"""The pin file: durable, shared by concurrent processes, never half written.

One JSON file (format in :mod:`v6alt.pins`) holds every pin of one server
(a Synapse with all its workers, or one sidecar). Writers take an exclusive
``fcntl.flock`` on ``FILE.lock``, read the file afresh, apply their change
and replace the file atomically (a temporary file in the same directory,
fsync, ``os.replace``, fsync of the directory): a pin written by one worker
is never lost by another, and a crash leaves the old file or the new one.
Readers need no lock (``os.replace`` is atomic); they keep the parsed file
and read it again only when its inode, size or mtime changed, so the hot
path costs one ``stat``. ``v6alt pins forget`` is seen by a running server
at its next check.

This is the only file I/O of pinning; the decisions are pure
(:mod:`v6alt.pins`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Final

from .pins import Pin, PinCheck, PinFileError, pins_from_json, pins_to_json

__all__ = ["PinStore", "decide"]

#: Larger pin files are refused rather than read whole (about 20k pins).
MAX_PIN_FILE_BYTES: Final = 16 * 1024 * 1024


class PinStore:
    """Pins of one server, in ``path`` (created on the first write)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.lock_path = self.path + ".lock"
        self._signature: tuple[int, int, int] | None = None
        self._pins: dict[str, Pin] = {}

    # --- reading ---------------------------------------------------------

    def _read(self) -> dict[str, Pin]:
        try:
            with open(self.path, encoding="utf-8") as handle:
                stat = os.fstat(handle.fileno())
                if stat.st_size > MAX_PIN_FILE_BYTES:
                    raise PinFileError(f"{self.path}: larger than {MAX_PIN_FILE_BYTES} bytes")
                text = handle.read()
        except FileNotFoundError:
            self._signature, self._pins = None, {}
            return {}
        except UnicodeDecodeError as e:
            raise PinFileError(f"{self.path}: not UTF-8 (byte {e.start})") from None
        except OSError as e:
            raise PinFileError(f"{self.path}: cannot read: {e.strerror}") from None
        try:
            pins = pins_from_json(text)
        except PinFileError as e:
            raise PinFileError(f"{self.path}: {e}") from None
        self._signature = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        self._pins = pins
        return pins

    def _fresh(self) -> dict[str, Pin]:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self._signature, self._pins = None, {}
            return self._pins
        except OSError as e:
            raise PinFileError(f"{self.path}: cannot stat: {e.strerror}") from None
        if (stat.st_ino, stat.st_size, stat.st_mtime_ns) != self._signature:
            return self._read()
        return self._pins

    def get(self, name: str) -> Pin | None:
        """The pin of ``name`` as the file has it now. Raises :class:`PinFileError`."""
        return self._fresh().get(name)

    def all(self) -> dict[str, Pin]:
        return dict(self._fresh())

    # --- writing ---------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        directory = os.path.dirname(self.path)
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise PinFileError(f"{self.lock_path}: cannot open: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if not os.path.isdir(directory):
                raise PinFileError(f"{directory}: no such directory")
            yield
        finally:
            os.close(fd)  # releases the lock

    def _write(self, pins: dict[str, Pin]) -> None:
        directory = os.path.dirname(self.path)
        text = pins_to_json(pins)
        try:
            fd, temporary = tempfile.mkstemp(
                prefix=os.path.basename(self.path) + ".", suffix=".tmp", dir=directory
            )
        except OSError as e:
            raise PinFileError(f"{directory}: cannot write: {e.strerror}") from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise PinFileError(f"{self.path}: cannot write: {e.strerror}") from None
        with contextlib.suppress(OSError):
            dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        self._read()

    def update(self, name: str, change: Callable[[Pin | None], Pin | None]) -> Pin | None:
        """Under the lock: ``change(current pin)`` -> the pin to write, or None for
        no change. Returns the pin the file holds afterwards.

        ``change`` sees the file as it is now, so a decision taken on an older
        read (another worker pinned meanwhile) is taken again.
        """
        with self._locked():
            pins = self._read()
            current = pins.get(name)
            new = change(current)
            if new is None:
                return current
            if new.name != name:
                raise ValueError(f"pin for {new.name!r} stored under {name!r}")
            pins = dict(pins)
            pins[name] = new
            self._write(pins)
            return new

    def forget(self, name: str) -> Pin | None:
        """Remove the pin of ``name``; returns it (None: there was none)."""
        with self._locked():
            pins = dict(self._read())
            removed = pins.pop(name, None)
            if removed is not None:
                self._write(pins)
            return removed


def decide(store: PinStore, name: str, judge: Callable[[Pin | None], PinCheck]) -> PinCheck:
    """Judge against the pin of ``name``; when the verdict stores a pin, judge
    again under the lock against the file as it is then, and write that.

    The hot path (a known peer with its pinned key) is one ``stat`` and one
    dict lookup; only a first contact or a rotation takes the lock.
    Raises :class:`PinFileError` when the file cannot be read or written: the
    caller fails closed.
    """
    check = judge(store.get(name))
    if check.store is None:
        return check
    final: list[PinCheck] = []

    def change(current: Pin | None) -> Pin | None:
        again = judge(current)
        final.append(again)
        return again.store

    store.update(name, change)
    return final[-1]
