"""``v6alt check xmpp DOMAIN``: resolution, TCP 5269, stream, features, STARTTLS, TLS.

A DNS domain is also looked up for direct TLS (XEP-0368: SRV
``_xmpps-server._tcp``, TLS from the first byte with ALPN ``xmpp-server``);
each such target is checked the same way, with TLS before the stream.
"""

from __future__ import annotations

import socket
import ssl
from ipaddress import IPv6Address, ip_address
from typing import Any

from v6alt.codec import encode
from v6alt.errors import V6AltNameError
from v6alt.names import is_v6alt, parse_xmpp_domain

from . import hints
from .net import StepError, TlsInfo, describe_certificate, tcp_connect
from .options import Options
from .policy_view import judge_address, report_refused
from .report import Report, Status, timed
from .resolve import Target, lookup_addresses, lookup_srv, v6alt_target
from .tls_checks import judge_tls
from .xml_stream import NS_DIALBACK_FEATURE, NS_SASL, NS_TLS, StreamClosed, XmlStream, stream_header

__all__ = ["XMPP_PORT", "check_xmpp"]

XMPP_PORT = 5269
_FALLBACK_SENDER = "v6alt-check.invalid"
DIRECT_TLS_SERVICE = "_xmpps-server._tcp"
DIRECT_TLS_VIA = f"srv {DIRECT_TLS_SERVICE}"
ALPN = "xmpp-server"


def check_xmpp(domain: str, options: Options, sender: str | None = None) -> Report:
    """Run every check for ``domain``; raises V6AltNameError when it is malformed."""
    name = parse_xmpp_domain(domain)
    report = Report("xmpp", domain)
    report.data.update(
        resolution={"domain": name.host, "srv": None}, connections={}, connection_errors={}
    )
    targets = (
        _resolve(report, options, name.host)
        if name.address is None
        else [
            t for t in [v6alt_target(report, name, name.port or XMPP_PORT, name.host, "xmpp")] if t
        ]
    )
    if not targets and not report.failures():
        report.add_new(
            "resolve.addresses", Status.FAIL, f"{domain} has no address", hints.no_addresses(domain)
        )
    for target in targets:
        _check_target(report, options, name.host, target, sender)
    return report


def _resolve(report: Report, options: Options, host: str) -> list[Target]:
    return _resolve_direct_tls(report, options, host) + _resolve_starttls(report, options, host)


def _srv_targets(
    report: Report, options: Options, host: str, service: str, records: list[Any]
) -> list[Target]:
    """The addresses of SRV records (a v6.alt target decoded, never looked up)."""
    targets: list[Target] = []
    for record in records:
        if record.target in ("", "."):
            continue
        via = f"srv {service}"
        if is_v6alt(record.target):
            try:
                decoded = parse_xmpp_domain(record.target.rstrip("."))
            except V6AltNameError as exc:
                report.add_new(
                    "resolve.srv_v6alt",
                    Status.FAIL,
                    f"SRV {service}.{host} points at {record.target[:64]!r}, not a valid v6.alt "
                    f"name ({exc})",
                    hints.delegated_to_v6alt(host, record.target[:64], "xmpp-srv"),
                )
                continue
            assert decoded.address is not None
            report.add_new(
                "resolve.srv_v6alt",
                Status.INFO,
                f"SRV {service}.{host} points at the v6.alt name {decoded.host} "
                f"({decoded.address}, decoded, not looked up): only peers with v6alt (or "
                "mod_s2s_v6mesh) reach it",
                hints.delegated_to_v6alt(host, decoded.host, "xmpp-srv"),
                address=str(decoded.address),
            )
            targets.append(Target(decoded.address, record.port, host, host, via))
            continue
        for address in lookup_addresses(report, options, record.target):
            targets.append(Target(address, record.port, host, host, via))
    return targets


