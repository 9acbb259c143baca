"""``v6alt check local``: this host's Synapse module, sidecar, source address, listener."""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Callable
from ipaddress import IPv6Address, ip_address
from typing import Any

from v6alt.cli_common import UsageError
from v6alt.codec import encode
from v6alt.config import Config, ConfigError, parse_config
from v6alt.errors import V6AltNameError
from v6alt.hostinfo import (
    HostInfoError,
    RouteGet,
    ip_route_get,
    mesh_kind,
    read_if_inet6,
    survey,
)
from v6alt.names import ServerName, is_v6alt, parse_matrix_server_name
from v6alt.policy import Policy
from v6alt.yaml_file import read_yaml_file

from . import local_hints as lh
from .dns_client import TYPE_AAAA, DnsError, query
from .net import StepError, tcp_connect
from .options import Options
from .prosody_local import DEFAULT_LOOKUP_CONNECTIONS, check_prosody, validate_prosody_config
from .report import Report, Status, timed

__all__ = ["DEFAULT_HOMESERVER_CONFIG", "MODULE", "check_local"]

DEFAULT_HOMESERVER_CONFIG = "/etc/matrix-synapse/homeserver.yaml"
MODULE = "v6alt.synapse_module.V6AltFederation"
_PROBE = IPv6Address("200::1")  # fallback name for the sidecar DNS check


def check_local(
    options: Options,
    homeserver_config: str | None,
    sidecar_config: str | None,
    prosody_config: str | None = None,
) -> Report:
    """Check this host's setup.

    A file that cannot be read as YAML (missing, unreadable, binary, too
    large or too deeply nested, a syntax error) is bad input, not a finding:
    :class:`UsageError` (exit 2), before anything is checked.
    """
    path = homeserver_config
    if path is None and os.path.exists(DEFAULT_HOMESERVER_CONFIG):
        path = DEFAULT_HOMESERVER_CONFIG
    homeserver = None
    if path is not None:
        option = "--homeserver-config" if homeserver_config is not None else "homeserver config"
        homeserver = _read(option, path, unique_keys=False)
    sidecar = None
    if sidecar_config is not None:
        sidecar = _read("--sidecar-config", sidecar_config, unique_keys=True)
    if prosody_config is not None:
        validate_prosody_config(prosody_config)
    report = Report("local", "this host")
    server = _homeserver(report, options, path, homeserver)
    _sidecar(report, options, sidecar_config, sidecar)
    if prosody_config is not None:
        check_prosody(report, options, prosody_config, *_sidecar_lookup(sidecar))
    _source(report, server)
    return report


def _sidecar_lookup(data: object) -> tuple[str | None, int]:
    """The sidecar's lookup address as ``[HOST]:PORT`` (None for a config that does
    not parse; the defaults without a file) and its ``limits.lookup_connections``."""
    try:
        sidecar = parse_config(data).sidecar
    except ConfigError:
        return None, DEFAULT_LOOKUP_CONNECTIONS
    host, port = sidecar.lookup_listen
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return listen, sidecar.limits.lookup_connections


def _read(option: str, path: str, *, unique_keys: bool) -> object:
    try:
        # Synapse itself reads homeserver.yaml with PyYAML's safe_load, which
        # keeps the last of duplicate keys: so does this check.
        return read_yaml_file(path, unique_keys=unique_keys)
    except ConfigError as exc:
        raise UsageError(f"check local: {option} {exc}") from None


def _homeserver(
    report: Report, options: Options, path: str | None, data: object
) -> ServerName | None:
    if path is None:
        report.add_new(
            "homeserver.config",
            Status.SKIP,
            f"no {DEFAULT_HOMESERVER_CONFIG} (give --homeserver-config PATH)",
        )
        return None
    if not isinstance(data, dict):
        report.add_new(
            "homeserver.config", Status.FAIL, f"{path} is not a YAML mapping", lh.unreadable(path)
        )
        return None
    report.add_new("homeserver.config", Status.PASS, f"read {path}")
    report.data["homeserver_config"] = path
    _module(report, data)
    server = _server_name(report, data)
    _trusted_key_servers(report, data)
    _listeners(report, options, data, server)
    return server


def _module(report: Report, data: dict[str, Any]) -> Config | None:
    modules = data.get("modules") or []
    entries = [m for m in modules if isinstance(m, dict) and m.get("module") == MODULE]
    if not entries:
        report.add_new(
            "homeserver.module", Status.FAIL, f"{MODULE} is not in modules:", lh.module_missing()
        )
        return None
    try:
        config = parse_config(entries[0].get("config"))
    except ConfigError as exc:
        report.add_new(
            "homeserver.module", Status.FAIL, f"module config: {exc}", lh.module_config(str(exc))
        )
        return None
    report.add_new(
        "homeserver.module",
        Status.PASS,
        f"{MODULE} loaded, config valid (allow {', '.join(str(n) for n in config.ranges.allow)})",
    )
    return config


