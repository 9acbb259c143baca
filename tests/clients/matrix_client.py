"""A Matrix user on matrix-nio, run inside a test host; prints one JSON object.

Usage: python matrix_client.py HOMESERVER_URL USER PASSWORD [--cafile FILE | --pin SHA256]
    [--discover] [--message TEXT]

``--discover``: first fetch HOMESERVER_URL's ``/.well-known/matrix/client`` and
use the ``base_url`` it names. ``--cafile``: trust that certificate (the
server's self-signed one), as docs/clients.md says; ``--pin``: accept only
the certificate with that SHA-256 (hex, colons allowed: what ``v6alt check``
and ``openssl x509 -fingerprint -sha256`` print), aiohttp's ``Fingerprint``;
with neither, the system's CA store. Logs in, creates a room, sends
``--message`` and reads it back with a sync. Any failure is printed as
``{"error": ...}``; exit status 0 either way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
from typing import Any

import aiohttp
from nio import (  # type: ignore[import-not-found, unused-ignore]
    AsyncClient,
    AsyncClientConfig,
    DiscoveryInfoResponse,
    LoginResponse,
    RoomCreateResponse,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
)

# One attempt: a connection or certificate error is reported, not retried.
CONFIG = AsyncClientConfig(max_timeouts=0, request_timeout=30)


def client(url: str, user: str, context: ssl.SSLContext | aiohttp.Fingerprint | None) -> Any:
    return AsyncClient(url, user, config=CONFIG, ssl=context)


async def session(args: argparse.Namespace, result: dict[str, Any]) -> None:
    context: ssl.SSLContext | aiohttp.Fingerprint | None = None
    if args.cafile:
        context = ssl.create_default_context(cafile=args.cafile)
    elif args.pin:
        context = aiohttp.Fingerprint(bytes.fromhex(args.pin.replace(":", "")))
    homeserver = args.homeserver
    if args.discover:
        probe = client(homeserver, "", context)
        try:
            info = await probe.discovery_info()
        finally:
            await probe.close()
        if not isinstance(info, DiscoveryInfoResponse):
            result["error"] = f"discovery: {info}"
            return
        homeserver = result["discovered"] = info.homeserver_url
    user = client(homeserver, args.user, context)
    try:
        login = await user.login(args.password, device_name="v6alt clients test")
        if not isinstance(login, LoginResponse):
            result["error"] = f"login: {login}"
            return
        result["user_id"] = login.user_id
        created = await user.room_create(name="v6alt clients")
        if not isinstance(created, RoomCreateResponse):
            result["error"] = f"room_create: {created}"
            return
        await user.sync(timeout=0)
        sent = await user.room_send(
            created.room_id, "m.room.message", {"msgtype": "m.text", "body": args.message}
        )
        if not isinstance(sent, RoomSendResponse):
            result["error"] = f"room_send: {sent}"
            return
        result["event_id"] = sent.event_id
        synced = await user.sync(timeout=0, full_state=True)
        if not isinstance(synced, SyncResponse):
            result["error"] = f"sync: {synced}"
            return
        room = synced.rooms.join.get(created.room_id)
        events = room.timeline.events if room is not None else []
        result["read"] = [e.body for e in events if isinstance(e, RoomMessageText)]
    finally:
        await user.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("homeserver")
    parser.add_argument("user")
    parser.add_argument("password")
    parser.add_argument("--cafile")
    parser.add_argument("--pin")
    parser.add_argument("--discover", action="store_true")
    parser.add_argument("--message", default="hello over the mesh")
    args = parser.parse_args()
    result: dict[str, Any] = {}
    try:
        asyncio.run(session(args, result))
    except Exception as error:  # reported to the test, which decides
        result["error"] = f"{type(error).__name__}: {error}"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
