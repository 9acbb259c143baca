"""Drive ``xmpp_client.py`` users running inside the servers' namespaces."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .lab import Node

CLIENT = Path(__file__).with_name("xmpp_client.py")
Event = dict[str, Any]


class XmppUser:
    """One logged-in user; events arrive on a queue, commands go to stdin."""

    def __init__(self, node: Node, jid: str, password: str) -> None:
        self.jid = jid
        self.process = node.popen(
            [sys.executable, str(CLIENT), jid, password, "::1", "5222"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=1,
        )
        self.events: queue.Queue[Event] = queue.Queue()
        self.seen: list[Event] = []
        threading.Thread(target=self._read, daemon=True).start()
        ready = self.wait_for(lambda e: e["event"] in ("ready", "failed"), 30, "login")
        if ready["event"] != "ready":
            raise AssertionError(f"{jid} could not log in: {ready}")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.events.put(json.loads(line))

    def _command(self, **command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def send(self, to: str, body: str) -> None:
        self._command(cmd="send", to=to, body=body)

    def join(self, room: str, nick: str) -> None:
        self._command(cmd="join", room=room, nick=nick)

    def groupchat(self, room: str, body: str) -> None:
        self._command(cmd="groupchat", room=room, body=body)

    def wait_for(self, match: Callable[[Event], bool], timeout: float, what: str) -> Event:
        """The first event (seen before or arriving within ``timeout``) that matches."""
        for event in self.seen:
            if match(event):
                return event
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.jid}: no {what} within {timeout}s; saw {self.seen}")
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(event)
            if match(event):
                return event

    def wait_message(self, body: str, timeout: float = 30) -> Event:
        return self.wait_for(
            lambda e: e["event"] == "message" and e["body"] == body, timeout, f"message {body!r}"
        )

    def wait_error(self, recipient: str, timeout: float = 30) -> Event:
        """The error bounced for a message sent to ``recipient`` (bounces carry no body)."""
        return self.wait_for(
            lambda e: e["event"] == "error" and e["from"] == recipient,
            timeout,
            f"error from {recipient}",
        )

    def drain(self) -> list[Event]:
        """Everything that arrived so far, without waiting."""
        while not self.events.empty():
            self.seen.append(self.events.get_nowait())
        return self.seen

    def received(self, body: str) -> bool:
        """Whether ``body`` arrived so far."""
        self.drain()
        return any(e["event"] == "message" and e["body"] == body for e in self.seen)

    def close(self) -> None:
        """End the client (a test client: no need for a graceful logout)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