def _server_name(report: Report, data: dict[str, Any]) -> ServerName | None:
    text = data.get("server_name")
    if not isinstance(text, str):
        report.add_new(
            "homeserver.server_name",
            Status.FAIL,
            "server_name is missing",
            lh.server_name_missing(),
        )
        return None
    try:
        name = parse_matrix_server_name(text)
    except V6AltNameError as exc:
        report.add_new(
            "homeserver.server_name",
            Status.FAIL,
            f"server_name {text!r}: {exc}",
            lh.server_name_missing(),
        )
        return None
    if not name.is_v6alt:
        report.add_new(
            "homeserver.server_name",
            Status.INFO,
            f"server_name {text} is not a v6.alt name (found by DNS)",
            lh.dns_server_name(text),
        )
        return name
    assert isinstance(name.address, IPv6Address)
    canonical = encode(name.address)
    if not name.canonical:
        report.add_new(
            "homeserver.server_name",
            Status.FAIL,
            f"server_name {text} is not the canonical spelling {canonical}",
            lh.server_name_canonical(text, canonical),
        )
        return name
    report.add_new("homeserver.server_name", Status.PASS, f"server_name {text} is {name.address}")
    return name


def _trusted_key_servers(report: Report, data: dict[str, Any]) -> None:
    if "trusted_key_servers" not in data:
        report.add_new(
            "homeserver.trusted_key_servers",
            Status.WARN,
            "not set: Synapse asks matrix.org for keys first",
            lh.key_servers(),
        )
        return
    servers = data.get("trusted_key_servers") or []
    names = [s.get("server_name") for s in servers if isinstance(s, dict)]
    foreign = [n for n in names if not (isinstance(n, str) and is_v6alt(n.rsplit(":", 1)[0]))]
    if foreign:
        report.add_new(
            "homeserver.trusted_key_servers",
            Status.WARN,
            f"names {', '.join(map(str, foreign))}, not reachable from a mesh-only host",
            lh.key_servers(),
        )
    else:
        report.add_new(
            "homeserver.trusted_key_servers",
            Status.PASS,
            "empty: keys come from each server"
            if not names
            else f"mesh notaries only: {', '.join(map(str, names))}",
        )


def _listeners(
    report: Report, options: Options, data: dict[str, Any], server: ServerName | None
) -> None:
    if server is None or not isinstance(server.address, IPv6Address):
        return
    address, port = server.address, server.port or 8448
    found = None
    for listener in data.get("listeners") or []:
        if not isinstance(listener, dict) or listener.get("port") != port:
            continue
        names = [
            n
            for r in listener.get("resources") or []
            if isinstance(r, dict)
            for n in r.get("names") or []
        ]
        if "federation" not in names:
            continue
        binds = listener.get("bind_addresses") or ["::", "0.0.0.0"]
        if any(_covers(b, address) for b in binds):
            found = listener
    if found is None:
        report.add_new(
            "homeserver.listener",
            Status.FAIL,
            f"no federation listener on [{address}]:{port}",
            lh.listener(address, port),
        )
        return
    report.add_new(
        "homeserver.listener",
        Status.PASS,
        f"federation listener on port {port}, bind_addresses "
        f"{found.get('bind_addresses') or 'all'}, tls {bool(found.get('tls'))}",
    )
    options.progress.say(f"TCP [{address}]:{port} (the federation listener)")
    with timed() as took:
        try:
            tcp_connect(address, port, options.timeout).close()
            error = None
        except StepError as exc:
            error = str(exc)
    if error is None:
        report.add_new(
            "homeserver.listening", Status.PASS, f"[{address}]:{port} accepts", elapsed_ms=took[0]
        )
    else:
        report.add_new(
            "homeserver.listening",
            Status.FAIL,
            f"[{address}]:{port}: {error}",
            lh.not_listening(address, port, error),
            elapsed_ms=took[0],
        )


def _covers(bind: object, address: IPv6Address) -> bool:
    if bind == "::":
        return True
    try:
        return isinstance(bind, str) and ip_address(bind) == address
    except ValueError:
        return False