def _resolve_direct_tls(report: Report, options: Options, host: str) -> list[Target]:
    answer = lookup_srv(report, options, f"{DIRECT_TLS_SERVICE}.{host}")
    records = answer.srv if answer is not None else []
    report.data["resolution"]["srv_direct_tls"] = [r.__dict__ for r in records] or None
    usable = [r for r in records if r.target not in ("", ".")]
    if not usable:
        report.add_new(
            "resolve.direct_tls",
            Status.INFO,
            f"no {DIRECT_TLS_SERVICE} SRV record: {host} offers no direct TLS (XEP-0368); "
            "peers use STARTTLS",
        )
        return []
    report.add_new(
        "resolve.direct_tls",
        Status.INFO,
        f"{DIRECT_TLS_SERVICE}.{host}: direct TLS (XEP-0368) at "
        + ", ".join(f"{r.target}:{r.port}" for r in usable),
    )
    return _srv_targets(report, options, host, DIRECT_TLS_SERVICE, usable)


def _resolve_starttls(report: Report, options: Options, host: str) -> list[Target]:
    answer = lookup_srv(report, options, f"_xmpp-server._tcp.{host}")
    if answer is not None and answer.srv:
        report.data["resolution"]["srv"] = [r.__dict__ for r in answer.srv]
        if all(r.target in ("", ".") for r in answer.srv):
            report.add_new(
                "resolve.addresses",
                Status.FAIL,
                f"the SRV record of {host} says it has no s2s service ('.')",
                hints.no_addresses(host),
            )
            return []
        return _srv_targets(report, options, host, "_xmpp-server._tcp", answer.srv)
    return [
        Target(a, XMPP_PORT, host, host, "dns") for a in lookup_addresses(report, options, host)
    ]


def _default_sender(sock: socket.socket) -> str:
    """The v6.alt name of the source address the kernel picked: what the peer will see."""
    source = ip_address(sock.getsockname()[0].split("%", 1)[0])
    return encode(source) if isinstance(source, IPv6Address) else _FALLBACK_SENDER


def _check_target(
    report: Report, options: Options, domain: str, target: Target, sender: str | None
) -> None:
    where = target.label
    verdict = judge_address(
        options.policy,
        target.address,
        None if target.via != "v6.alt" else parse_xmpp_domain(domain),
    )
    record: dict[str, Any] = {
        "address": str(target.address),
        "port": target.port,
        "via": target.via,
        "policy": verdict.as_json(),
    }
    if report_refused(report, target, verdict, domain):
        report.data["connection_errors"][where] = {"message": verdict.rule}
        return
    report.add_new("policy", Status.PASS, f"{verdict.rule}; trust {verdict.trust}", target=where)
    options.progress.say(f"TCP {where} (timeout {options.timeout:g} s)")
    with timed() as took:
        try:
            sock = tcp_connect(target.address, target.port, options.timeout)
        except StepError as exc:
            report.add_new(
                "tcp",
                Status.FAIL,
                f"connect failed: {exc}",
                hints.tcp_failed(target.address, target.port, str(exc), "xmpp"),
                target=where,
                elapsed_ms=took[0],
            )
            report.data["connection_errors"][where] = {"message": str(exc)}
            return
    report.add_new("tcp", Status.PASS, "connected", target=where, elapsed_ms=took[0])
    report.data["connections"][where] = record
    sender = sender or _default_sender(sock)
    record["stream_from"] = sender
    try:
        if target.via == DIRECT_TLS_VIA:
            _converse_direct_tls(report, options, domain, target, sock, sender, verdict, record)
        else:
            _converse(report, options, domain, target, sock, sender, verdict, record)
    except StreamClosed as exc:
        report.add_new(
            "stream",
            Status.FAIL,
            f"{exc} (stream from {sender})",
            hints.stream_refused(domain, exc.condition or "no stream error"),
            target=where,
        )
    except StepError as exc:
        report.add_new(
            "stream", Status.FAIL, str(exc), hints.stream_refused(domain, "no answer"), target=where
        )
    finally:
        sock.close()


def _open_stream(stream: XmlStream, domain: str, sender: str) -> tuple[dict[str, str], Any]:
    stream.send(stream_header(sender, domain))
    header = stream.read_header()
    features = stream.read_element()
    return header, features


