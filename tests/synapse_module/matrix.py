"""Client-API steps shared by the tests: rooms across two homeservers, messages."""

from __future__ import annotations

import uuid
from typing import Any

from .homeserver import Homeserver, quote


def messages(hs: Homeserver, token: str, room_id: str) -> list[Any]:
    status, body = hs.request(
        "GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/messages?dir=b&limit=50", token=token
    )
    assert status == 200, body
    return [e for e in body["chunk"] if e["type"] == "m.room.message"]


def has_message(hs: Homeserver, token: str, room_id: str, text: str) -> bool:
    return any(e["content"].get("body") == text for e in messages(hs, token, room_id))


def send(hs: Homeserver, token: str, room_id: str, text: str) -> None:
    txn = uuid.uuid4().hex
    status, body = hs.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/{txn}",
        {"msgtype": "m.text", "body": text},
        token=token,
    )
    assert status == 200, body


def shared_room(a: Homeserver, a_token: str, b: Homeserver, b_token: str, b_localpart: str) -> str:
    """A room created on A, the B user invited over federation and joined."""
    status, body = a.request(
        "POST", "/_matrix/client/v3/createRoom", {"preset": "private_chat"}, token=a_token
    )
    assert status == 200, body
    room_id = str(body["room_id"])
    status, body = a.request(
        "POST",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/invite",
        {"user_id": b.user_id(b_localpart)},
        token=a_token,
    )
    assert status == 200, body

    # Incremental sync from the first token: Synapse may answer a repeated
    # initial sync from its response cache, which would hide a new invite.
    since: list[str] = []

    def invited() -> bool:
        query = f"&since={quote(since[-1])}" if since else ""
        status, body = b.request(
            "GET", f"/_matrix/client/v3/sync?timeout=1000{query}", token=b_token
        )
        assert status == 200, body
        since.append(body["next_batch"])
        return room_id in body.get("rooms", {}).get("invite", {})

    b.wait_for("the invite from A", invited)
    status, body = b.request(
        "POST",
        f"/_matrix/client/v3/join/{quote(room_id)}?server_name={quote(a.server_name)}",
        {},
        token=b_token,
    )
    assert status == 200, body
    return room_id
