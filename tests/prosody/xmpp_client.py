"""A scripted XMPP user for the Prosody tests, run inside a server's namespace.

Usage: xmpp_client.py JID PASSWORD HOST PORT

Reads one JSON command per line on stdin and writes one JSON event per line
on stdout, so the test process (outside the namespace) can drive it:

commands: {"cmd": "send", "to": JID, "body": TEXT}
          {"cmd": "join", "room": ROOM_JID, "nick": NICK}
          {"cmd": "groupchat", "room": ROOM_JID, "body": TEXT}
          {"cmd": "quit"}
events:   {"event": "ready"} | {"event": "failed", "reason": ...}
          {"event": "message", "from", "type", "body"}
          {"event": "error", "from", "condition", "text", "body"}
          {"event": "joined", "room"} | {"event": "presence-error", "from", "condition", "text"}
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from typing import Any

from slixmpp import JID, ClientXMPP
from slixmpp.stanza import Message, Presence


def emit(**event: Any) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class ScriptedUser(ClientXMPP):
    def __init__(self, jid: str, password: str) -> None:
        # The servers use self-signed certificates; c2s is on the namespace's loopback.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        super().__init__(jid, password, ssl_context=context)
        self.enable_direct_tls = False
        self.register_plugin("xep_0045")
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("message_error", self.on_message)
        self.add_event_handler("presence_error", self.on_presence_error)
        self.add_event_handler("groupchat_presence", self.on_muc_presence)
        self.add_event_handler("failed_all_auth", lambda _: emit(event="failed", reason="auth"))
        self.add_event_handler(
            "connection_failed", lambda e: emit(event="failed", reason=f"connection: {e}")
        )

    async def on_start(self, _event: object) -> None:
        self.send_presence()
        asyncio.get_running_loop().create_task(self.read_commands())
        emit(event="ready")

    def on_message(self, msg: Message) -> None:
        if msg["type"] == "error":
            error = msg["error"]
            emit(
                event="error",
                **{"from": str(msg["from"])},
                condition=error["condition"],
                text=error["text"],
                body=msg["body"],
            )
            return
        emit(event="message", **{"from": str(msg["from"])}, type=msg["type"], body=msg["body"])

    def on_presence_error(self, pres: Presence) -> None:
        error = pres["error"]
        emit(
            event="presence-error",
            **{"from": str(pres["from"])},
            condition=error["condition"],
            text=error["text"],
        )

    def on_muc_presence(self, pres: Presence) -> None:
        if pres["type"] != "error" and 110 in pres["muc"]["status_codes"]:
            emit(event="joined", room=str(pres["from"].bare))

    async def read_commands(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            command = json.loads(line)
            name = command["cmd"]
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


def main() -> None:
    jid, password, host, port = sys.argv[1:5]
    user = ScriptedUser(jid, password)
    user.connect(host, int(port))
    user.loop.run_until_complete(user.disconnected)


if __name__ == "__main__":
    main()
