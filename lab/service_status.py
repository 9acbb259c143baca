"""The servers a lab runs on its hosts, as ``v6alt lab status`` shows them.

Every server is a :class:`~.state.ServiceRecord` in the state file (host,
kind, pid and start time, its config path). Whether it still runs is the
same check ``down`` makes before signalling it: the pid must still have the
recorded start time and the config path in its command line, so a recycled
pid is never taken for the server.

What to connect to is read from the server's own config file (the record's
``marker``), so it is what the server was told to serve, whoever started it;
the lab needs no import of the servers' packages for that. Known kinds:
``sidecar`` (a ``v6alt sidecar`` YAML file), ``prosody`` (prosody.cfg.lua)
and ``synapse`` (homeserver.yaml), and their variants named ``<kind>-<variant>``
(``synapse-stock``); any other kind is shown without endpoints.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

from v6alt.config import ConfigError, parse_config
from v6alt.config_fields import format_endpoint

from .state import ServiceRecord

__all__ = ["ENDPOINT_LABELS", "ServiceStatus", "describe_endpoints", "service_status"]

# Prosody's own default when the config sets no c2s_ports (the lab's does not).
PROSODY_C2S_PORT: Final = 5222
# A config file larger than this is not one the lab wrote; it is not read.
MAX_CONFIG_BYTES: Final = 1 << 20

#: Endpoint keys (``--json``) and how the human table names them, in display order.
ENDPOINT_LABELS: Final[dict[str, str]] = {
    "xmpp_domain": "XMPP",
    "muc_domain": "MUC",
    "c2s": "c2s",
    "server_name": "Matrix",
    "client_socket": "client API unix socket",
    "federation": "federation",
    "dns": "DNS",
    "lookup": "lookup",
}


@dataclass(frozen=True)
class ServiceStatus:
    """One recorded server of a host, checked live; ``endpoints`` keys are ENDPOINT_LABELS'."""

    kind: str
    pid: int | None
    running: bool
    config: str
    tree: str | None
    endpoints: dict[str, str] = field(default_factory=dict)

    @property
    def problem(self) -> str | None:
        if self.running:
            return None
        if self.pid is None:
            return f"{self.kind} was recorded but never started"
        return f"{self.kind} (pid {self.pid}) is not running"


def describe_endpoints(endpoints: dict[str, str], ygg_address: str | None = None) -> str:
    """``XMPP a.v6.alt, MUC groups.a.v6.alt, c2s port 5222`` (``-`` when none are known).

    An endpoint on the host's own Yggdrasil address is shortened to its port:
    the address is in the host table, one line up.
    """
    keys = [k for k in ENDPOINT_LABELS if k in endpoints]
    keys += sorted(k for k in endpoints if k not in ENDPOINT_LABELS)
    on_host = f"[{ygg_address}]:" if ygg_address else None

    def value(key: str) -> str:
        text = endpoints[key]
        if on_host and text.startswith(on_host) and text[len(on_host) :].isdigit():
            return f"port {text[len(on_host) :]}"
        return text

    return ", ".join(f"{ENDPOINT_LABELS.get(k, k)} {value(k)}" for k in keys) or "-"


def _read_config(path: str) -> str | None:
    """The text of a regular file of sane size; None for anything else.

    The trees of XMPP sites belong to the prosody user, so a file there may
    have been replaced; never follow a symlink, never block on a FIFO.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as stream:
        info = os.fstat(stream.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_CONFIG_BYTES:
            return None
        data = stream.read(MAX_CONFIG_BYTES + 1)
    try:
        return data.decode()
    except UnicodeDecodeError:
        return None


def _load_yaml(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def _sidecar_endpoints(text: str, ygg_address: str | None) -> dict[str, str]:
    try:
        settings = parse_config(_load_yaml(text) or {}).sidecar
    except ConfigError:
        return {}
    return {
        "dns": format_endpoint(settings.dns_listen),
        "lookup": format_endpoint(settings.lookup_listen),
    }


def _lua_lines(text: str) -> list[str]:
    return [line.split("--", 1)[0].strip() for line in text.splitlines()]


def _prosody_endpoints(text: str, ygg_address: str | None) -> dict[str, str]:
    endpoints: dict[str, str] = {}
    port = PROSODY_C2S_PORT
    for line in _lua_lines(text):
        if match := re.fullmatch(r'VirtualHost\s+"([^"]+)"', line):
            endpoints.setdefault("xmpp_domain", match[1])
        elif match := re.fullmatch(r'Component\s+"([^"]+)"\s+"muc"', line):
            endpoints.setdefault("muc_domain", match[1])
        elif match := re.fullmatch(r"c2s_ports\s*=\s*\{\s*(\d+)\b.*", line):
            port = int(match[1])
    if endpoints and ygg_address:
        # No c2s_interfaces in the config: Prosody listens on every address of the namespace.
        endpoints["c2s"] = f"[{ygg_address}]:{port}"
    return endpoints


def _resource_names(listener: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for resource in listener.get("resources") or []:
        if isinstance(resource, dict) and isinstance(resource.get("names"), list):
            names.update(str(n) for n in resource["names"])
    return names


def _synapse_endpoints(text: str, ygg_address: str | None) -> dict[str, str]:
    config = _load_yaml(text)
    if not isinstance(config, dict):
        return {}
    endpoints: dict[str, str] = {}
    if isinstance(config.get("server_name"), str):
        endpoints["server_name"] = config["server_name"]
    for listener in config.get("listeners") or []:
        if not isinstance(listener, dict):
            continue
        names = _resource_names(listener)
        if "client" in names and isinstance(listener.get("path"), str):
            endpoints.setdefault("client_socket", listener["path"])
        if "federation" in names and isinstance(listener.get("port"), int):
            binds = listener.get("bind_addresses") or ["::"]
            endpoints.setdefault("federation", format_endpoint((str(binds[0]), listener["port"])))
    return endpoints


_ENDPOINT_READERS: Final[dict[str, Callable[[str, str | None], dict[str, str]]]] = {
    "sidecar": _sidecar_endpoints,
    "prosody": _prosody_endpoints,
    "synapse": _synapse_endpoints,
}


def service_status(record: ServiceRecord, ygg_address: str | None) -> ServiceStatus:
    """Check one recorded server; ``ygg_address`` is its host's (for listeners on every address)."""
    running = record.running()
    # A variant of a known server (``synapse-stock``) has that server's config format.
    reader = _ENDPOINT_READERS.get(record.kind) or _ENDPOINT_READERS.get(
        record.kind.partition("-")[0]
    )
    text = _read_config(record.marker) if reader else None
    found = reader(text, ygg_address) if reader and text is not None else {}
    order = list(ENDPOINT_LABELS)
    return ServiceStatus(
        kind=record.kind,
        pid=record.pid,
        running=running,
        config=record.marker,
        tree=record.tree,
        endpoints={k: found[k] for k in sorted(found, key=order.index)},
    )