def _converse(
    report: Report,
    options: Options,
    domain: str,
    target: Target,
    sock: socket.socket,
    sender: str,
    verdict: Any,
    record: dict[str, Any],
) -> None:
    where = target.label
    options.progress.say(f"stream open at {where} (from {sender}, to {domain})")
    stream = XmlStream(sock, options.timeout)
    header, features = _open_stream(stream, domain, sender)
    record["stream"] = header
    _header_checks(report, where, domain, sender, header)
    starttls = features.find(f"{{{NS_TLS}}}starttls")
    offered = _feature_names(features)
    record["features"] = offered
    if starttls is None:
        if verdict.tls_required:
            report.add_new(
                "features.starttls",
                Status.FAIL,
                f"STARTTLS not offered ({offered})",
                hints.xmpp_no_starttls(where, domain),
                target=where,
            )
            return
        report.add_new(
            "features.starttls",
            Status.PASS,
            f"no STARTTLS: secure range {verdict.secure_range} has tls: off",
            target=where,
        )
        _auth_features(report, where, domain, offered)
        return
    required = starttls.find(f"{{{NS_TLS}}}required") is not None
    report.add_new(
        "features.starttls",
        Status.PASS,
        "STARTTLS offered" + (" (required)" if required else ""),
        target=where,
    )
    options.progress.say(f"STARTTLS at {where} (SNI {domain})")
    try:
        tls_sock, info = _starttls(stream, sock, domain, ssl_context(None, None), options.timeout)
    except StepError as exc:
        report.add_new(
            "tls",
            Status.FAIL,
            str(exc),
            hints.xmpp_tls_failed(where, domain, str(exc)),
            target=where,
        )
        return
    stream = XmlStream(tls_sock, options.timeout)
    _header_after_tls, features = _open_stream(stream, domain, sender)
    offered_after = _feature_names(features)
    record["features_after_tls"] = offered_after

    def ca_check() -> str | None:
        return _ca_check(options, target, domain, sender)

    judge_tls(report, target, info, verdict, ca_check, record)
    _auth_features(report, where, domain, offered_after)
    stream.send("</stream:stream>")


def _direct_tls_context(cafile: str | None, verify_host: str | None) -> ssl.SSLContext:
    context = ssl_context(cafile, verify_host)
    context.set_alpn_protocols([ALPN])
    return context


def _converse_direct_tls(
    report: Report,
    options: Options,
    domain: str,
    target: Target,
    sock: socket.socket,
    sender: str,
    verdict: Any,
    record: dict[str, Any],
) -> None:
    """XEP-0368: TLS first (SNI DOMAIN, ALPN xmpp-server), then the stream inside it."""
    where = target.label
    options.progress.say(f"direct TLS at {where} (SNI {domain}, ALPN {ALPN})")
    try:
        tls = _direct_tls_context(None, None).wrap_socket(sock, server_hostname=domain)
    except (OSError, ssl.SSLError) as exc:
        reason = f"direct TLS handshake failed: {exc}"
        report.add_new(
            "tls", Status.FAIL, reason, hints.xmpp_tls_failed(where, domain, reason), target=where
        )
        return
    tls.settimeout(options.timeout)
    alpn = tls.selected_alpn_protocol()
    record["direct_tls"] = {"alpn": alpn}
    report.add_new(
        "tls.direct",
        Status.PASS,
        f"direct TLS (XEP-0368), ALPN {alpn}" if alpn else "direct TLS (XEP-0368), no ALPN chosen",
        target=where,
    )
    stream = XmlStream(tls, options.timeout)
    header, features = _open_stream(stream, domain, sender)
    record["stream"] = header
    _header_checks(report, where, domain, sender, header)
    offered = _feature_names(features)
    record["features"] = offered

    def ca_check() -> str | None:
        return _ca_check_direct(options, target, domain)

    judge_tls(report, target, _tls_info(tls, domain), verdict, ca_check, record)
    _auth_features(report, where, domain, offered)
    stream.send("</stream:stream>")


def _ca_check_direct(options: Options, target: Target, domain: str) -> str | None:
    """A second direct-TLS connection that verifies the chain and the domain."""
    try:
        sock = tcp_connect(target.address, target.port, options.timeout)
    except StepError as exc:
        return f"second connection failed: {exc}"
    try:
        _direct_tls_context(options.cafile, domain).wrap_socket(
            sock, server_hostname=domain
        ).close()
        return None
    except ssl.SSLCertVerificationError as exc:
        return exc.verify_message or str(exc)
    except (OSError, ssl.SSLError) as exc:
        return str(exc)
    finally:
        sock.close()


