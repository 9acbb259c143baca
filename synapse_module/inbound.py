"""Inbound federation: the X-Matrix origin of a request, judged.

- A v6.alt origin must be canonical (one identity per address); anything
  else is refused with 401 before Synapse fetches keys for it.
- ``synapse.inbound_ip_binding`` compares an authenticated v6.alt origin
  with the request's source address (``getClientAddress()``, which honours
  X-Forwarded-For where the listener sets ``x_forwarded``): ``off`` does
  nothing, ``log`` logs a mismatch, ``enforce`` refuses it with 403. The
  kernel picks the source address, so a host with several mesh addresses
  may legitimately send from another one than its name encodes: that is
  why the default only logs.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from ipaddress import ip_address
from typing import Any, Final, Literal

from v6alt.errors import V6AltNameError
from v6alt.names import is_v6alt_server_name, parse_matrix_server_name

from .metrics import ModuleMetrics

logger = logging.getLogger("v6alt.synapse_module")

_ORIGIN: Final = re.compile(r'(?:^|[ \t,])origin[ \t]*=[ \t]*("(?:[^"\\]|\\.)*"|[^, \t]*)', re.I)


def claimed_origins(request: Any) -> list[str]:
    """Every origin named in the request's X-Matrix Authorization headers."""
    headers = request.requestHeaders.getRawHeaders(b"Authorization") or []
    origins = []
    for raw in headers:
        if not raw.startswith(b"X-Matrix"):
            continue
        text = raw.decode("utf-8", "replace")[len("X-Matrix") :]
        for match in _ORIGIN.finditer(text):
            value = match.group(1)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            origins.append(value)
    return origins


class InboundGate:
    def __init__(
        self,
        binding: Literal["off", "log", "enforce"],
        metrics: ModuleMetrics | None = None,
    ) -> None:
        self.binding = binding
        self._metrics = metrics
        # Synapse's public module API, imported here, at module load, so a Synapse
        # without it fails at start-up and this file imports without Synapse.
        from synapse.module_api.errors import Codes, SynapseError

        self._error, self._codes = SynapseError, Codes

    def check(self, origin: str, request: Any, *, authenticated: bool) -> None:
        """Raise Synapse's SynapseError (401/403) to refuse; return to accept."""
        # An origin whose "port" is not a number is left to Synapse, which
        # refuses it as a malformed Authorization header.
        if not is_v6alt_server_name(origin, numeric_port_only=True):
            return
        try:
            server = parse_matrix_server_name(origin)
        except V6AltNameError as e:
            logger.warning("v6alt: refused inbound origin %r: malformed v6.alt name: %s", origin, e)
            self._count("malformed_refused")
            raise self._error(
                HTTPStatus.UNAUTHORIZED, f"Malformed v6.alt origin: {e}", self._codes.UNAUTHORIZED
            ) from None
        if not server.canonical:
            logger.warning(
                "v6alt: refused inbound origin %r: non-canonical v6.alt name "
                "(one identity per address)",
                origin,
            )
            self._count("non_canonical_refused")
            raise self._error(
                HTTPStatus.UNAUTHORIZED,
                "Non-canonical v6.alt origin: use the canonical name of the address",
                self._codes.UNAUTHORIZED,
            )
        if not authenticated:
            return
        if self.binding == "off":
            self._count("not_checked")
            return
        source = _client_host(request)
        try:
            source_address = ip_address(source.split("%", 1)[0]) if source else None
        except ValueError:
            source_address = None
        if source_address is not None and source_address == server.ipv6:
            self._count("match")
            return
        logger.warning(
            "v6alt: inbound origin %s came from %s, not from its address %s "
            "(inbound_ip_binding: %s)",
            origin,
            source or "an unknown address",
            server.ipv6,
            self.binding,
        )
        self._count("mismatch_refused" if self.binding == "enforce" else "mismatch_logged")
        if self.binding == "enforce":
            raise self._error(
                HTTPStatus.FORBIDDEN,
                "v6.alt origin does not match the source address",
                self._codes.FORBIDDEN,
            )

    def _count(self, result: str) -> None:
        if self._metrics is not None:
            self._metrics.inbound(result)


def _client_host(request: Any) -> str | None:
    get = getattr(request, "getClientAddress", None)
    address = get() if get is not None else request.getClientIP()
    host = getattr(address, "host", address)
    return str(host) if host is not None else None
