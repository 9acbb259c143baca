"""The lab's certificates: the product's one maker (:mod:`v6alt.deploy.certificates`).

Every server the lab, the tests and the benchmarks start gets its TLS
certificate here: self-signed for a homeserver with the v6alt module (and a
Prosody with mod_v6alt), since peers trust the address they dialled; from a
throw-away certificate authority every server of a comparison trusts for
stock Synapse and a Prosody that checks certificates the ordinary way. The
certificates are the product's; only a failure is the lab's own
(:class:`LabCommandError`, exit 1 of ``v6alt lab``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from v6alt.deploy import certificates
from v6alt.deploy.certificates import CertificateAuthority, CertificateIssuer

from .errors import LabCommandError

__all__ = ["CertificateIssuer", "LabCa", "make_lab_ca", "self_signed_certificate"]


@contextmanager
def _as_lab_error() -> Iterator[None]:
    try:
        yield
    except certificates.CertificateError as error:
        raise LabCommandError(error.argv, error.returncode, error.stderr) from error


def self_signed_certificate(
    name: str, key: Path, certificate: Path, *, subdomains: bool = False
) -> None:
    """A self-signed certificate for DNS name ``name`` (a :class:`CertificateIssuer`).

    ``subdomains``: valid for ``*.name`` too (an XMPP domain and its MUC component).
    """
    with _as_lab_error():
        certificates.self_signed_certificate(name, key, certificate, subdomains=subdomains)


class LabCa(CertificateAuthority):
    """A throw-away certificate authority: ``ca.crt`` and ``ca.key`` in ``directory``."""

    def issue(self, name: str, key: Path, certificate: Path, *, subdomains: bool = False) -> None:
        """A server certificate for DNS name ``name`` (a :class:`CertificateIssuer`)."""
        with _as_lab_error():
            super().issue(name, key, certificate, subdomains=subdomains)


def make_lab_ca(directory: Path, common_name: str = "v6alt lab test CA") -> LabCa:
    """A new CA in ``directory`` (made if missing; its key is mode 0600)."""
    with _as_lab_error():
        made = certificates.make_certificate_authority(directory, common_name)
    return LabCa(made.directory)
