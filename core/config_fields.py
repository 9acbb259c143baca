"""Field checks shared by the config schema: each takes the raw YAML value
and the key path, returns the typed value or raises :class:`ConfigError`
naming that path."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from ipaddress import IPv4Address, IPv6Address, IPv6Network, ip_network
from typing import Final

from .errors import EXCERPT_LIMIT, V6AltError, excerpt

__all__ = [
    "ConfigError",
    "ConfigPath",
    "Endpoint",
    "boolean",
    "choice",
    "describe",
    "endpoint",
    "format_endpoint",
    "format_path",
    "integer",
    "mapping",
    "network",
    "networks",
    "no_duplicates",
    "seconds",
    "sequence",
]

ConfigPath = tuple[str | int, ...]
Endpoint = tuple[str, int]


def format_path(path: ConfigPath) -> str:
    """``("ranges", "allow", 1)`` -> ``"ranges.allow[1]"``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


class ConfigError(V6AltError):
    """Invalid configuration. ``path`` is the key path, ``reason`` what is wrong.

    ``str(error)`` is ``"<dotted path>: <reason>"``; errors about the whole
    document (unreadable file, YAML syntax) have an empty path and are just
    the reason.
    """

    def __init__(self, path: ConfigPath, reason: str) -> None:
        self.path: ConfigPath = tuple(path)
        self.reason = reason
        where = format_path(self.path)
        super().__init__(f"{where}: {reason}" if where else reason)


def _cut(text: str) -> str:
    return text if len(text) <= EXCERPT_LIMIT else f"{text[:EXCERPT_LIMIT]}..."


def describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        text = repr(value)
        if len(text) > EXCERPT_LIMIT:
            text = f"{text[:EXCERPT_LIMIT]}... ({len(text):,} digits)"
        return f"{type(value).__name__} {text}"
    if isinstance(value, str):
        return f"string {excerpt(value)}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def mapping(value: object, path: ConfigPath, keys: Sequence[str]) -> Mapping[str, object]:
    """Check a mapping with only known keys; ``None`` (empty YAML section) is ``{}``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        what = "expected a mapping" if path else "the top level must be a mapping"
        raise ConfigError(path, f"{what}, got {describe(value)}")
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(path, f"key {_cut(repr(key))} is not a string")
        if key not in keys:
            if len(key) > EXCERPT_LIMIT:
                raise ConfigError(
                    path, f"unknown key {excerpt(key)}; known keys: {', '.join(keys)}"
                )
            hint = difflib.get_close_matches(key, keys, n=1)
            known = f"did you mean {hint[0]!r}?" if hint else "known keys: " + ", ".join(keys)
            raise ConfigError((*path, key), f"unknown key; {known}")
    return value


def sequence(value: object, path: ConfigPath, items: str) -> Sequence[object]:
    if isinstance(value, list):
        return value
    example = (
        f' (write ["{value}"])' if isinstance(value, str) and len(value) <= EXCERPT_LIMIT else ""
    )
    raise ConfigError(path, f"expected a list of {items}, got {describe(value)}{example}")


def boolean(value: object, path: ConfigPath) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigError(path, f"expected true or false, got {describe(value)}")


def choice(value: object, path: ConfigPath, choices: Sequence[str]) -> str:
    # YAML 1.1 reads unquoted off/no/false as False; `tls: off` must just work.
    if value is False and "off" in choices:
        return "off"
    if isinstance(value, str) and value in choices:
        return value
    listed = " or ".join(repr(c) for c in choices)
    raise ConfigError(path, f"expected one of {listed}, got {describe(value)}")


def integer(value: object, path: ConfigPath, low: int, high: int) -> int:
    """A whole number in ``low..high``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(path, f"expected a whole number, got {describe(value)}")
    if not low <= value <= high:
        shown = str(value) if value.bit_length() < 64 else "the number"
        raise ConfigError(path, f"{shown} is out of range {low:,}-{high:,}")
    return value


