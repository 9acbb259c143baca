"""The network steps of a check: TCP connect, TLS handshake, one HTTP request.

Every function takes a timeout and raises :class:`StepError` with a short
reason (no traceback reaches the user). TLS is done twice when a CA verdict
is needed: once without verification, to see and describe whatever
certificate the server presents, and once with verification, for the
verdict; a bad certificate then never hides the checks after it.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import ssl
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Any

__all__ = [
    "CertificateInfo",
    "HttpAnswer",
    "StepError",
    "TlsInfo",
    "ca_verify",
    "describe_certificate",
    "http_get",
    "tcp_connect",
    "tls_handshake",
]

_MAX_BODY = 1 << 20


class StepError(Exception):
    """A network step failed; ``str()`` is the reason shown to the user."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return exc.verify_message or str(exc)
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def tcp_connect(address: IPv4Address | IPv6Address, port: int, timeout: float) -> socket.socket:
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((str(address), port))
    except OSError as exc:
        sock.close()
        raise StepError(_reason(exc)) from None
    return sock


@dataclass
class CertificateInfo:
    sha256: str  # hex, colon-separated, uppercase (what `openssl x509 -fingerprint` shows)
    subject_cn: str | None = None
    issuer_cn: str | None = None
    dns_names: list[str] = field(default_factory=list)
    ip_addresses: list[str] = field(default_factory=list)
    not_after: str | None = None
    self_signed: bool | None = None
    parse_error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class TlsInfo:
    version: str
    cipher: str
    sni: str | None
    certificate: CertificateInfo | None


def describe_certificate(der: bytes) -> CertificateInfo:
    """Fingerprint, names and issuer of a DER certificate (names need ``cryptography``)."""
    digest = hashlib.sha256(der).hexdigest().upper()
    info = CertificateInfo(":".join(digest[i : i + 2] for i in range(0, len(digest), 2)))
    try:
        from cryptography import x509
        from cryptography.x509.oid import NameOID
    except ImportError:
        info.parse_error = "certificate names need the 'cryptography' package (v6alt[check])"
        return info
    try:
        cert = x509.load_der_x509_certificate(der)
        subject = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        issuer = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
        info.subject_cn = str(subject[0].value) if subject else None
        info.issuer_cn = str(issuer[0].value) if issuer else None
        info.self_signed = cert.subject == cert.issuer
        info.not_after = cert.not_valid_after_utc.isoformat()
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            pass
        else:
            info.dns_names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
            info.ip_addresses = [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    except ValueError as exc:
        info.parse_error = f"unparsable certificate: {exc}"
    return info


def tls_handshake(
    sock: socket.socket, sni: str | None, timeout: float
) -> tuple[ssl.SSLSocket, TlsInfo]:
    """TLS over ``sock`` without verifying anything; describes what the server presented."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    sock.settimeout(timeout)
    try:
        tls = context.wrap_socket(sock, server_hostname=sni)
    except (OSError, ssl.SSLError) as exc:
        sock.close()
        raise StepError(f"TLS handshake failed: {_reason(exc)}") from None
    der = tls.getpeercert(binary_form=True)
    cipher = tls.cipher()
    info = TlsInfo(
        version=tls.version() or "unknown",
        cipher=cipher[0] if cipher else "unknown",
        sni=sni,
        certificate=describe_certificate(der) if der else None,
    )
    return tls, info


def ca_verify(
    address: IPv4Address | IPv6Address,
    port: int,
    hostname: str,
    timeout: float,
    cafile: str | None = None,
) -> str | None:
    """Verify the chain and ``hostname`` as a CA-trusting peer would; None when valid."""
    context = ssl.create_default_context(cafile=None)
    if cafile is not None:
        context.load_verify_locations(cafile=cafile)
    sock = tcp_connect(address, port, timeout)
    try:
        with context.wrap_socket(sock, server_hostname=hostname):
            return None
    except ssl.SSLCertVerificationError as exc:
        return exc.verify_message or str(exc)
    except (OSError, ssl.SSLError) as exc:
        return f"TLS handshake failed: {_reason(exc)}"
    finally:
        sock.close()


@dataclass
class HttpAnswer:
    status: int
    reason: str
    content_type: str | None
    body: bytes
    location: str | None = None  # the Location header (redirects)

    def json(self) -> Any:
        """The body as JSON; raises :class:`StepError` naming what is wrong."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise StepError(f"body is not JSON: {exc}") from None


def http_get(sock: socket.socket, host_header: str, path: str, timeout: float) -> HttpAnswer:
    """One HTTP/1.1 GET over an already connected (TLS or plain) socket; closes it."""
    sock.settimeout(timeout)
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: v6alt-check\r\n"
        "Accept: application/json\r\nConnection: close\r\n\r\n"
    )
    try:
        sock.sendall(request.encode("ascii"))
        response = http.client.HTTPResponse(sock, method="GET")
        response.begin()
        body = response.read(_MAX_BODY)
        return HttpAnswer(
            response.status,
            response.reason,
            response.getheader("Content-Type"),
            body,
            response.getheader("Location"),
        )
    except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
        raise StepError(f"GET {path}: {_reason(exc)}") from None
    finally:
        sock.close()