def _sidecar(report: Report, options: Options, path: str | None, data: object) -> None:
    try:
        config = parse_config(data)
    except ConfigError as exc:
        report.add_new("sidecar.config", Status.FAIL, f"{path}: {exc}", lh.sidecar_config(str(exc)))
        return
    # Without a config file a missing sidecar is only a warning: Synapse needs none.
    missing = Status.FAIL if path is not None else Status.WARN
    host, port = config.sidecar.lookup_listen
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    options.progress.say(f"GET http://{where}/v1/health")
    with timed() as took:
        try:
            connection = http.client.HTTPConnection(host, port, timeout=options.timeout)
            connection.request("GET", "/v1/health")
            response = connection.getresponse()
            body = json.loads(response.read().decode("utf-8"))
            connection.close()
            error = (
                None
                if response.status == 200 and body.get("ok") is True
                else (f"HTTP {response.status}: {body}")
            )
        except (OSError, ValueError, http.client.HTTPException) as exc:
            body, error = None, (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)
    if error is None:
        report.add_new(
            "sidecar.lookup",
            Status.PASS,
            f"lookup service {where} healthy (v6alt {body.get('version')})",
            elapsed_ms=took[0],
        )
    else:
        report.add_new(
            "sidecar.lookup",
            missing,
            f"lookup service {where}: {error}",
            lh.sidecar_down(path, where),
            elapsed_ms=took[0],
        )
    dns_host, dns_port = config.sidecar.dns_listen
    probe = _probe(config)
    name = encode(probe)
    options.progress.say(f"DNS AAAA {name} via {dns_host} port {dns_port}")
    with timed() as took:
        try:
            answer = query(name, TYPE_AAAA, (dns_host, dns_port), options.timeout)
            problem = (
                None
                if answer.addresses == [probe]
                else (f"{answer.rcode_name}, {[str(a) for a in answer.addresses]}")
            )
        except DnsError as exc:
            problem = str(exc)
    if problem is None:
        report.add_new(
            "sidecar.dns",
            Status.PASS,
            f"DNS [{dns_host}]:{dns_port} answers {name} AAAA {probe}",
            elapsed_ms=took[0],
        )
    else:
        report.add_new(
            "sidecar.dns",
            missing,
            f"DNS [{dns_host}]:{dns_port}: {problem}",
            lh.sidecar_down(path, f"[{dns_host}]:{dns_port}"),
            elapsed_ms=took[0],
        )


def _probe(config: Config) -> IPv6Address:
    """An address the sidecar's policy allows, so its name must get an AAAA answer."""
    policy = Policy(config)
    for network in config.ranges.allow:
        candidate = network.network_address + 1
        if policy.check_address(candidate)[0]:
            return candidate
    return _PROBE


def _source(
    report: Report,
    server: ServerName | None,
    *,
    read_addresses: Callable[[], str] = read_if_inet6,
    route_get: RouteGet = ip_route_get,
) -> None:
    expected = server.ipv6 if server is not None and server.is_v6alt else None
    if expected is not None and mesh_kind(expected) is None:
        expected = None
    try:
        host = survey(read_addresses(), route_get, server_address=expected)
    except HostInfoError as exc:
        report.add_new("source", Status.FAIL, f"cannot survey addresses: {exc}", lh.no_mesh())
        return
    report.data["addresses"] = [str(a.address) for a in host.addresses]
    if not host.addresses:
        report.add_new(
            "source.addresses", Status.FAIL, "this host has no mesh address", lh.no_mesh()
        )
    else:
        report.add_new(
            "source.addresses",
            Status.PASS,
            "mesh addresses: " + ", ".join(f"{a.address} ({a.interface})" for a in host.addresses),
        )
    for check in host.sources:
        summary = (
            f"towards {check.network}: source {check.source}"
            if check.source
            else f"towards {check.network}: no route ({check.no_route_reason})"
        )
        if check.never_dial is not None:
            summary += f", which peers never dial ({check.never_dial})"
        if check.warning is None:
            report.add_new("source.kernel", Status.PASS if check.source else Status.INFO, summary)
        else:
            status = (
                Status.FAIL
                if check.never_dial is not None
                or (expected is not None and check.kind is mesh_kind(expected))
                else Status.WARN
            )
            report.add_new("source.kernel", status, summary, check.warning)
    if expected is not None and expected not in {a.address for a in host.addresses}:
        report.add_new(
            "source.server_name",
            Status.FAIL,
            f"{encode(expected)} is {expected}, not an address of this host",
            lh.not_local(expected),
        )
    own = host.own_address
    if own is None:
        return
    for warning in host.trust_warnings:
        # A name that works but proves little: a warning, as in `v6alt whoami`.
        report.add_new(
            "source.trust",
            Status.WARN,
            f"{encode(own)} is {own}, in a routed Yggdrasil subnet: peers pin its keys",
            warning,
        )
