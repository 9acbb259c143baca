"""Open one server-to-server stream by hand and print what the server answers.

Usage: raw_stream.py ADDRESS FROM_DOMAIN TO_DOMAIN

Run inside a namespace (as the peer whose address the server will see). Sends
a stream header and prints everything received until the server sends its
features, closes the stream, or goes quiet for 10 seconds.
"""

from __future__ import annotations

import socket
import sys

HEADER = (
    "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
    "xmlns:stream='http://etherx.jabber.org/streams' "
    "from='{sender}' to='{receiver}' version='1.0'>"
)


def main() -> None:
    address, sender, receiver = sys.argv[1:4]
    received = b""
    with socket.create_connection((address, 5269), timeout=10) as sock:
        sock.sendall(HEADER.format(sender=sender, receiver=receiver).encode())
        while b"</stream:features>" not in received and b"</stream:stream>" not in received:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            received += chunk
    sys.stdout.write(received.decode("utf-8", "replace"))


if __name__ == "__main__":
    main()
