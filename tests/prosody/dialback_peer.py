"""A scripted dialback peer: claims domains at a server and, optionally, answers for them.

Usage: dialback_peer.py CONFIG_JSON

Run inside a namespace. CONFIG_JSON names:

- ``server`` (address), ``own`` (the stream's from), ``to`` (the server's domain);
- ``claims``: a list of ``[from, to, key]`` sent as ``db:result`` on each stream,
  or ``raw``: a list of elements sent as they are;
- ``streams``: how many streams to open at once (each sends every claim);
- ``authority`` (optional): ``{"address", "cert", "key", "keys": [...], "mode"}``:
  listen on ``[address]:5269`` as the authoritative server of the claimed
  domains; ``mode`` "answer" answers ``db:verify`` (valid when the key is one
  of ``keys``), "silent" accepts connections and never answers;
- ``answers``: dialback answers to wait for per stream; ``wait``: seconds.

Prints one JSON object: ``answers`` (the dialback answers and stream errors each
stream received, as text), ``open`` (per stream, whether it was still open),
``verify_asked`` (the db:verify keys the authority was asked about).
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import sys
import threading
import time
from typing import Any

HEADER = (
    "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
    "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
    "from='{sender}' to='{receiver}' version='1.0'>"
)
REPLY_HEADER = (
    "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
    "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
    "from='{sender}' to='{receiver}' id='{id}' version='1.0'>"
)
ANSWER = re.compile(
    r"<(?:db:)?(?:result|verify)\b[^>]*\btype=['\"](?:valid|invalid|error)['\"].*?"
    r"(?:/>|</(?:db:)?(?:result|verify)>)|</stream:stream>|<stream:error>.*?</stream:error>",
    re.S,
)
ELEMENT = re.compile(r"<(?:db:)?(result|verify)\b([^>]*?)(?:/>|>(.*?)</(?:db:)?\1>)", re.S)
ATTRIBUTE = re.compile(r"([\w:]+)=['\"]([^'\"]*)['\"]")

Sock = socket.socket | ssl.SSLSocket


def read_until(sock: Sock, done: Any, deadline: float) -> tuple[str, bool]:
    """Text received until ``done(text)`` or the deadline; False when the stream ended."""
    received = ""
    while not done(received):
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return received, True
        except OSError:
            return received, False
        if not chunk:
            return received, False
        received += chunk.decode("utf-8", "replace")
        if "</stream:stream>" in received:
            return received, False
        if time.monotonic() > deadline:
            break
    return received, True


def claimant(config: dict[str, Any], index: int, results: list[Any]) -> None:
    deadline = time.monotonic() + config.get("wait", 20)
    header = HEADER.format(sender=config["own"], receiver=config["to"]).encode()
    sock: Sock = socket.create_connection((config["server"], 5269), timeout=20)
    sock.sendall(header)
    features, _ = read_until(sock, lambda t: "</stream:features>" in t, deadline)
    if "<starttls" in features:
        sock.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        read_until(sock, lambda t: "<proceed" in t, deadline)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        sock = context.wrap_socket(sock, server_hostname=config["to"])
        sock.sendall(header)
        read_until(sock, lambda t: "</stream:features>" in t, deadline)
    elements = config.get("raw") or [
        f"<db:result from='{claimed}' to='{to}'>{key}</db:result>"
        for claimed, to, key in config["claims"]
    ]
    sock.sendall("".join(elements).encode())
    wanted = config.get("answers", len(elements))
    text, still_open = read_until(sock, lambda t: len(ANSWER.findall(t)) >= wanted, deadline)
    results[index] = {"answers": ANSWER.findall(text), "open": still_open}
    sock.close()


def serve_authority(
    connection: socket.socket, config: dict[str, Any], asked: list[str], own: str
) -> None:
    """Be the authoritative server of ``own`` on one incoming connection."""
    authority = config["authority"]
    deadline = time.monotonic() + config.get("wait", 20) + 5
    header, _ = read_until(connection, lambda t: re.search(r"<stream:stream[^>]*>", t), deadline)
    if authority["mode"] == "silent":
        read_until(connection, lambda t: False, deadline)
        return
    peer = dict(ATTRIBUTE.findall(re.search(r"<stream:stream([^>]*)>", header).group(1)))
    own = peer.get("to", own)
    reply = REPLY_HEADER.format(sender=own, receiver=peer.get("from", ""), id="authority-1")
    connection.sendall(
        (
            reply + "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>"
            "<required/></starttls></stream:features>"
        ).encode()
    )
    read_until(connection, lambda t: "<starttls" in t, deadline)
    connection.sendall(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(authority["cert"], authority["key"])
    tls = context.wrap_socket(connection, server_side=True)
    read_until(tls, lambda t: re.search(r"<stream:stream[^>]*>", t), deadline)
    reply = REPLY_HEADER.format(sender=own, receiver=peer.get("from", ""), id="authority-2")
    tls.sendall(
        (
            reply + "<stream:features><dialback xmlns='urn:xmpp:features:dialback'/>"
            "</stream:features>"
        ).encode()
    )
    buffer = ""
    while time.monotonic() < deadline:
        tls.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = tls.recv(65536)
        except (TimeoutError, OSError):
            return
        if not chunk:
            return
        buffer += chunk.decode("utf-8", "replace")
        for match in list(ELEMENT.finditer(buffer)):
            name, attributes, key = (
                match.group(1),
                dict(ATTRIBUTE.findall(match.group(2))),
                (match.group(3) or ""),
            )
            if "type" in attributes:
                continue
            sender, receiver = attributes.get("to", own), attributes.get("from", "")
            if name == "result":
                # This server's own dialback towards the authority: accepted.
                answer = f"<db:result from='{sender}' to='{receiver}' type='valid'/>"
            else:
                asked.append(key)
                verdict = "valid" if key in authority["keys"] else "invalid"
                answer = (
                    f"<db:verify from='{sender}' to='{receiver}' id='{attributes.get('id', '')}' "
                    f"type='{verdict}'>{key}</db:verify>"
                )
            tls.sendall(answer.encode())
        last = max((m.end() for m in ELEMENT.finditer(buffer)), default=0)
        buffer = buffer[last:]


def main() -> None:
    config = json.loads(sys.argv[1])
    asked: list[str] = []
    authority = config.get("authority")
    if authority:
        listener = socket.create_server(
            (authority["address"], 5269), family=socket.AF_INET6, reuse_port=True
        )
        listener.settimeout(0.2)

        def accept() -> None:
            end = time.monotonic() + config.get("wait", 20) + 5
            while time.monotonic() < end:
                try:
                    connection, _ = listener.accept()
                except TimeoutError:
                    continue
                threading.Thread(
                    target=serve_authority,
                    args=(connection, config, asked, config["own"]),
                    daemon=True,
                ).start()

        threading.Thread(target=accept, daemon=True).start()
    streams = config.get("streams", 1)
    results: list[Any] = [None] * streams
    threads = [
        threading.Thread(target=claimant, args=(config, index, results)) for index in range(streams)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sys.stdout.write(
        json.dumps(
            {
                "answers": [r["answers"] if r else None for r in results],
                "open": [r["open"] if r else None for r in results],
                "verify_asked": asked,
            }
        )
    )


if __name__ == "__main__":
    main()
