"""The lab's Matrix client (lab/matrix/client.py) over TCP, for a homeserver
whose client listener is a port in a container, not a unix socket."""

from __future__ import annotations

import http.client
import json
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any

from ..matrix.client import REQUEST_TIMEOUT, ClientApi

__all__ = ["TcpClientApi"]


class TcpClientApi(ClientApi):
    """JSON requests to ``http://[address]:port``."""

    def __init__(self, address: IPv6Address, port: int, server_name: str) -> None:
        super().__init__(Path("/nonexistent"), server_name)
        self.address = address
        self.port = port

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        timeout: float = REQUEST_TIMEOUT,
    ) -> tuple[int, Any]:
        connection = http.client.HTTPConnection(str(self.address), self.port, timeout=timeout)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        try:
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        try:
            return response.status, json.loads(raw) if raw else None
        except ValueError:
            return response.status, raw.decode(errors="replace")