def _tls_info(tls: ssl.SSLSocket, domain: str) -> TlsInfo:
    der = tls.getpeercert(binary_form=True)
    cipher = tls.cipher()
    return TlsInfo(
        tls.version() or "unknown",
        cipher[0] if cipher else "unknown",
        domain,
        describe_certificate(der) if der else None,
    )


def _header_checks(
    report: Report, where: str, domain: str, sender: str, header: dict[str, str]
) -> None:
    answered = header.get("from")
    if answered == domain:
        report.add_new("stream.from", Status.PASS, f"the server answers as {domain}", target=where)
    else:
        report.add_new(
            "stream.from",
            Status.FAIL,
            f"the server answers as {answered!r}, not {domain}",
            f'add VirtualHost "{domain}" on that server (or fix the DNS/SRV that '
            "sends this domain there)",
            target=where,
        )
    to = header.get("to")
    status = Status.PASS if to == sender else Status.INFO
    report.add_new(
        "stream.to",
        status,
        f"to={to!r} (we sent from={sender!r}), version={header.get('version')!r}",
        target=where,
    )


def _feature_names(features: Any) -> list[str]:
    names = []
    for child in features:
        local = child.tag.rsplit("}", 1)[-1]
        if child.tag == f"{{{NS_SASL}}}mechanisms":
            mechanisms = [m.text or "" for m in child]
            names.append("sasl:" + ",".join(mechanisms))
        elif child.tag == f"{{{NS_DIALBACK_FEATURE}}}dialback":
            names.append("dialback")
        else:
            names.append(local)
    return names


def _auth_features(report: Report, where: str, domain: str, offered: list[str]) -> None:
    external = any(
        n.startswith("sasl:") and "EXTERNAL" in n.split(":", 1)[1].split(",") for n in offered
    )
    dialback = "dialback" in offered
    ways = [w for w, on in (("SASL EXTERNAL", external), ("dialback", dialback)) if on]
    if ways:
        report.add_new(
            "features.auth",
            Status.PASS,
            f"{' and '.join(ways)} offered (features: {', '.join(offered)})",
            target=where,
        )
    else:
        report.add_new(
            "features.auth",
            Status.FAIL,
            f"neither SASL EXTERNAL nor dialback offered ({', '.join(offered)})",
            f"load mod_dialback on {domain}'s server (or give peers certificates "
            "it accepts for SASL EXTERNAL)",
            target=where,
        )


def ssl_context(cafile: str | None, verify_host: str | None) -> ssl.SSLContext:
    if verify_host is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    context = ssl.create_default_context()
    if cafile is not None:
        context.load_verify_locations(cafile=cafile)
    return context


def _starttls(
    stream: XmlStream, sock: socket.socket, domain: str, context: ssl.SSLContext, timeout: float
) -> tuple[ssl.SSLSocket, TlsInfo]:
    stream.send(f"<starttls xmlns='{NS_TLS}'/>")
    answer = stream.read_element()
    if answer.tag != f"{{{NS_TLS}}}proceed":
        raise StepError(f"STARTTLS answered with <{answer.tag}>, not <proceed/>")
    try:
        tls = context.wrap_socket(sock, server_hostname=domain)
    except ssl.SSLCertVerificationError:
        raise
    except (OSError, ssl.SSLError) as exc:
        raise StepError(f"TLS handshake after STARTTLS failed: {exc}") from None
    tls.settimeout(timeout)
    return tls, _tls_info(tls, domain)


def _ca_check(options: Options, target: Target, domain: str, sender: str) -> str | None:
    """A second STARTTLS session that verifies the chain and the domain like Prosody would."""
    try:
        sock = tcp_connect(target.address, target.port, options.timeout)
    except StepError as exc:
        return f"second connection failed: {exc}"
    try:
        stream = XmlStream(sock, options.timeout)
        _open_stream(stream, domain, sender)
        _starttls(stream, sock, domain, ssl_context(options.cafile, domain), options.timeout)
        return None
    except ssl.SSLCertVerificationError as exc:
        return exc.verify_message or str(exc)
    except (StepError, StreamClosed) as exc:
        return str(exc)
    finally:
        sock.close()
