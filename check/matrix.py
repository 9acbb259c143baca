"""``v6alt check matrix NAME``: discovery, policy, TCP, TLS, version and keys."""

from __future__ import annotations

import time
from typing import Any

from v6alt.names import ServerName, parse_matrix_server_name

from . import hints
from .canonical_json import verify_self_signatures
from .matrix_discovery import discover
from .net import StepError, ca_verify, http_get, tcp_connect, tls_handshake
from .options import Options
from .policy_view import AddressVerdict, judge_address, report_refused
from .report import Report, Status, timed
from .resolve import Target
from .tls_checks import judge_tls

__all__ = ["check_matrix"]

VERSION_PATH = "/_matrix/federation/v1/version"
KEYS_PATH = "/_matrix/key/v2/server"


def check_matrix(server_name: str, options: Options) -> Report:
    """Run every check for ``server_name``; raises V6AltNameError when it is malformed."""
    name = parse_matrix_server_name(server_name)
    report = Report("matrix", server_name)
    report.data["connections"] = {}
    report.data["connection_errors"] = {}
    for target in discover(report, options, name):
        _check_target(report, options, name, target)
    if not report.data["connections"] and report.ok:
        report.add_new(
            "resolve.addresses",
            Status.FAIL,
            f"no address to connect to for {name}",
            hints.no_addresses(str(name)),
        )
    return report


def _open(options: Options, target: Target, tls: bool) -> Any:
    sock = tcp_connect(target.address, target.port, options.timeout)
    if not tls:
        return sock
    return tls_handshake(sock, target.sni, options.timeout)[0]


def _check_target(report: Report, options: Options, name: ServerName, target: Target) -> None:
    where = target.label
    # A .well-known delegation to a v6.alt name binds trust to that name's address.
    bound = parse_matrix_server_name(target.sni) if target.via == "v6.alt" and target.sni else name
    verdict = judge_address(options.policy, target.address, bound)
    record: dict[str, Any] = {
        "address": str(target.address),
        "port": target.port,
        "via": target.via,
        "policy": verdict.as_json(),
    }
    if not _policy_checks(report, target, verdict, str(name)):
        report.data["connection_errors"][where] = {"message": verdict.rule}
        return
    options.progress.say(f"TCP {where} (timeout {options.timeout:g} s)")
    with timed() as took:
        try:
            sock = tcp_connect(target.address, target.port, options.timeout)
        except StepError as exc:
            sock, error = None, str(exc)
    if sock is None:
        report.add_new(
            "tcp",
            Status.FAIL,
            f"connect failed: {error}",
            hints.tcp_failed(target.address, target.port, error),
            target=where,
            elapsed_ms=took[0],
        )
        report.data["connection_errors"][where] = {"message": error}
        return
    report.add_new("tcp", Status.PASS, "connected", target=where, elapsed_ms=took[0])
    report.data["connections"][where] = record
    use_tls = verdict.tls_required
    if use_tls:
        options.progress.say(f"TLS {where} (SNI {target.sni or 'none'})")
        try:
            with timed() as took:
                tls, info = tls_handshake(sock, target.sni, options.timeout)
        except StepError as exc:
            report.add_new(
                "tls", Status.FAIL, str(exc), hints.tls_failed(where, str(exc)), target=where
            )
            _skip_http(report, where, "no TLS")
            return
        tls.close()

        def ca_check() -> str | None:
            host = target.sni or str(target.address)
            return ca_verify(target.address, target.port, host, options.timeout, options.cafile)

        judge_tls(report, target, info, verdict, ca_check, record)
    else:
        sock.close()
        report.add_new(
            "tls",
            Status.INFO,
            f"plain HTTP: secure range {verdict.secure_range} has tls: off",
            target=where,
        )
    _version(report, options, target, use_tls, record)
    _keys(report, options, name, target, use_tls, record)


def _policy_checks(report: Report, target: Target, verdict: AddressVerdict, name: str) -> bool:
    where = target.label
    if report_refused(report, target, verdict, name):
        return False
    extra = f", secure range {verdict.secure_range}" if verdict.secure_range else ""
    report.add_new(
        "policy",
        Status.PASS,
        f"{verdict.rule}; trust {verdict.trust}, TLS "
        f"{'required' if verdict.tls_required else 'off'}{extra}",
        target=where,
    )
    if verdict.synapse_blocklist is not None:
        report.add_new(
            "policy.synapse_blocklist",
            Status.WARN,
            f"{target.address} is in Synapse's default blocklist ({verdict.synapse_blocklist})",
            hints.synapse_blocklist(
                target.address, verdict.synapse_blocklist, verdict.synapse_allowlist_entry
            ),
            target=where,
        )
    return True


