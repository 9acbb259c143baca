"""A small HTTPS server for ``/.well-known/matrix/server``, redirects included.

Run inside a host (``python -m v6alt.lab.well_known CONFIG.json``, or
:func:`v6alt.lab.mixed.start_well_known`). The config names the listening
address and port, the certificate and key, a request log, and the routes:
``"host/path"`` (the request's Host header without a port, and its path) ->
``{"json": VALUE}`` (200, ``application/json``) or ``{"status": 301, "location":
URL}`` (any redirect code). Anything else is 404. Prints ``ready`` once it
listens; every request is appended to the log as ``host path status``.
"""

from __future__ import annotations

import json
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["main"]


class _Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True


def _handler(routes: dict[str, dict[str, Any]], log_path: str) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        # Keep-alive, as web servers do: Synapse's agent pools connections and
        # sends the next hop of a redirect over the same one.
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            host = (self.headers.get("Host") or "").lower()
            bracketed = host.startswith("[")
            host = host.partition("]")[0] + "]" if bracketed else host.partition(":")[0]
            route = routes.get(f"{host}{self.path}")
            if route is None:
                status, body = 404, b'{"errcode": "M_NOT_FOUND"}'
                headers: dict[str, str] = {}
            elif "json" in route:
                status, body, headers = 200, json.dumps(route["json"]).encode(), {}
            else:
                status, body = int(route["status"]), b""
                headers = {"Location": str(route["location"])}
            with lock, open(log_path, "a") as log:
                log.write(f"{host} {self.path} {status}\n")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


def main() -> None:
    with open(sys.argv[1]) as stream:
        config = json.load(stream)
    address, port = config["listen"]
    server = _Server((address, int(port)), _handler(config["routes"], config["log"]))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(config["certificate"], config["key"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
