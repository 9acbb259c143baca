"""Pinning in Synapse: the TLS key at the handshake, the signing keys at key fetch.

The decisions are the core's (:mod:`v6alt.pins`, :meth:`v6alt.policy.Policy.pinning_for`);
the pin file is :class:`v6alt.pin_store.PinStore`. This module only reads
what Synapse hands over and acts on the verdicts:

- TLS: a v6.alt destination's connection creator (:class:`.tls.PeerBoundCreator`)
  is wrapped so that, once the address check approved the peer, the leaf
  certificate's SubjectPublicKeyInfo hash is judged against the pin. A
  refusal fails the handshake: no request, no key fetch, nothing accepted.
- Keys: Synapse's ``process_v2_response`` is wrapped (:mod:`.synapse_seam`):
  a direct key response of a v6.alt server is judged before Synapse stores
  anything; a refusal is a failed key fetch, so no event or request signed
  by those keys is accepted.

A pin is named by the endpoint: the v6.alt host, with ``:port`` unless the
port is 8448 (so ``x.v6.alt`` and ``x.v6.alt:8448`` share one pin). Every
failure to read or write the pin file refuses under ``enforce`` (fail
closed) and is logged.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from OpenSSL import SSL, crypto
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from zope.interface import implementer

from v6alt.config import PinningMode
from v6alt.errors import V6AltNameError
from v6alt.names import HostKind, ServerName, is_v6alt, parse_host, parse_matrix_server_name
from v6alt.pin_store import PinStore, decide
from v6alt.pins import Pin, PinCheck, PinFileError, PinStatus, check_keys, check_tls
from v6alt.policy import Policy

from .metrics import ModuleMetrics
from .outbound import host_text
from .peer_check import PeerCheck
from .synapse_seam import key_lookup_error

logger = logging.getLogger("v6alt.synapse_module")

DEFAULT_PORT = 8448
DEFAULT_FILE_NAME = "v6alt-pins.json"
_CHECK_ATTRIBUTE = "_v6alt_peer_check"  # where tls.PeerBoundCreator leaves its PeerCheck


def default_pin_file(media_store_path: str) -> str:
    """``v6alt-pins.json`` in the directory holding the media store (Synapse's data)."""
    return os.path.join(os.path.dirname(os.path.abspath(media_store_path)), DEFAULT_FILE_NAME)


def pin_name(host: str, port: int | None) -> str:
    return host if port in (None, DEFAULT_PORT) else f"{host}:{port}"


def spki_sha256(cert: crypto.X509) -> str:
    """SHA-256 (hex) of the certificate's DER SubjectPublicKeyInfo."""
    der = (
        cert.to_cryptography()
        .public_key()
        .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    return hashlib.sha256(der).hexdigest()


def signed_by_key(response_json: Any, server_name: str, key_id: str, key_base64: str) -> bool:
    """Does ``response_json`` carry a valid signature of ``server_name`` by this key?

    Verified with the given public key (a pinned one), never with the keys the
    response itself lists. signedjson and unpaddedbase64 are Synapse's own
    dependencies.
    """
    from signedjson.key import decode_verify_key_bytes
    from signedjson.sign import SignatureVerifyException, verify_signed_json
    from unpaddedbase64 import decode_base64

    signatures = response_json.get("signatures", {}).get(server_name, {})
    if key_id not in signatures:
        return False
    try:
        verify_key = decode_verify_key_bytes(key_id, decode_base64(key_base64))
        verify_signed_json(response_json, server_name, verify_key)
    except (SignatureVerifyException, ValueError, TypeError, KeyError):
        return False
    return True


def pinning_may_apply(policy: Policy) -> bool:
    config = policy.config
    return config.pinning.default != "off" or any(
        r.pinning in ("enforce", "warn") for r in config.secure_ranges
    )


class PinGuard:
    """The module's pins: one store (shared by every worker through the file)."""

    def __init__(self, policy: Policy, path: str, metrics: ModuleMetrics | None = None) -> None:
        self.policy = policy
        self.store = PinStore(path)
        self.path = self.store.path
        self._metrics = metrics

    def check_start(self) -> str | None:
        """Why the pin file cannot serve (read it once, check its directory), or None."""
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            return f"the directory of the pin file {self.path} does not exist"
        if not os.access(directory, os.W_OK | os.X_OK):
            return f"the directory of the pin file {self.path} is not writable"
        try:
            self.store.all()
        except PinFileError as e:
            return str(e)
        return None

    def hint(self, name: str) -> str:
        return f"v6alt pins forget {name} --file {self.path}"

    def _run(
        self,
        name: str,
        mode: PinningMode,
        judge: Callable[[Pin | None], PinCheck],
        what: str = "tls",
    ) -> bool:
        try:
            check = decide(self.store, name, judge)
        except PinFileError as e:
            refuse = mode == "enforce"
            if self._metrics is not None:
                self._metrics.pin_check(what, "error", not refuse)
            logger.error(
                "v6alt: pin check of %s failed: %s; %s",
                name,
                e,
                "refused (pinning: enforce fails closed)" if refuse else "accepted (pinning: warn)",
            )
            return not refuse
        if self._metrics is not None and check.status is not PinStatus.OFF:
            self._metrics.pin_check(what, check.status.value, check.accept)
        if check.message is not None:
            if check.status is PinStatus.MISMATCH:
                logger.warning("v6alt: %s", check.message)
            else:
                logger.info("v6alt: %s", check.message)
        return check.accept

    # --- TLS ---------------------------------------------------------------

    def check_tls(self, name: str, address: str, spki: str, mode: PinningMode) -> bool:
        now = int(time.time() * 1000)

        def judge(pin: Pin | None) -> PinCheck:
            return check_tls(
                pin,
                name=name,
                protocol="matrix",
                address=address,
                spki_sha256=spki,
                mode=mode,
                now_ms=now,
                accept_hint=self.hint(name),
            )

        return self._run(name, mode, judge)

    def wrap_options(
        self, options_for: Callable[[bytes, Callable[[], Any]], Any]
    ) -> Callable[[bytes, Callable[[], Any]], Any]:
        """``options_for`` with every IP-bound creator of a v6.alt host pinned."""
        from .tls import PeerBoundCreator

        def pinned_options_for(host: bytes, synapse_options: Callable[[], Any]) -> Any:
            creator = options_for(host, synapse_options)
            if isinstance(creator, PeerBoundCreator):
                text = host_text(host)
                if is_v6alt(text):
                    return PinnedCreator(creator, self, parse_host(text))
            return creator

        return pinned_options_for

    def verifier(
        self, check: PeerCheck, tls_protocol: Any, server: ServerName
    ) -> Callable[[SSL.Connection, crypto.X509, int, int, int], bool]:
        judged: list[bool] = []  # this connection's pin verdict, once made

        def verify(
            connection: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int
        ) -> bool:
            if not check.verify(connection, cert, errno, depth, ok):
                return False
            if depth != 0:
                return True
            if judged:  # OpenSSL calls back once per error at depth 0: judge the key once
                if not judged[0]:
                    check.approved = False
                return judged[0]
            try:
                decision = check.decision()
                if decision is None:  # approved above, so not reached; fail closed
                    raise ValueError("no peer address")
                if decision.pinning == "off":
                    return True
                port = int(tls_protocol.transport.getPeer().port)
                name = pin_name(server.host, port)
                accepted = self.check_tls(
                    name, str(decision.address), spki_sha256(cert), decision.pinning
                )
            except Exception as e:  # an error never approves a peer
                logger.error("v6alt: TLS pin check for %s failed (%r); refused", server.host, e)
                accepted = False
            judged.append(accepted)
            if not accepted:
                check.approved = False
            else:  # pinning applied (an "off" peer returned above) and the key passed
                check.kind = "pinned"  # reported when the handshake is done
            return accepted

        return verify

    # --- signing keys ------------------------------------------------------

    def check_key_response(self, from_server: str, response_json: Any) -> None:
        """Raise Synapse's KeyLookupError to refuse a v6.alt server's key response."""
        if not isinstance(response_json, dict):
            return
        server_name = response_json.get("server_name")
        if not isinstance(server_name, str) or from_server != server_name:
            return  # a notary's answer: never asked about v6.alt servers
        try:
            server = parse_matrix_server_name(server_name)
        except V6AltNameError:
            return  # refused elsewhere (outbound judge, inbound gate)
        if server.kind is not HostKind.V6ALT or server.ipv6 is None:
            return
        decision = self.policy.decide(server.ipv6, server)
        mode = decision.pinning
        if mode == "off":
            return
        name = pin_name(server.host, server.port)
        verify_keys = response_json.get("verify_keys")
        presented = {
            key_id: data["key"]
            for key_id, data in (verify_keys if isinstance(verify_keys, dict) else {}).items()
            if isinstance(key_id, str)
            and key_id.startswith("ed25519:")
            and isinstance(data, dict)
            and isinstance(data.get("key"), str)
        }
        now = int(time.time() * 1000)

        def judge(pin: Pin | None) -> PinCheck:
            pinned = pin.verify_keys if pin is not None else {}
            signed = [
                k for k, key in pinned.items() if signed_by_key(response_json, server_name, k, key)
            ]
            return check_keys(
                pin,
                name=name,
                address=str(server.ipv6),
                presented=presented,
                signed_by_pinned=signed,
                mode=mode,
                now_ms=now,
                accept_hint=self.hint(name),
            )

        if not self._run(name, mode, judge, "keys"):
            raise key_lookup_error(
                f"v6alt: the key response of {server_name} does not match its pinned keys"
            )


@implementer(IOpenSSLClientConnectionCreator)
class PinnedCreator:
    """An IP-bound creator whose verify callback also judges the TLS key pin."""

    def __init__(self, inner: Any, guard: PinGuard, server: ServerName) -> None:
        self._inner = inner
        self._guard = guard
        self._server = server

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        connection: SSL.Connection = self._inner.clientConnectionForTLS(tlsProtocol)
        check = getattr(tlsProtocol, _CHECK_ATTRIBUTE, None)
        if not isinstance(check, PeerCheck):
            raise SSL.Error("v6alt: the peer check is missing; refusing the connection")
        connection.set_verify(
            SSL.VERIFY_PEER, self._guard.verifier(check, tlsProtocol, self._server)
        )
        return connection


__all__ = [
    "PinGuard",
    "PinnedCreator",
    "default_pin_file",
    "pin_name",
    "pinning_may_apply",
    "signed_by_key",
    "spki_sha256",
]
