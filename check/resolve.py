"""Where to connect for a server name: v6.alt decoding, or DNS (SRV, A/AAAA).

Shared by the Matrix and XMPP checks; each step adds one timed check.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from v6alt.codec import encode
from v6alt.names import HostKind, ServerName

from . import hints
from .dns_client import TYPE_A, TYPE_AAAA, TYPE_SRV, DnsAnswer, DnsError, query, system_resolver
from .options import Options
from .report import Report, Status, timed

__all__ = ["Target", "lookup_addresses", "lookup_srv", "lookups_failed", "v6alt_target"]


@dataclass(frozen=True)
class Target:
    """One address to connect to, and what to say there."""

    address: IPv4Address | IPv6Address
    port: int
    sni: str | None  # TLS server name indication (None for IP literals)
    host_header: str  # HTTP Host (Matrix) or stream 'to' (XMPP)
    via: str  # how it was found: "v6.alt", "srv _matrix-fed._tcp", "aaaa", ...

    @property
    def label(self) -> str:
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{host}:{self.port}"


def v6alt_target(
    report: Report, name: ServerName, port: int, host_header: str, what: str
) -> Target | None:
    """Decode a v6.alt name (or take an IP literal); one check says how."""
    assert name.address is not None
    if name.kind is HostKind.V6ALT and isinstance(name.address, IPv6Address):
        canonical = encode(name.address)
        label_name = ".".join((*name.subdomains, canonical)) if name.subdomains else canonical
        if not name.canonical:
            report.add_new(
                "resolve.v6alt",
                Status.FAIL if what == "matrix" else Status.WARN,
                f"{name.host} decodes to {name.address}, but is not the canonical spelling "
                f"{label_name}",
                hints.canonical_name(name.host, label_name),
                address=str(name.address),
                canonical=label_name,
            )
        else:
            report.add_new(
                "resolve.v6alt",
                Status.PASS,
                f"{name.host} is {name.address} port {port} (decoded, no DNS)",
                address=str(name.address),
                canonical=label_name,
            )
        sni: str | None = name.host
    else:
        report.add_new("resolve.literal", Status.PASS, f"{name.host} is an IP literal, port {port}")
        sni = None
    return Target(name.address, port, sni, host_header, "v6.alt" if sni else "literal")


def _resolver(options: Options) -> tuple[str, int]:
    return options.resolver if options.resolver is not None else system_resolver()


def _ask(report: Report, options: Options, name: str, qtype: int, id: str) -> DnsAnswer | None:
    key = (name.lower(), qtype)
    if key in options.dns_cache:  # asked and reported before (well-known, then fallback)
        return options.dns_cache[key]
    options.dns_cache[key] = _ask_server(report, options, name, qtype, id)
    return options.dns_cache[key]


def _ask_server(
    report: Report, options: Options, name: str, qtype: int, id: str
) -> DnsAnswer | None:
    server = _resolver(options)
    kind = {TYPE_A: "A", TYPE_AAAA: "AAAA", TYPE_SRV: "SRV"}[qtype]
    options.progress.say(f"DNS {kind} {name} via {server[0]} port {server[1]}")
    with timed() as took:
        try:
            answer: DnsAnswer | None = query(name, qtype, server, options.timeout)
            error = None
        except DnsError as exc:
            answer, error = None, str(exc)
    if answer is None:
        report.add_new(
            id,
            Status.FAIL,
            f"{kind} {name}: {error}",
            hints.dns_failed(name, kind, str(error)),
            elapsed_ms=took[0],
        )
        return None
    if answer.rcode not in (0, 3):
        report.add_new(
            id,
            Status.FAIL,
            f"{kind} {name}: {answer.rcode_name}",
            hints.dns_failed(name, kind, answer.rcode_name),
            elapsed_ms=took[0],
        )
        return None
    found = [str(a) for a in answer.addresses] + [
        f"{r.priority} {r.weight} {r.port} {r.target}" for r in answer.srv
    ]
    summary = f"{kind} {name}: " + (", ".join(found) if found else f"none ({answer.rcode_name})")
    report.add_new(
        id,
        Status.INFO,
        summary,
        elapsed_ms=took[0],
        rcode=answer.rcode_name,
        records=found,
    )
    return answer


def lookups_failed(options: Options, host: str) -> bool:
    """Did every address lookup of ``host`` fail (so "no address" would mislead)?"""
    keys = [(host.lower(), t) for t in (TYPE_AAAA, TYPE_A)]
    return all(k in options.dns_cache and options.dns_cache[k] is None for k in keys)


def lookup_addresses(
    report: Report, options: Options, host: str
) -> list[IPv4Address | IPv6Address]:
    """AAAA then A for ``host``; each lookup is a check."""
    found: list[IPv4Address | IPv6Address] = []
    for qtype, id in ((TYPE_AAAA, "dns.aaaa"), (TYPE_A, "dns.a")):
        answer = _ask(report, options, host, qtype, id)
        if answer is not None:
            found += [a for a in answer.addresses if a not in found]
    return found


def lookup_srv(report: Report, options: Options, name: str) -> DnsAnswer | None:
    return _ask(report, options, name, TYPE_SRV, "dns.srv")
