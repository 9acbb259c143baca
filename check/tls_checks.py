"""The TLS part of a connection check, shared by Matrix and XMPP.

Describes the handshake (version, cipher, certificate) and then judges
trust the way a peer running v6alt would: IP-bound or any-certificate trust
accept the certificate (but a certificate naming another v6.alt address
shows that another server answers here), CA trust verifies the chain.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv6Address
from typing import Any

from v6alt.codec import decode
from v6alt.errors import V6AltNameError
from v6alt.names import is_v6alt

from . import hints
from .net import TlsInfo
from .policy_view import AddressVerdict
from .report import Report, Status
from .resolve import Target

__all__ = ["judge_tls"]


def _v6alt_addresses(names: list[str]) -> dict[str, IPv6Address]:
    found = {}
    for name in names:
        host = name.removeprefix("*.")
        if is_v6alt(host):
            try:
                found[name] = decode(host, lenient=True)
            except V6AltNameError:
                continue
    return found


def judge_tls(
    report: Report,
    target: Target,
    info: TlsInfo,
    verdict: AddressVerdict,
    ca_check: Callable[[], str | None],
    record: dict[str, Any],
) -> None:
    """Add the ``tls``, ``tls.certificate`` and ``tls.trust`` checks for one handshake."""
    cert = info.certificate
    record["tls"] = {
        "version": info.version,
        "cipher": info.cipher,
        "sni": info.sni,
        "host_header": target.host_header,
        "certificate": cert.as_json() if cert is not None else None,
        "trust": verdict.trust,
        "ca_error": None,
    }
    report.add_new(
        "tls",
        Status.PASS,
        f"{info.version} {info.cipher}, SNI {info.sni or '(none: IP literal)'}",
        target=target.label,
    )
    if cert is None:
        report.add_new(
            "tls.certificate",
            Status.FAIL,
            "no certificate presented",
            hints.tls_failed(target.label, "no certificate"),
            target=target.label,
        )
        return
    names = cert.dns_names + cert.ip_addresses
    report.add_new(
        "tls.certificate",
        Status.INFO,
        f"SHA-256 {cert.sha256}, names {', '.join(names) or cert.subject_cn or '(none)'}"
        + (f", issuer {cert.issuer_cn}" if cert.issuer_cn else "")
        + (f" ({cert.parse_error})" if cert.parse_error else ""),
        target=target.label,
    )
    if verdict.trust in ("ip_bound", "any"):
        _peer_bound(report, target, verdict, names)
        return
    error = ca_check()
    record["tls"]["ca_error"] = error
    host = target.sni or str(target.address)
    if error is None:
        report.add_new("tls.trust", Status.PASS, f"CA-verified for {host}", target=target.label)
    else:
        report.add_new(
            "tls.trust",
            Status.FAIL,
            f"CA verification for {host} fails: {error}",
            hints.ca_certificate(host, error),
            target=target.label,
        )


def _peer_bound(report: Report, target: Target, verdict: AddressVerdict, names: list[str]) -> None:
    assert isinstance(target.address, IPv6Address)
    if verdict.trust == "any":
        why = f"secure range {verdict.secure_range} accepts any certificate"
    else:
        why = f"IP-bound trust: the name encodes {target.address}, the address connected to"
    named = _v6alt_addresses(names)
    others = {n: a for n, a in named.items() if a != target.address}
    # Only when no name fits this address: a certificate may name several hosts.
    if others and len(others) == len(named):
        presented_for, presented_address = next(iter(others.items()))
        report.add_new(
            "tls.trust",
            Status.FAIL,
            f"{why}, but the certificate is for {presented_for} ({presented_address}): "
            "another server answers at this address",
            hints.certificate_other_address(target.address, presented_for, presented_address),
            target=target.label,
        )
        return
    report.add_new("tls.trust", Status.PASS, why + "; no CA needed", target=target.label)
