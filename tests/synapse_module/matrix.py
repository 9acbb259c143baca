"""Client-API steps shared by the tests: rooms across two homeservers, messages.

The tests hold users as access tokens; each step drives the lab's client
(:class:`v6alt.lab.matrix.client.MatrixUser`) with that token.
"""

from __future__ import annotations

from v6alt.lab.matrix.client import MatrixUser

from .homeserver import Homeserver

INVITE_TIMEOUT = 30.0


def _user(hs: Homeserver, token: str, localpart: str = "") -> MatrixUser:
    return MatrixUser(hs.api, hs.user_id(localpart) if localpart else "", token)


def has_message(hs: Homeserver, token: str, room_id: str, text: str) -> bool:
    return text in _user(hs, token).texts(room_id)


def send(hs: Homeserver, token: str, room_id: str, text: str) -> None:
    _user(hs, token).send_text(room_id, text)


def shared_room(a: Homeserver, a_token: str, b: Homeserver, b_token: str, b_localpart: str) -> str:
    """A room created on A, the B user invited over federation and joined."""
    room_id = _user(a, a_token).create_room(invite=[])
    _user(a, a_token).invite(room_id, b.user_id(b_localpart))
    _user(b, b_token, b_localpart).join(room_id, timeout=INVITE_TIMEOUT)
    return room_id
