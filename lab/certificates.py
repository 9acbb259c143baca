"""Federation certificates for throw-away homeservers: self-signed, or from a test CA.

A homeserver with the v6alt module may present any certificate (peers trust
the address they dialled); stock Synapse verifies its peers, so the stock
baseline gets certificates from a throw-away CA that every homeserver of the
comparison trusts. Both are made with the ``openssl`` command line.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["CertificateIssuer", "LabCa", "make_lab_ca", "self_signed_certificate"]

#: Writes a TLS key and certificate for a DNS name: ``issuer(name, key_path, certificate_path)``.
CertificateIssuer = Callable[[str, Path, Path], None]

_OPENSSL_TIMEOUT: Final = 60.0
_NEW_EC_KEY: Final = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


def _openssl(*args: str) -> None:
    subprocess.run(
        ["openssl", *args],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=_OPENSSL_TIMEOUT,
    )


def self_signed_certificate(name: str, key: Path, certificate: Path) -> None:
    """A self-signed certificate for DNS name ``name`` (a :data:`CertificateIssuer`)."""
    _openssl(
        "req", "-x509", *_NEW_EC_KEY, "-days", "365", "-subj", f"/CN={name}",
        "-addext", f"subjectAltName=DNS:{name}", "-keyout", str(key), "-out", str(certificate),
    )  # fmt: skip


@dataclass(frozen=True)
class LabCa:
    """A throw-away certificate authority: ``ca.crt`` and ``ca.key`` in ``directory``."""

    directory: Path

    @property
    def certificate(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def key(self) -> Path:
        return self.directory / "ca.key"

    def issue(self, name: str, key: Path, certificate: Path) -> None:
        """A server certificate for DNS name ``name`` (a :data:`CertificateIssuer`)."""
        request = certificate.with_suffix(".csr")
        _openssl(
            "req", "-new", *_NEW_EC_KEY, "-subj", f"/CN={name}",
            "-keyout", str(key), "-out", str(request),
        )  # fmt: skip
        # Everything strict X.509 verification asks of a server's leaf certificate.
        extensions = certificate.with_suffix(".ext")
        extensions.write_text(
            f"subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
            "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
        )
        _openssl(
            "x509", "-req", "-in", str(request), "-days", "30", "-CA", str(self.certificate),
            "-CAkey", str(self.key), "-CAcreateserial", "-extfile", str(extensions),
            "-out", str(certificate),
        )  # fmt: skip
        request.unlink()
        extensions.unlink()


def make_lab_ca(directory: Path, common_name: str = "v6alt lab test CA") -> LabCa:
    """A new CA in ``directory`` (made if missing; its key is mode 0600)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca = LabCa(directory)
    _openssl(
        "req", "-x509", *_NEW_EC_KEY, "-days", "30", "-subj", f"/CN={common_name}",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", str(ca.key), "-out", str(ca.certificate),
    )  # fmt: skip
    ca.key.chmod(0o600)
    return ca
