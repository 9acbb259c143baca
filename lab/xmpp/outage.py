"""Outage harness for XMPP benchmarks and tests: when the route is back, who answers, who probes.

Three helpers, each a small process inside a lab namespace (clock:
``time.monotonic()``, which is the same in every namespace):

- :class:`RouteWatch`: TCP connects to ``[address]:port`` every 50 ms and
  reports the first one that succeeds: the moment the route (or the server
  behind it) is back, measured as the module's own probes would see it.
- :class:`Listeners`: listeners that come back at given times: each address
  is added to the namespace's loopback and a socket listens on it then;
  every connection is accepted and closed at once. Reports when each
  listened and when each first got a connection.
- :class:`SynCapture`: ``tshark`` counting the connection attempts (SYNs,
  retransmissions counted once) to a TCP port on an interface.

Run inside a namespace as ``python -m v6alt.lab.xmpp.outage watch ADDRESS
PORT`` or ``... listen PORT < schedule.json``; each prints JSON lines.
"""

from __future__ import annotations

import json
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["Listeners", "RouteWatch", "SynCapture"]

WATCH_EVERY = 0.05
IP_FREEBIND = 15  # linux/in.h; applies to IPv6 sockets too
WATCH_CONNECT_TIMEOUT = 2.0


class Namespace(Protocol):
    def argv(self, cmd: Sequence[str], /) -> list[str]: ...


def _json_lines(process: subprocess.Popen[str], into: list[dict[str, Any]]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        if line.strip():
            into.append(json.loads(line))


class RouteWatch:
    """The first successful TCP connect to ``[address]:port`` from inside ``namespace``."""

    def __init__(self, namespace: Namespace, address: str, port: int = 5269) -> None:
        argv = [sys.executable, "-m", "v6alt.lab.xmpp.outage", "watch", address, str(port)]
        self.process = subprocess.Popen(
            namespace.argv(argv), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self.events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=_json_lines, args=(self.process, self.events))
        self._reader.start()

    def wait(self, timeout: float) -> float | None:
        """When the first connect succeeded (monotonic seconds), or None within ``timeout``."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.close()
        self._reader.join()
        return next((float(e["at"]) for e in self.events if "at" in e), None)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Listeners:
    """Addresses that start listening on ``port`` at ``monotonic start + delay`` each."""

    def __init__(self, namespace: Namespace, schedule: dict[str, float], port: int = 5269) -> None:
        argv = [sys.executable, "-m", "v6alt.lab.xmpp.outage", "listen", str(port)]
        self.process = subprocess.Popen(
            namespace.argv(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(schedule) + "\n")
        self.process.stdin.close()
        self.events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=_json_lines, args=(self.process, self.events))
        self._reader.start()

    def times(self) -> dict[str, dict[str, float]]:
        """Per address: ``listen`` and, once it had one, ``accept`` (its first connection)."""
        result: dict[str, dict[str, float]] = {}
        for event in list(self.events):
            result.setdefault(event["address"], {}).setdefault(event["event"], float(event["at"]))
        return result

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join()


class SynCapture:
    """Connection attempts (first SYNs) to ``port`` leaving through ``ifname``."""

    def __init__(self, namespace: Namespace, ifname: str, port: int = 5269) -> None:
        argv = ["tshark", "-i", ifname, "-n", "-l", "-f", f"ip6 and tcp dst port {port}",
                "-Y", "tcp.flags.syn == 1 && tcp.flags.ack == 0",
                "-T", "fields", "-e", "frame.time_epoch", "-e", "ipv6.dst",
                "-e", "tcp.srcport"]  # fmt: skip
        self.process = subprocess.Popen(
            namespace.argv(argv), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def attempts(self) -> list[tuple[float, str, int]]:
        """(wall time, destination, source port) of each attempt, retransmissions dropped."""
        seen: dict[tuple[str, int], float] = {}
        for line in list(self.lines):
            parts = line.split()
            if len(parts) == 3 and parts[2].isdigit():
                seen.setdefault((parts[1], int(parts[2])), float(parts[0]))
        return sorted((at, dst, sport) for (dst, sport), at in seen.items())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join()


def _print(**event: Any) -> None:
    print(json.dumps(event), flush=True)


def watch(address: str, port: int) -> int:
    """A new non-blocking connect every WATCH_EVERY s, each given WATCH_CONNECT_TIMEOUT s."""
    selector = selectors.DefaultSelector()
    opened: list[tuple[float, socket.socket]] = []
    next_at = time.monotonic()
    while True:
        now = time.monotonic()
        if now >= next_at:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex((address, port))
            selector.register(sock, selectors.EVENT_WRITE)
            opened.append((now, sock))
            next_at = now + WATCH_EVERY
        for key, _ in selector.select(max(0.0, next_at - time.monotonic())):
            ready = key.fileobj
            assert isinstance(ready, socket.socket)
            sock = ready
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                _print(at=time.monotonic())
                return 0
            selector.unregister(sock)
            sock.close()
            opened = [(t, s) for t, s in opened if s is not sock]
        while opened and opened[0][0] < time.monotonic() - WATCH_CONNECT_TIMEOUT:
            _, sock = opened.pop(0)
            if sock.fileno() >= 0:
                selector.unregister(sock)
                sock.close()


def listen(port: int, schedule: dict[str, float]) -> int:
    start = time.monotonic()
    pending = sorted(schedule.items(), key=lambda item: item[1])
    selector = selectors.DefaultSelector()
    accepted: set[str] = set()
    while True:
        now = time.monotonic()
        while pending and start + pending[0][1] <= now:
            address, _ = pending.pop(0)
            add = ["ip", "-6", "addr", "add", f"{address}/128", "dev", "lo", "nodad"]
            subprocess.run(add, check=True)
            server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # Bound even while the kernel still settles the new address.
            server.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
            server.bind((address, port))
            server.listen(64)
            server.setblocking(False)
            selector.register(server, selectors.EVENT_READ, address)
            _print(event="listen", address=address, at=time.monotonic())
        wait = 1.0 if not pending else max(0.0, start + pending[0][1] - time.monotonic())
        for key, _ in selector.select(min(wait, 1.0)):
            listening = key.fileobj
            assert isinstance(listening, socket.socket)
            try:
                conn, _ = listening.accept()
            except OSError:
                continue
            conn.close()
            if key.data not in accepted:
                accepted.add(key.data)
                _print(event="accept", address=key.data, at=time.monotonic())


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 3 and args[0] == "watch":
        return watch(args[1], int(args[2]))
    if len(args) == 2 and args[0] == "listen":
        return listen(int(args[1]), json.loads(sys.stdin.readline()))
    print("usage: outage watch ADDRESS PORT | outage listen PORT < schedule.json", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
