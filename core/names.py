"""Parsing of server names as Matrix and XMPP carry them.

A Matrix server name is ``host[:port]`` where host is a DNS name, an IPv4
literal or a bracketed IPv6 literal. An XMPP domain is a bare host. When the
host is under ``.v6.alt`` the address comes from the label right before the
suffix; any labels in front of it are subdomains (``groups.<label>.v6.alt``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from ipaddress import IPv4Address, IPv6Address
from typing import Final

from .codec import SUFFIX, decode_label
from .errors import V6AltNameError, excerpt

__all__ = [
    "HostKind",
    "ServerName",
    "is_v6alt",
    "is_v6alt_server_name",
    "parse_host",
    "parse_matrix_server_name",
    "parse_xmpp_domain",
]

_DNS_LABEL: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_PORT: Final = re.compile(r"[0-9]{1,5}")
_MAX_NAME: Final = 255


class HostKind(str, Enum):
    V6ALT = "v6alt"
    IPV6 = "ipv6"
    IPV4 = "ipv4"
    DNS = "dns"


@dataclass(frozen=True)
class ServerName:
    """A parsed server name.

    ``address`` is set for v6.alt names and IP literals. ``canonical`` is
    True when the host is spelled exactly as v6alt (and Matrix, which compares
    server names as strings) expects: a v6.alt name whose label is the
    encoder's output and whose subdomains and suffix are lowercase. For
    non-v6.alt hosts it is always True: their spelling is not ours to judge.
    """

    host: str
    port: int | None
    kind: HostKind
    address: IPv6Address | IPv4Address | None
    label: str | None = None
    subdomains: tuple[str, ...] = ()
    canonical: bool = True

    @property
    def is_v6alt(self) -> bool:
        return self.kind is HostKind.V6ALT

    @property
    def ipv6(self) -> IPv6Address | None:
        """The IPv6 address to dial without any lookup, if the name has one."""
        return self.address if isinstance(self.address, IPv6Address) else None

    def __str__(self) -> str:
        host = f"[{self.host}]" if self.kind is HostKind.IPV6 else self.host
        return host if self.port is None else f"{host}:{self.port}"


def is_v6alt(host: str) -> bool:
    """True when ``host`` (no port) lies under ``.v6.alt``, any case."""
    h = host[:-1] if host.endswith(".") else host
    return h.lower().endswith(SUFFIX)


def is_v6alt_server_name(
    server_name: str, *, numeric_port_only: bool = False, exact: bool = False
) -> bool:
    """True when the host of a Matrix server name, ``host`` or ``host:port``, lies
    under ``.v6.alt``.

    A quick test of whether a name is v6alt's to judge; it validates nothing
    (:func:`parse_matrix_server_name` does). The port is what follows the last
    ``:`` when a host precedes it; a bracketed IPv6 literal never passes.

    - ``numeric_port_only``: only digits after the last ``:`` are a port;
      otherwise the whole text is the host, so ``x.v6.alt:abc`` does not pass.
    - ``exact``: the host must end in ``.v6.alt`` as spelled (lowercase, no
      trailing dot), as Matrix compares server names: as strings. Otherwise
      any case and a trailing dot pass, as in :func:`is_v6alt`.
    """
    host, _, port = server_name.rpartition(":")
    if not host or (numeric_port_only and not port.isdigit()):
        host = server_name
    return host.endswith(SUFFIX) if exact else is_v6alt(host)


def _parse_port(text: str, whole: str) -> int:
    if _PORT.fullmatch(text) is None:
        raise V6AltNameError(f"{excerpt(whole)}: port {text!r} is not a number of 1 to 5 digits")
    port = int(text)
    if not 1 <= port <= 65535:
        raise V6AltNameError(f"{excerpt(whole)}: port {port} is outside 1-65535")
    return port


def _parse_v6alt(host: str, port: int | None, whole: str) -> ServerName:
    if len(host) > _MAX_NAME:
        raise V6AltNameError(f"{excerpt(whole)}: host is longer than {_MAX_NAME} characters")
    labels = host[: -len(SUFFIX)].split(".")
    label = labels[-1]
    subdomains = tuple(labels[:-1])
    for sub in subdomains:
        if _DNS_LABEL.fullmatch(sub) is None:
            raise V6AltNameError(
                f"{excerpt(whole)}: subdomain label {sub!r} is not a valid DNS label"
            )
    if not label:
        raise V6AltNameError(f"{excerpt(whole)} has no address label before .v6.alt")
    address = decode_label(label, lenient=True)
    canonical = host == host.lower() and _is_strict(label)
    return ServerName(
        host=host,
        port=port,
        kind=HostKind.V6ALT,
        address=address,
        label=label,
        subdomains=subdomains,
        canonical=canonical,
    )


def _is_strict(label: str) -> bool:
    try:
        decode_label(label)
    except V6AltNameError:
        return False
    return True


def parse_host(host: str, port: int | None = None, *, whole: str | None = None) -> ServerName:
    """Parse a bare host (no port): v6.alt name, IP literal or DNS name."""
    whole = host if whole is None else whole
    if not isinstance(host, str):
        raise V6AltNameError(f"host must be text, got {type(host).__name__}")
    if not host:
        raise V6AltNameError("empty host name")
    if host.startswith("["):
        if not host.endswith("]"):
            raise V6AltNameError(f"{excerpt(whole)}: unclosed '[' in IPv6 literal")
        inner = host[1:-1]
        if "%" in inner:
            raise V6AltNameError(f"{excerpt(whole)}: zone index not allowed in a server name")
        try:
            return ServerName(inner, port, HostKind.IPV6, IPv6Address(inner))
        except ValueError:
            raise V6AltNameError(f"{excerpt(whole)}: {inner!r} is not an IPv6 address") from None
    if host.endswith("."):
        raise V6AltNameError(f"{excerpt(whole)}: a server name has no trailing dot")
    if is_v6alt(host):
        return _parse_v6alt(host, port, whole)
    if host.lower() == SUFFIX[1:]:
        raise V6AltNameError(f"{excerpt(whole)}: v6.alt is the zone itself; add the address label")
    if ":" in host:
        raise V6AltNameError(f"{excerpt(whole)}: an IPv6 literal must be in brackets")
    if len(host) > _MAX_NAME:
        raise V6AltNameError(f"{excerpt(whole)}: host is longer than {_MAX_NAME} characters")
    if re.fullmatch(r"[0-9.]+", host):
        try:
            return ServerName(host, port, HostKind.IPV4, IPv4Address(host))
        except ValueError:
            raise V6AltNameError(f"{excerpt(whole)}: {host!r} is not an IPv4 address") from None
    for label in host.split("."):
        if _DNS_LABEL.fullmatch(label) is None:
            raise V6AltNameError(f"{excerpt(whole)}: {label!r} is not a valid DNS label")
    return ServerName(host, port, HostKind.DNS, None)


def parse_matrix_server_name(server_name: str) -> ServerName:
    """Parse a Matrix server name: ``host``, ``host:port``, ``[v6]:port``.

    Raises :class:`V6AltNameError` when the name is malformed. A v6.alt name
    that decodes only leniently parses, with ``canonical=False``: callers that
    use it as an identity must refuse it.
    """
    if not isinstance(server_name, str):
        raise V6AltNameError(f"server name must be text, got {type(server_name).__name__}")
    if not server_name:
        raise V6AltNameError("empty server name")
    if server_name != server_name.strip():
        raise V6AltNameError(f"{excerpt(server_name)}: server name has surrounding white space")
    if server_name.startswith("["):
        end = server_name.find("]")
        if end < 0:
            raise V6AltNameError(f"{excerpt(server_name)}: unclosed '[' in IPv6 literal")
        host, rest = server_name[: end + 1], server_name[end + 1 :]
        if rest and not rest.startswith(":"):
            raise V6AltNameError(f"{excerpt(server_name)}: unexpected {rest!r} after ']'")
        port = _parse_port(rest[1:], server_name) if rest else None
        return parse_host(host, port, whole=server_name)
    host, sep, port_text = server_name.rpartition(":")
    if not sep:
        return parse_host(server_name, None, whole=server_name)
    if ":" in host:
        raise V6AltNameError(f"{excerpt(server_name)}: an IPv6 literal must be in brackets")
    return parse_host(host, _parse_port(port_text, server_name), whole=server_name)


def parse_xmpp_domain(domain: str) -> ServerName:
    """Parse an XMPP domainpart (no port). v6.alt labels decode leniently;
    XMPP domains are case-insensitive, so ``canonical`` is informational."""
    if not isinstance(domain, str):
        raise V6AltNameError(f"domain must be text, got {type(domain).__name__}")
    if domain != domain.strip():
        raise V6AltNameError(f"{excerpt(domain)}: domain has surrounding white space")
    if domain.endswith("."):
        domain = domain[:-1]
    if "/" in domain or "@" in domain:
        raise V6AltNameError(f"{excerpt(domain)}: a domainpart has no '@' or '/'")
    if not domain.startswith("[") and domain.count(":") == 1:
        raise V6AltNameError(f"{excerpt(domain)}: an XMPP domain carries no port")
    return parse_host(domain, None, whole=domain)
