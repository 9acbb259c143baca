"""A small Matrix client-server API client for lab homeservers.

A lab homeserver lives in its host's network namespace; it serves the client
API on a unix socket in its directory, so a process in any namespace (the
demo, a test, a benchmark) reaches it through the file system. Only what the
demo and the end-to-end tests need: shared-secret registration, rooms,
invites, joins, text messages and reading a room's timeline.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import socket
import time
import urllib.parse
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

__all__ = ["ClientApi", "MatrixApiError", "MatrixUser", "quote", "register_user", "wait_healthy"]

REQUEST_TIMEOUT: Final = 60.0
POLL_INTERVAL: Final = 0.2
HEALTH_INTERVAL: Final = 0.3


class MatrixApiError(RuntimeError):
    """A client-API request answered with an error status, or an expected event never came."""


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(str(self._socket_path))
        self.sock = sock


def quote(value: str) -> str:
    """``value`` as one URL path segment or query value (``/``, ``:``, ``!`` escaped too)."""
    return urllib.parse.quote(value, safe="")


class ClientApi:
    """JSON requests to one homeserver's client-API unix socket."""

    def __init__(self, socket_path: Path, server_name: str) -> None:
        self.socket_path = socket_path
        self.server_name = server_name

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        """A new connection to the client API (a subclass may reach it another way,
        e.g. over TCP)."""
        return _UnixHTTPConnection(self.socket_path, timeout)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        timeout: float = REQUEST_TIMEOUT,
    ) -> tuple[int, Any]:
        """``(status, parsed JSON or text)``; raises :class:`OSError` if the socket is not up.

        Without ``token`` (None or empty) the request is unauthenticated.
        """
        connection = self.connection(timeout)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        try:
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        try:
            return response.status, json.loads(raw) if raw else None
        except ValueError:
            return response.status, raw.decode(errors="replace")

    def call(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> dict[str, Any]:
        """Like :meth:`request`, but anything but 200 raises :class:`MatrixApiError`."""
        status, answer = self.request(method, path, body, token)
        if status != 200 or not isinstance(answer, dict):
            raise MatrixApiError(
                f"{self.server_name}: {method} {path.split('?')[0]}: {status} {answer}"
            )
        return answer


def wait_healthy(api: ClientApi, running: Callable[[], bool], deadline: float) -> bool:
    """Poll ``GET /health`` until it answers 200: True.

    False as soon as ``running()`` is False (the server exited), or once
    ``deadline`` (:func:`time.monotonic`) has passed.
    """
    while running():
        try:
            if api.request("GET", "/health", timeout=2)[0] == 200:
                return True
        except OSError:  # the socket is not there yet
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(HEALTH_INTERVAL)
    return False


def register_user(api: ClientApi, secret: str, localpart: str, password: str) -> MatrixUser:
    """Register ``localpart`` through the shared-secret admin API (not an admin)."""
    nonce = api.call("GET", "/_synapse/admin/v1/register")["nonce"]
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
    mac.update(b"\x00".join([nonce.encode(), localpart.encode(), password.encode(), b"notadmin"]))
    answer = api.call(
        "POST",
        "/_synapse/admin/v1/register",
        {"nonce": nonce, "username": localpart, "password": password, "admin": False,
         "mac": mac.hexdigest()},
    )  # fmt: skip
    return MatrixUser(api, str(answer["user_id"]), str(answer["access_token"]))


class MatrixUser:
    """One logged-in user of a lab homeserver."""

    def __init__(self, api: ClientApi, user_id: str, token: str) -> None:
        self.api = api
        self._user_id = user_id
        self.token = token
        self._since: str | None = None
        self._invites: dict[str, list[str]] = {}  # room ID -> servers named by its invite

    @property
    def user_id(self) -> str:
        return self._user_id

    def __repr__(self) -> str:
        return f"MatrixUser({self._user_id!r})"

    def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        return self.api.call(method, path, body, self.token)

    def create_room(self, invite: list[str]) -> str:
        """Create a private room inviting ``invite``; returns the room ID."""
        answer = self._call(
            "POST", "/_matrix/client/v3/createRoom", {"preset": "private_chat", "invite": invite}
        )
        return str(answer["room_id"])

    def invite(self, room_id: str, user_id: str) -> None:
        """Invite ``user_id`` to ``room_id`` (over federation if it lives elsewhere)."""
        self._call(
            "POST", f"/_matrix/client/v3/rooms/{quote(room_id)}/invite", {"user_id": user_id}
        )

    def _sync(self) -> dict[str, Any]:
        # Incremental from the last token: a repeated initial sync may come from
        # Synapse's response cache and hide a new invite.
        query = f"&since={quote(self._since)}" if self._since else ""
        answer = self._call("GET", f"/_matrix/client/v3/sync?timeout=1000{query}")
        self._since = str(answer["next_batch"])
        return answer

    def wait_invite(self, room_id: str, timeout: float) -> list[str]:
        """Wait for an invite to ``room_id``; returns the servers to join through."""
        deadline = time.monotonic() + timeout
        while True:
            # An incremental sync shows an invite once: remember every one it shows.
            for invited, room in self._sync().get("rooms", {}).get("invite", {}).items():
                events = room.get("invite_state", {}).get("events", [])
                senders = [e.get("sender", "") for e in events if e.get("type") == "m.room.member"]
                self._invites[invited] = sorted({s.split(":", 1)[1] for s in senders if ":" in s})
            if room_id in self._invites:
                return self._invites[room_id]
            if time.monotonic() > deadline:
                raise MatrixApiError(f"{self._user_id}: no invite to {room_id} in {timeout:g} s")
            time.sleep(POLL_INTERVAL)

    def join(self, room_id: str, timeout: float) -> None:
        """Wait for the invite (it comes over federation), then join through its sender's server."""
        via = self.wait_invite(room_id, timeout)
        query = "&".join(f"server_name={quote(server)}" for server in via)
        self._call("POST", f"/_matrix/client/v3/join/{quote(room_id)}?{query}", {})

    def send_text(self, room_id: str, body: str) -> None:
        txn = uuid.uuid4().hex
        self._call(
            "PUT",
            f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/{txn}",
            {"msgtype": "m.text", "body": body},
        )

    def texts(self, room_id: str, limit: int = 1000) -> list[str]:
        """Bodies of every text message in the room's timeline, oldest first, duplicates kept."""
        bodies: list[str] = []
        token = ""
        while len(bodies) < limit:
            query = f"dir=b&limit=100{f'&from={quote(token)}' if token else ''}"
            answer = self._call(
                "GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/messages?{query}"
            )
            chunk = answer.get("chunk", [])
            bodies += [
                str(e["content"]["body"])
                for e in chunk
                if e.get("type") == "m.room.message" and "body" in e.get("content", {})
            ]
            token = answer.get("end", "")
            if not chunk or not token:
                break
        return bodies[::-1]

    def wait_text(self, room_id: str, body: str, timeout: float) -> None:
        """Return once ``body`` is in the room's timeline (:class:`MatrixApiError` on timeout)."""
        self.wait_seen(room_id, body, timeout)

    def wait_seen(self, room_id: str, body: str, timeout: float) -> float:
        """Like :meth:`wait_text`; returns the :func:`time.monotonic` time it was first seen."""
        deadline = time.monotonic() + timeout
        while True:
            if body in self.texts(room_id):
                return time.monotonic()
            if time.monotonic() > deadline:
                raise MatrixApiError(
                    f"{self._user_id}: {body!r} not in {room_id} after {timeout:g} s"
                )
            time.sleep(POLL_INTERVAL)

    def joined_members(self, room_id: str) -> list[str]:
        answer = self._call("GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/joined_members")
        return sorted(answer.get("joined", {}))
