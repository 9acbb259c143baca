"""A deliberately small HTTPS server that looks like a Matrix federation listener.

Usage: fake_matrix.py ADDRESS PORT CERT KEY SERVER_NAME [--key-server-name NAME]
       [--well-known BODY] [--expired] [--plain] [--redirect PATH STATUS LOCATION]...
       [--endless-redirects]

Serves /_matrix/federation/v1/version, /_matrix/key/v2/server (a key document
for --key-server-name, default SERVER_NAME, self-signed with a fresh ed25519
key) and, with --well-known, that body at /.well-known/matrix/server.
--redirect answers PATH with STATUS and a Location header; --endless-redirects
sends /.well-known/matrix/server?hop=N on to ?hop=N+1 for ever. For the
checker's broken-setup tests: a real homeserver cannot be made to lie.
Prints "ready" once listening.
"""

from __future__ import annotations

import argparse
import base64
import json
import socket
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from v6alt.check.canonical_json import signed_bytes

WELL_KNOWN = "/.well-known/matrix/server"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def key_document(server_name: str, expired: bool) -> dict[str, Any]:
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    now = int(time.time() * 1000)
    document: dict[str, Any] = {
        "server_name": server_name,
        "valid_until_ts": now - 3_600_000 if expired else now + 86_400_000,
        "verify_keys": {"ed25519:v6c": {"key": _b64(public)}},
        "old_verify_keys": {},
    }
    signature = private.sign(signed_bytes(document))
    document["signatures"] = {server_name: {"ed25519:v6c": _b64(signature)}}
    return document


class _Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("address", "port", "cert", "key", "server_name"):
        parser.add_argument(name)
    parser.add_argument("--key-server-name")
    parser.add_argument("--well-known")
    parser.add_argument("--expired", action="store_true")
    parser.add_argument("--plain", action="store_true", help="plain HTTP (a tls: off range)")
    parser.add_argument("--redirect", nargs=3, action="append", default=[],
                        metavar=("PATH", "STATUS", "LOCATION"))  # fmt: skip
    parser.add_argument("--endless-redirects", action="store_true")
    args = parser.parse_args()
    keys = json.dumps(key_document(args.key_server_name or args.server_name, args.expired))
    pages = {
        "/_matrix/federation/v1/version": json.dumps(
            {"server": {"name": "v6c-fake", "version": "0"}}
        ),
        "/_matrix/key/v2/server": keys,
    }
    if args.well_known is not None:
        pages[WELL_KNOWN] = args.well_known
    redirects = {path: (int(status), location) for path, status, location in args.redirect}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            redirect = redirects.get(self.path)
            if redirect is None and args.endless_redirects and self.path.startswith(WELL_KNOWN):
                hop = int(self.path.partition("?hop=")[2] or 0)
                redirect = (307, f"{WELL_KNOWN}?hop={hop + 1}")
            if redirect is not None:
                self.send_response(redirect[0])
                self.send_header("Location", redirect[1])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = pages.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/json")
            data = (body if body is not None else '{"errcode": "M_NOT_FOUND"}').encode()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"{self.headers.get('Host')} {format % args}\n")

    server = _Server((args.address, int(args.port)), Handler)
    if not args.plain:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
