"""Matrix server discovery (spec: server-server API, "Resolving server names").

1. An IP literal or a v6.alt name: dial it (v6.alt decoded, never looked up).
2. A DNS name with a port: its A/AAAA at that port.
3. Otherwise ``https://<name>/.well-known/matrix/server`` may delegate to
   another ``host[:port]``, handled by rules 1-2 or continued below. The
   request follows 30x redirects (the spec: "follows 30x redirects, being
   careful to avoid redirect loops"; the codes and the hop limit are
   MSC2499's: 301, 302, 303, 307 and 308, up to 30), each hop a check.
4. SRV ``_matrix-fed._tcp`` then ``_matrix._tcp``; else A/AAAA at 8448.
"""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any
from urllib.parse import urljoin, urlsplit

from v6alt.errors import V6AltNameError
from v6alt.names import ServerName, is_v6alt, parse_matrix_server_name

from . import hints
from .net import StepError, ca_verify, http_get, tcp_connect, tls_handshake
from .options import Options
from .policy_view import judge_address
from .report import Report, Status, timed
from .resolve import Target, lookup_addresses, lookup_srv, lookups_failed, v6alt_target

__all__ = ["DEFAULT_PORT", "discover"]

DEFAULT_PORT = 8448
WELL_KNOWN = "/.well-known/matrix/server"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 30


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
        if is_v6alt(delegated.host):
            report.add_new(
                "well_known.v6alt",
                Status.INFO,
                f"{name.host} delegates to the v6.alt name {delegated}: only peers with "
                "v6alt reach it (a stock Synapse fails with 'certificate verify failed')",
                hints.delegated_to_v6alt(name.host, str(delegated), "well-known"),
            )
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
                if is_v6alt(record.target):
                    targets += _v6alt_srv_target(report, host, service, record.target, record.port)
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


def _v6alt_srv_target(
    report: Report, host: str, service: str, target: str, port: int
) -> list[Target]:
    """An SRV target that is a v6.alt name: decoded (never looked up), and said so."""
    try:
        decoded = parse_matrix_server_name(target.rstrip("."))
    except V6AltNameError as exc:
        report.add_new(
            "resolve.srv_v6alt",
            Status.FAIL,
            f"SRV {service}.{host} points at {target[:64]!r}, not a valid v6.alt name ({exc})",
            hints.delegated_to_v6alt(host, target[:64], "srv"),
        )
        return []
    assert decoded.address is not None
    report.add_new(
        "resolve.srv_v6alt",
        Status.INFO,
        f"SRV {service}.{host} points at the v6.alt name {decoded.host} ({decoded.address}, "
        f"decoded, not looked up): only peers with v6alt reach it",
        hints.delegated_to_v6alt(host, decoded.host, "srv"),
        address=str(decoded.address),
    )
    return [Target(decoded.address, port, host, host, f"srv {service} (v6.alt target)")]


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
    url = f"https://{host}{WELL_KNOWN}"
    record: dict[str, Any] = {"url": url, "result": None, "error": None, "redirects": []}
    resolution["well_known"] = record
    seen = {url}
    while True:
        fetched = _get(report, options, url, record)
        if fetched is None:
            return None
        status, body, location, elapsed = fetched
        if status not in REDIRECT_STATUSES:
            return _judge(report, host, status, body, elapsed, record)
        hops = record["redirects"]
        problem = _next_hop(url, status, location)
        if problem is None and location is not None:
            following = urljoin(url, location)
            hops.append({"status": status, "from": url, "to": following})
            report.add_new(
                "well_known.redirect",
                Status.INFO,
                f"hop {len(hops)}: {url} answers {status}, to {following}",
                elapsed_ms=elapsed,
            )
            if following in seen:
                problem = f"redirects in a loop (back to {following})"
            elif len(hops) >= MAX_REDIRECTS:
                problem = f"redirects more than {MAX_REDIRECTS} times"
            else:
                seen.add(following)
                url = following
                continue
        record["error"] = problem
        report.add_new(
            "well_known",
            Status.FAIL,
            f".well-known {problem}; peers ignore it",
            hints.well_known_redirect(host, str(problem)),
            elapsed_ms=elapsed,
        )
        return None


def _next_hop(url: str, status: int, location: str | None) -> str | None:
    """What is wrong with a redirect's Location, or None."""
    if not location:
        return f"answers HTTP {status} at {url} without a Location"
    following = urlsplit(urljoin(url, location))
    if following.scheme != "https" or not following.hostname:
        return f"redirects from {url} to {location[:64]!r}, which is not an https:// URL"
    return None


def _get(
    report: Report, options: Options, url: str, record: dict[str, Any]
) -> tuple[int, bytes, str | None, float] | None:
    """GET ``url`` at one of its host's allowed addresses; None (and a check) if none answers."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or 443
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    after = "" if not record["redirects"] else f" at {url}"
    addresses: list[IPv4Address | IPv6Address]
    try:
        addresses = [ip_address(host)]
    except ValueError:
        addresses = lookup_addresses(report, options, host)
    if not addresses:
        record["error"] = "no address"
        report.add_new("well_known", Status.INFO, f"no .well-known{after}: {host} has no address")
        return None
    problem: str | None = None
    for address in addresses:
        verdict = judge_address(options.policy, address, None)
        if not verdict.allowed:
            problem = f"not fetched from {address}: {verdict.rule}"
            continue
        with timed() as took:
            outcome = _fetch(options, address, host, port, path)
        if isinstance(outcome, str):
            problem = outcome
            continue
        status, body, location = outcome
        return status, body, location, took[0]
    record["error"] = problem
    report.add_new("well_known", Status.INFO, f"no .well-known{after} ({problem}); peers fall back")
    return None


def _fetch(
    options: Options, address: IPv4Address | IPv6Address, host: str, port: int, path: str
) -> tuple[int, bytes, str | None] | str:
    where = f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
    host_header = host if port == 443 else f"{host}:{port}"
    options.progress.say(f"GET https://{host_header}{path} at {where}")
    try:
        sock = tcp_connect(address, port, options.timeout)
    except StepError as exc:
        return f"{where}: {exc}"
    invalid = None
    try:
        tls, _info = tls_handshake(sock, host, options.timeout)
        invalid = ca_verify(address, port, host, options.timeout, options.cafile)
        answer = http_get(tls, host_header, path, options.timeout)
    except StepError as exc:
        return f"{where}: {exc}"
    if invalid is not None:
        return -1, invalid.encode(), None
    return answer.status, answer.body, answer.location


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
