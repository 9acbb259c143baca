"""Drive scripted XMPP users (:mod:`v6alt.lab.xmpp.client`) running inside network namespaces.

The users of the demo, the lab and the end-to-end tests run in lab hosts
(:class:`~v6alt.lab.host.LabHost`); the Prosody tests' users run in their own
namespaces: anything with an ``argv`` method that prefixes a command to run
inside a namespace will do.

Each event is stamped with the monotonic time this process read it, so
callers can measure delivery times without trusting another process's clock.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from importlib.util import find_spec
from typing import Any, Final, Protocol

from ..errors import LabEnvironmentError, LabError

__all__ = ["Event", "Namespace", "XmppUser", "check_client"]

Event = dict[str, Any]
# How many of the last events a timeout's message shows, to say what came instead.
SHOWN_ON_TIMEOUT: Final = 10


class Namespace(Protocol):
    """Where a user runs, e.g. a :class:`~v6alt.lab.host.LabHost`."""

    def argv(self, cmd: Sequence[str], /) -> list[str]:
        """``cmd`` prefixed to run inside the namespace (``ip netns exec NAME ...``)."""
        ...


def check_client() -> None:
    """The scripted users need slixmpp in this interpreter."""
    if find_spec("slixmpp") is None:
        raise LabEnvironmentError(
            "the XMPP users need slixmpp; install it with: pip install slixmpp"
        )


class XmppUser:
    """One logged-in user; events arrive on a queue, commands go to its stdin.

    The client connects to ``[::1]:5222`` inside ``namespace``, where its
    server listens. Raises :class:`LabError` when it cannot log in.
    """

    def __init__(
        self, namespace: Namespace, jid: str, password: str, login_timeout: float = 30.0
    ) -> None:
        self.jid = jid
        self.process = subprocess.Popen(
            namespace.argv([sys.executable, "-m", "v6alt.lab.xmpp.client", jid, password]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self.events: queue.Queue[Event] = queue.Queue()
        self.seen: list[Event] = []
        threading.Thread(target=self._read, daemon=True).start()
        try:
            ready = self.wait_for(
                lambda e: e["event"] in ("ready", "failed"), login_timeout, "login"
            )
        except LabError:
            self.close()
            raise
        if ready["event"] != "ready":
            self.close()
            raise LabError(f"{jid} could not log in: {ready.get('reason')}")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            event: Event = json.loads(line)
            event["at"] = time.monotonic()
            self.events.put(event)

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

    def drain(self) -> list[Event]:
        """Everything that arrived so far, without waiting."""
        while True:
            try:
                self.seen.append(self.events.get_nowait())
            except queue.Empty:
                return self.seen

    def wait_for(self, match: Callable[[Event], bool], timeout: float, what: str) -> Event:
        """The first event (seen before or arriving within ``timeout`` s) that matches."""
        for event in self.drain():
            if match(event):
                return event
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LabError(f"{self.jid}: no {what} within {timeout:g} s{self._last_events()}")
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(event)
            if match(event):
                return event

    def _last_events(self) -> str:
        shown = [
            {key: value for key, value in event.items() if key != "at"}
            for event in self.seen[-SHOWN_ON_TIMEOUT:]
        ]
        return f"; last events: {json.dumps(shown)}" if shown else ""

    def wait_message(self, body: str, timeout: float = 30.0) -> Event:
        return self.wait_for(
            lambda e: e["event"] == "message" and e["body"] == body, timeout, f"message {body!r}"
        )

    def wait_error(self, recipient: str, timeout: float = 30.0) -> Event:
        """The error bounced for a message sent to ``recipient``."""
        return self.wait_for(
            lambda e: e["event"] == "error" and e["from"] == recipient,
            timeout,
            f"error from {recipient}",
        )

    def messages(self) -> list[Event]:
        return [e for e in self.drain() if e["event"] == "message"]

    def received(self, body: str) -> bool:
        """Whether a message with ``body`` arrived so far."""
        return any(e["body"] == body for e in self.messages())

    def close(self) -> None:
        """End the client (no graceful logout needed)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()
