"""Matrix server discovery (spec: server-server API, "Resolving server names").

1. An IP literal or a v6.alt name: dial it (v6.alt decoded, never looked up).
2. A DNS name with a port: its A/AAAA at that port.
3. Otherwise ``https://<name>/.well-known/matrix/server`` may delegate to
   another ``host[:port]``, handled by rules 1-2 or continued below.
4. SRV ``_matrix-fed._tcp`` then ``_matrix._tcp``; else A/AAAA at 8448.
"""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from v6alt.errors import V6AltNameError
from v6alt.names import ServerName, parse_matrix_server_name

from . import hints
from .net import StepError, ca_verify, http_get, tcp_connect, tls_handshake
from .options import Options
from .policy_view import judge_address
from .report import Report, Status, timed
from .resolve import Target, lookup_addresses, lookup_srv, lookups_failed, v6alt_target

__all__ = ["DEFAULT_PORT", "discover"]

DEFAULT_PORT = 8448
WELL_KNOWN = "/.well-known/matrix/server"


def _text(host: str, port: int | None) -> str:
    return f"{host}:{port}" if port is not None else host


def discover(report: Report, options: Options, name: ServerName) -> list[Target]:
    """The targets to connect to for ``name``; every step is a check in ``report``."""
    resolution: dict[str, Any] = {"server_name": str(name), "well_known": None, "srv": None}
    report.data["resolution"] = resolution
    if name.address is not None:
        target = v6alt_target(
            report, name, name.port or DEFAULT_PORT, _text(name.host, name.port), "matrix"
        )
        return [target] if target is not None else []
    if name.port is not None:
        return _addresses(report, options, name.host, name.port, _text(name.host, name.port))
    delegated = _well_known(report, options, name.host, resolution)
    if delegated is not None:
        if delegated.address is not None:
            port = delegated.port or DEFAULT_PORT
            target = v6alt_target(
                report, delegated, port, _text(delegated.host, delegated.port), "matrix"
            )
            return [target] if target is not None else []
        if delegated.port is not None:
            return _addresses(report, options, delegated.host, delegated.port, str(delegated))
        name = delegated
    return _srv_or_default(report, options, name.host, resolution)


def _srv_or_default(
    report: Report, options: Options, host: str, resolution: dict[str, Any]
) -> list[Target]:
    for service in ("_matrix-fed._tcp", "_matrix._tcp"):
        answer = lookup_srv(report, options, f"{service}.{host}")
        if answer is not None and answer.srv:
            resolution["srv"] = {
                "name": f"{service}.{host}",
                "records": [r.__dict__ for r in answer.srv],
            }
            targets: list[Target] = []
            for record in answer.srv:
                if record.target in ("", "."):
                    continue
                for address in lookup_addresses(report, options, record.target):
                    targets.append(Target(address, record.port, host, host, f"srv {service}"))
            if not targets:
                report.add_new(
                    "resolve.addresses",
                    Status.FAIL,
                    f"SRV targets of {host} have no address",
                    hints.no_addresses(host),
                )
            return targets
    return _addresses(report, options, host, DEFAULT_PORT, host)


def _addresses(
    report: Report, options: Options, host: str, port: int, host_header: str
) -> list[Target]:
    addresses = lookup_addresses(report, options, host)
    if not addresses and not lookups_failed(options, host):
        report.add_new(
            "resolve.addresses",
            Status.FAIL,
            f"{host} has no AAAA or A record",
            hints.no_addresses(host),
        )
    return [Target(a, port, host, host_header, "dns") for a in addresses]


def _well_known(
    report: Report, options: Options, host: str, resolution: dict[str, Any]
) -> ServerName | None:
    """The delegated server name, or None (no .well-known, or a broken one)."""
    record: dict[str, Any] = {"url": f"https://{host}{WELL_KNOWN}", "result": None, "error": None}
    resolution["well_known"] = record
    addresses = lookup_addresses(report, options, host)
    if not addresses:
        record["error"] = "no address"
        report.add_new("well_known", Status.INFO, f"no .well-known: {host} has no address")
        return None
    problem: str | None = None
    for address in addresses:
        verdict = judge_address(options.policy, address, None)
        if not verdict.allowed:
            problem = f"not fetched from {address}: {verdict.rule}"
            continue
        with timed() as took:
            outcome = _fetch(options, address, host)
        if isinstance(outcome, str):
            problem = outcome
            continue
        status, body = outcome
        return _judge(report, host, status, body, took[0], record)
    record["error"] = problem
    report.add_new("well_known", Status.INFO, f"no .well-known ({problem}); peers fall back")
    return None


def _fetch(
    options: Options, address: IPv4Address | IPv6Address, host: str
) -> tuple[int, bytes] | str:
    where = f"[{address}]:443" if address.version == 6 else f"{address}:443"
    options.progress.say(f"GET https://{host}{WELL_KNOWN} at {where}")
    try:
        sock = tcp_connect(address, 443, options.timeout)
    except StepError as exc:
        return f"{where}: {exc}"
    invalid = None
    try:
        tls, _info = tls_handshake(sock, host, options.timeout)
        invalid = ca_verify(address, 443, host, options.timeout, options.cafile)
        answer = http_get(tls, host, WELL_KNOWN, options.timeout)
    except StepError as exc:
        return f"{where}: {exc}"
    if invalid is not None:
        return -1, invalid.encode()
    return answer.status, answer.body


def _judge(
    report: Report, host: str, status: int, body: bytes, elapsed: float, record: dict[str, Any]
) -> ServerName | None:
    record["status"] = status
    if status == -1:
        problem = f"has an invalid certificate ({body.decode()})"
    elif status == 404:
        report.add_new(
            "well_known",
            Status.INFO,
            f"no .well-known (404): {host} is not delegated",
            elapsed_ms=elapsed,
        )
        return None
    elif status != 200:
        problem = f"answers HTTP {status}"
    else:
        delegated, problem = _parse(body)
        if delegated is not None:
            record["result"] = {"m.server": str(delegated)}
            report.add_new(
                "well_known",
                Status.PASS,
                f"{host} delegates to {delegated}",
                elapsed_ms=elapsed,
            )
            return delegated
    record["error"] = problem
    report.add_new(
        "well_known",
        Status.FAIL,
        f".well-known {problem}; peers ignore it",
        hints.well_known_broken(host, problem),
        elapsed_ms=elapsed,
    )
    return None


def _parse(body: bytes) -> tuple[ServerName | None, str]:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return None, f"is not JSON ({exc})"
    if not isinstance(data, dict) or not isinstance(data.get("m.server"), str):
        return None, 'has no "m.server" string'
    try:
        delegated = parse_matrix_server_name(data["m.server"])
    except V6AltNameError as exc:
        return None, f'has a bad "m.server" ({exc})'
    return delegated, ""