def _skip_http(report: Report, where: str, why: str) -> None:
    for id in ("version", "keys"):
        report.add_new(id, Status.SKIP, f"not checked: {why}", target=where)


def _get_json(
    report: Report, options: Options, target: Target, tls: bool, path: str, id: str
) -> Any:
    options.progress.say(f"GET {path} at {target.label} (Host {target.host_header})")
    with timed() as took:
        try:
            answer = http_get(
                _open(options, target, tls), target.host_header, path, options.timeout
            )
            if answer.status != 200:
                raise StepError(f"answers HTTP {answer.status} {answer.reason}")
            data = answer.json()
        except StepError as exc:
            problem = str(exc)
            data = None
    if data is None:
        report.add_new(
            id,
            Status.FAIL,
            f"{path} {problem}",
            hints.http_failed(path, problem),
            target=target.label,
            elapsed_ms=took[0],
        )
    return data, took[0]


def _version(
    report: Report, options: Options, target: Target, tls: bool, record: dict[str, Any]
) -> None:
    data, took = _get_json(report, options, target, tls, VERSION_PATH, "version")
    if data is None:
        record["version"] = {"error": report.checks[-1].summary}
        return
    server = data.get("server") if isinstance(data, dict) else None
    if not isinstance(server, dict):
        record["version"] = {"error": "no 'server' object"}
        report.add_new(
            "version",
            Status.FAIL,
            f"{VERSION_PATH} has no 'server' object",
            hints.http_failed(VERSION_PATH, "has no 'server' object"),
            target=target.label,
            elapsed_ms=took,
        )
        return
    record["version"] = {"name": server.get("name"), "version": server.get("version")}
    report.add_new(
        "version",
        Status.PASS,
        f"{server.get('name')} {server.get('version')}",
        target=target.label,
        elapsed_ms=took,
    )


def _keys(
    report: Report,
    options: Options,
    name: ServerName,
    target: Target,
    tls: bool,
    record: dict[str, Any],
) -> None:
    data, took = _get_json(report, options, target, tls, KEYS_PATH, "keys")
    if not isinstance(data, dict):
        if data is not None:
            report.add_new(
                "keys",
                Status.FAIL,
                f"{KEYS_PATH} is not a JSON object",
                hints.http_failed(KEYS_PATH, "is not a JSON object"),
                target=target.label,
            )
        return
    where, expected = target.label, str(name)
    got = data.get("server_name")
    now_ms = int(time.time() * 1000)
    valid_until = data.get("valid_until_ts")
    signatures = verify_self_signatures(data, expected)
    checks = {
        "matching_server_name": got == expected,
        "future_valid_until_ts": isinstance(valid_until, int) and valid_until > now_ms,
        "has_ed25519_key": any(k.startswith("ed25519:") for k in data.get("verify_keys") or {}),
        "all_ed25519_checks_ok": all(s["valid"] for s in signatures.values()),
        "ed25519_checks": signatures,
    }
    record["keys"] = {"document": data, "checks": checks}
    report.add_new("keys", Status.PASS, f"{KEYS_PATH} answered", target=where, elapsed_ms=took)
    if checks["matching_server_name"]:
        report.add_new("keys.server_name", Status.PASS, f"server_name is {expected}", target=where)
    else:
        report.add_new(
            "keys.server_name",
            Status.FAIL,
            f"server_name is {got!r}, expected {expected!r}",
            hints.key_server_name(expected, got),
            target=where,
        )
    if checks["future_valid_until_ts"]:
        assert isinstance(valid_until, int)
        days = (valid_until - now_ms) / 86_400_000
        report.add_new(
            "keys.valid_until", Status.PASS, f"valid_until_ts in {days:.1f} days", target=where
        )
    else:
        report.add_new(
            "keys.valid_until",
            Status.FAIL,
            f"valid_until_ts {valid_until!r} is not in the future",
            hints.key_valid_until(expected),
            target=where,
        )
    bad = [f"{k}: {v['error']}" for k, v in signatures.items() if not v["valid"]]
    unchecked = [v["error"] for v in signatures.values() if v.get("unchecked")]
    if unchecked:
        # This install cannot check ed25519 (no `cryptography`): say which extra
        # is missing instead of blaming the peer.
        report.add_new("keys.signature", Status.SKIP, unchecked[0], target=where)
    elif not bad:
        report.add_new(
            "keys.signature",
            Status.PASS,
            f"ed25519 self-signature valid ({', '.join(signatures)})",
            target=where,
        )
    else:
        report.add_new(
            "keys.signature",
            Status.FAIL,
            "; ".join(bad),
            hints.key_signature(expected, "; ".join(bad)),
            target=where,
        )
