"""An XMPP user on slixmpp, run inside a test host; prints one JSON object.

Usage: python xmpp_client.py JID PASSWORD [--cafile FILE] [--host ADDRESS --port PORT]
    [--message TEXT]

Without ``--host`` the client finds its server from the JID's domain, as
every XMPP client does (SRV ``_xmpp-client._tcp``, then the domain's
addresses, port 5222), through the host's resolver. ``--cafile``: trust
that certificate (the server's self-signed one); the certificate is always
checked against the JID's domain. Logs in, sends ``--message`` to its own
JID and waits for it. Prints ``{"peer": ADDRESS, "received": BODY}`` or
``{"error": ...}``; exit status 0 either way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
from typing import Any

from slixmpp import ClientXMPP  # type: ignore[import-not-found, unused-ignore]

TIMEOUT = 60.0


class User(ClientXMPP):  # type: ignore[misc, unused-ignore]
    def __init__(self, args: argparse.Namespace, result: dict[str, Any]) -> None:
        context = ssl.create_default_context(cafile=args.cafile)
        super().__init__(args.jid, args.password, ssl_context=context)
        self.args, self.result = args, result
        self.finished = asyncio.Event()
        self.add_event_handler("session_start", self.started)
        self.add_event_handler("message", self.message)
        self.add_event_handler("failed_auth", self.failed_auth)
        self.add_event_handler("ssl_invalid_chain", self.invalid_chain)
        # slixmpp tries direct TLS first, then STARTTLS: a failed attempt is not the end.
        self.add_event_handler("connection_failed", self.attempt_failed)

    def failed_auth(self, data: Any) -> None:
        self.result["error"] = f"failed_auth: {data}"
        self.finished.set()

    def invalid_chain(self, error: Any) -> None:
        """STARTTLS refused the server's certificate (slixmpp then leaves it to us)."""
        self.result["error"] = f"ssl_invalid_chain: {error}"
        self.finished.set()

    def attempt_failed(self, data: Any) -> None:
        self.result.setdefault("failed_attempts", []).append(str(data))

    async def started(self, _: Any) -> None:
        peer = self.transport.get_extra_info("peername") if self.transport else None
        self.result["peer"] = peer[0] if peer else None
        self.send_presence()
        self.send_message(mto=self.boundjid.bare, mbody=self.args.message, mtype="chat")

    def message(self, stanza: Any) -> None:
        if stanza["body"] == self.args.message:
            self.result["received"] = stanza["body"]
            self.finished.set()


async def session(args: argparse.Namespace, result: dict[str, Any]) -> None:
    user = User(args, result)
    if args.host:
        user.connect(args.host, args.port)
    else:
        user.connect()
    try:
        await asyncio.wait_for(user.finished.wait(), TIMEOUT)
    except asyncio.TimeoutError:
        attempts = result.get("failed_attempts", [])
        result.setdefault("error", f"no message back within {TIMEOUT} s; {attempts}")
    if "received" in result:
        result.pop("error", None)
    user.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("jid")
    parser.add_argument("password")
    parser.add_argument("--cafile")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int, default=5222)
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
