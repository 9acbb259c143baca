"""The one certificate maker: self-signed, or from a certificate authority.

A homeserver with the v6alt module (and a Prosody with mod_v6alt) may present
any certificate, since peers trust the address they dialled, so a self-signed
one does (``v6alt docker-setup`` makes one per stack). Servers that verify
their peers the ordinary way (stock Synapse, a Prosody without the module)
need certificates from an authority they trust: the lab and the tests make a
throw-away one. All are made with the ``openssl`` command line (EC P-256 keys).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from v6alt.errors import V6AltError

__all__ = [
    "CertificateAuthority",
    "CertificateError",
    "CertificateIssuer",
    "make_certificate_authority",
    "self_signed_certificate",
]

_OPENSSL_TIMEOUT: Final = 60.0
_NEW_EC_KEY: Final = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


class CertificateError(V6AltError):
    """``openssl`` failed, could not run, or did not finish in time."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr.strip()
        detail = self.stderr.splitlines()[-1] if self.stderr else "no error output"
        super().__init__(f"`{' '.join(self.argv)}` failed (exit {returncode}): {detail}")


class CertificateIssuer(Protocol):
    """Writes a TLS key and certificate for a DNS name (and its subdomains if asked)."""

    def __call__(
        self, name: str, key: Path, certificate: Path, *, subdomains: bool = False
    ) -> None: ...


def _openssl(*args: str) -> None:
    argv = ["openssl", *args]
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=_OPENSSL_TIMEOUT
        )
    except subprocess.TimeoutExpired as exc:
        raise CertificateError(argv, -1, f"timed out after {_OPENSSL_TIMEOUT:g} s") from exc
    except OSError as exc:  # no openssl at all
        raise CertificateError(argv, -1, exc.strerror or str(exc)) from exc
    if proc.returncode != 0:
        raise CertificateError(argv, proc.returncode, proc.stderr)


def _subject_alt_names(name: str, subdomains: bool) -> str:
    return f"DNS:{name},DNS:*.{name}" if subdomains else f"DNS:{name}"


def self_signed_certificate(
    name: str, key: Path, certificate: Path, *, subdomains: bool = False, days: int = 365
) -> None:
    """A self-signed certificate for DNS name ``name`` (a :class:`CertificateIssuer`).

    ``subdomains``: valid for ``*.name`` too (an XMPP domain and its MUC
    component). ``days``: how long it is valid (a deployed server's, for
    years: nothing renews it, and with IP-bound trust nothing needs to).
    """
    _openssl(
        "req", "-x509", *_NEW_EC_KEY, "-days", str(days), "-subj", f"/CN={name}",
        "-addext", f"subjectAltName={_subject_alt_names(name, subdomains)}",
        "-keyout", str(key), "-out", str(certificate),
    )  # fmt: skip


@dataclass(frozen=True)
class CertificateAuthority:
    """A certificate authority: ``ca.crt`` and ``ca.key`` in ``directory``."""

    directory: Path

    @property
    def certificate(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def key(self) -> Path:
        return self.directory / "ca.key"

    def issue(self, name: str, key: Path, certificate: Path, *, subdomains: bool = False) -> None:
        """A server certificate for DNS name ``name`` (a :class:`CertificateIssuer`)."""
        request = certificate.with_suffix(".csr")
        _openssl(
            "req", "-new", *_NEW_EC_KEY, "-subj", f"/CN={name}",
            "-keyout", str(key), "-out", str(request),
        )  # fmt: skip
        # Everything strict X.509 verification asks of a leaf certificate; clientAuth
        # too, for servers that present theirs when they connect (XMPP s2s).
        extensions = certificate.with_suffix(".ext")
        extensions.write_text(
            f"subjectAltName={_subject_alt_names(name, subdomains)}\nbasicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n"
            "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
        )
        _openssl(
            "x509", "-req", "-in", str(request), "-days", "30", "-CA", str(self.certificate),
            "-CAkey", str(self.key), "-CAcreateserial", "-extfile", str(extensions),
            "-out", str(certificate),
        )  # fmt: skip
        request.unlink()
        extensions.unlink()


def make_certificate_authority(directory: Path, common_name: str) -> CertificateAuthority:
    """A new throw-away authority (30 days) in ``directory`` (made if missing; its key
    is mode 0600)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    authority = CertificateAuthority(directory)
    _openssl(
        "req", "-x509", *_NEW_EC_KEY, "-days", "30", "-subj", f"/CN={common_name}",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", str(authority.key), "-out", str(authority.certificate),
    )  # fmt: skip
    authority.key.chmod(0o600)
    return authority
