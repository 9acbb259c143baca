"""A scripted XMPP user, run inside a namespace next to its server (needs slixmpp).

Usage: python -m v6alt.lab.xmpp.client JID PASSWORD [HOST [PORT]]   (default [::1]:5222)

One JSON command per line on stdin, one JSON event per line on stdout, so a
process outside the namespace (the demo, the lab and Prosody tests) can drive
it (:class:`v6alt.lab.xmpp.users.XmppUser` does):

commands: {"cmd": "send", "to": JID, "body": TEXT}
          {"cmd": "join", "room": ROOM_JID, "nick": NICK}
          {"cmd": "groupchat", "room": ROOM_JID, "body": TEXT}
          {"cmd": "quit"}
events:   {"event": "ready"} | {"event": "failed", "reason": ...}
          {"event": "message", "from", "type", "body"}
          {"event": "error", "from", "condition", "text", "body"}   a message bounced
          {"event": "presence-error", "from", "condition", "text"}  e.g. a MUC join refused
          {"event": "joined", "room"}
          {"event": "disconnected"}

A bounce's "body" is "" when the server returns the error without the
original message (Prosody does, for s2s failures).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from typing import Any

from slixmpp import JID, ClientXMPP  # type: ignore[import-not-found, unused-ignore]

__all__ = ["main"]


def emit(**event: Any) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def emit_error(event: str, stanza: Any, **extra: str) -> None:
    """An error stanza (a bounce) as an event: who sent it, the condition and the text."""
    error = stanza["error"]
    emit(
        event=event,
        condition=error["condition"],
        text=error["text"],
        **{"from": str(stanza["from"])},
        **extra,
    )


class ScriptedUser(ClientXMPP):  # type: ignore[misc, unused-ignore]
    def __init__(self, jid: str, password: str) -> None:
        # c2s runs on the namespace's loopback with the site's self-signed certificate.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        super().__init__(jid, password, ssl_context=context)
        self.enable_direct_tls = False
        self.register_plugin("xep_0045")
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("message_error", self.on_message_error)
        self.add_event_handler("presence_error", self.on_presence_error)
        self.add_event_handler("groupchat_presence", self.on_muc_presence)
        self.add_event_handler("failed_all_auth", lambda _: emit(event="failed", reason="auth"))
        self.add_event_handler(
            "connection_failed", lambda e: emit(event="failed", reason=f"connection: {e}")
        )
        self.add_event_handler("disconnected", lambda _: emit(event="disconnected"))

    async def on_start(self, _event: object) -> None:
        self.send_presence()
        asyncio.get_running_loop().create_task(self.read_commands())
        emit(event="ready")

    def on_message(self, msg: Any) -> None:
        # slixmpp raises "message" for every stanza with a body, bounces with
        # the original body included: those are reported by on_message_error.
        if msg["type"] != "error" and msg["body"]:
            emit(event="message", type=msg["type"], body=msg["body"], **{"from": str(msg["from"])})

    def on_message_error(self, msg: Any) -> None:
        emit_error("error", msg, body=msg["body"])

    def on_presence_error(self, pres: Any) -> None:
        emit_error("presence-error", pres)

    def on_muc_presence(self, pres: Any) -> None:
        if pres["type"] != "error" and 110 in pres["muc"]["status_codes"]:
            emit(event="joined", room=str(pres["from"].bare))

    async def read_commands(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            command = json.loads(line)
            name = command.get("cmd")
            if name == "send":
                self.send_message(mto=JID(command["to"]), mbody=command["body"], mtype="chat")
            elif name == "join":
                self.plugin["xep_0045"].join_muc(JID(command["room"]), command["nick"])
            elif name == "groupchat":
                self.send_message(
                    mto=JID(command["room"]), mbody=command["body"], mtype="groupchat"
                )
            elif name == "quit":
                break
            else:
                emit(event="failed", reason=f"unknown command {name!r}")
        self.disconnect()


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3, 4):
        sys.stderr.write("usage: python -m v6alt.lab.xmpp.client JID PASSWORD [HOST [PORT]]\n")
        return 2
    jid, password = argv[0], argv[1]
    host = argv[2] if len(argv) > 2 else "::1"
    port = int(argv[3]) if len(argv) > 3 else 5222
    user = ScriptedUser(jid, password)
    user.connect(host, port)
    user.loop.run_until_complete(user.disconnected)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