def seconds(value: object, path: ConfigPath, low: float, high: float) -> float:
    """A number of seconds in ``low..high`` (fractions allowed)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(path, f"expected a number of seconds, got {describe(value)}")
    number = float(value)
    if not low <= number <= high:  # NaN fails too
        raise ConfigError(path, f"{_cut(repr(value))} s is out of range {low:g}-{high:g} s")
    return number


def network(value: object, path: ConfigPath) -> IPv6Network:
    if not isinstance(value, str):
        raise ConfigError(path, f"expected a CIDR string such as '200::/7', got {describe(value)}")
    if "%" in value:
        raise ConfigError(path, f"{excerpt(value)}: zone index not allowed in a CIDR")
    try:
        network = ip_network(value, strict=False)
    except ValueError:
        raise ConfigError(path, f"{excerpt(value)} is not an IPv6 network (CIDR)") from None
    if not isinstance(network, IPv6Network):
        raise ConfigError(
            path,
            f"{excerpt(value)} is an IPv4 network; v6alt judges IPv6 addresses only "
            "(IPv4 reached through ::ffff:0:0/96 is never dialled)",
        )
    if IPv6Address(value.partition("/")[0]) != network.network_address:
        raise ConfigError(path, f"{excerpt(value)} has host bits set; did you mean '{network}'?")
    return network


def networks(value: object, path: ConfigPath) -> tuple[IPv6Network, ...]:
    networks = tuple(network(v, (*path, i)) for i, v in enumerate(sequence(value, path, "CIDRs")))
    no_duplicates(networks, path)
    return networks


def no_duplicates(networks: Sequence[IPv6Network], path: ConfigPath, key: str = "") -> None:
    first: dict[IPv6Network, int] = {}
    for i, network in enumerate(networks):
        if network in first:
            where = (*path, i, key) if key else (*path, i)
            earlier = format_path((*path, first[network]))
            raise ConfigError(where, f"'{network}' duplicates {earlier}")
        first[network] = i


_PORT_DIGITS: Final = frozenset("0123456789")


def endpoint(value: object, path: ConfigPath, *, default_port: int | None = None) -> Endpoint:
    """Parse ``host:port`` where host is an IP literal, IPv6 in brackets.

    Port 0 is accepted for listen addresses only (``default_port is None``):
    it lets the OS pick a free port, which tests rely on.
    """
    if not isinstance(value, str):
        raise ConfigError(path, f'expected a "host:port" string, got {describe(value)}')
    port_text: str | None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise ConfigError(path, f"{excerpt(value)}: unclosed '[' in IPv6 literal")
        host_text, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ConfigError(
                path, f"{excerpt(value)}: expected ':port' after ']', got {excerpt(rest)}"
            )
        port_text = rest[1:] if rest else None
        if "%" in host_text:
            raise ConfigError(path, f"{excerpt(value)}: zone index not supported")
        try:
            host = str(IPv6Address(host_text))
        except ValueError:
            raise ConfigError(
                path, f"{excerpt(value)}: {excerpt(host_text)} is not an IPv6 address"
            ) from None
    else:
        host_text, sep, port_text = value.rpartition(":")
        if not sep:
            host_text, port_text = value, None
        if ":" in host_text:
            raise ConfigError(
                path, f"{excerpt(value)}: an IPv6 address must be in brackets, e.g. '[::1]:5353'"
            )
        try:
            host = str(IPv4Address(host_text))
        except ValueError:
            raise ConfigError(
                path,
                f"{excerpt(value)}: host {excerpt(host_text)} is not an IP address "
                "(IPv6 in brackets)",
            ) from None
    if port_text is None:
        if default_port is None:
            raise ConfigError(path, f"{excerpt(value)} has no port; write host:port")
        return host, default_port
    if not port_text or not set(port_text) <= _PORT_DIGITS:
        raise ConfigError(path, f"{excerpt(value)}: port {excerpt(port_text)} is not a number")
    lowest = 0 if default_port is None else 1
    port = int(port_text) if len(port_text) <= 5 else 65536
    if not lowest <= port <= 65535:
        raise ConfigError(
            path,
            f"{excerpt(value)}: port {_cut(port_text)} is out of range {lowest}-65535",
        )
    return host, port


def format_endpoint(endpoint: Endpoint) -> str:
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
