"""The lab's Matrix client (lab/matrix/client.py) over TCP, for a homeserver
whose client listener is a port in a container, not a unix socket."""

from __future__ import annotations

import http.client
from ipaddress import IPv6Address
from pathlib import Path

from ..matrix.client import ClientApi

__all__ = ["TcpClientApi"]


class TcpClientApi(ClientApi):
    """JSON requests to ``http://[address]:port``."""

    def __init__(self, address: IPv6Address, port: int, server_name: str) -> None:
        super().__init__(Path("/nonexistent"), server_name)
        self.address = address
        self.port = port

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(str(self.address), self.port, timeout=timeout)
