"""An HTTP CONNECT proxy for the wrong-peer TLS test.

``python connect_proxy.py ADDRESS PORT LOG``: listens on [ADDRESS]:PORT,
answers ``CONNECT host:port`` by dialling the host (a v6.alt name is decoded
with the v6alt codec) and relaying bytes both ways; every CONNECT target is
appended to LOG. A homeserver that uses it sees the proxy, not the server
its v6.alt name encodes, as the TCP peer.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from v6alt.codec import decode
from v6alt.names import is_v6alt


def relay(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def handle(client: socket.socket, log_path: str) -> None:
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = client.recv(4096)
        if not chunk:
            client.close()
            return
        request += chunk
    method, target, _ = request.split(b"\r\n", 1)[0].decode().split(" ", 2)
    host, _, port = target.rpartition(":")
    with open(log_path, "a") as log:
        log.write(f"{method} {target}\n")
    address = str(decode(host)) if is_v6alt(host) else host.strip("[]")
    try:
        upstream = socket.create_connection((address, int(port)), timeout=10)
    except OSError:
        # Answer at once (a .well-known probe to port 443 must fail fast).
        client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
        client.close()
        return
    upstream.settimeout(None)
    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
    threading.Thread(target=relay, args=(upstream, client), daemon=True).start()
    relay(client, upstream)


def start(host: Any, port: int, log: Path) -> subprocess.Popen[str]:
    """Run the proxy on ``host``'s address (a FlatHost) and wait until it listens."""
    log.touch()
    proxy = subprocess.Popen(
        host.argv([sys.executable, __file__, str(host.address), str(port), str(log)]),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proxy.stdout is not None and proxy.stdout.readline().strip() == "ready"
    return proxy


def main() -> None:
    address, port, log_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((address, port))
    server.listen(16)
    print("ready", flush=True)
    while True:
        client, _ = server.accept()
        threading.Thread(target=handle, args=(client, log_path), daemon=True).start()


if __name__ == "__main__":
    main()
