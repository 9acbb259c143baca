"""The sidecar's pins of XMPP peers: ``GET /v1/pin?name=D&address=A&spki=H``.

mod_v6alt sends the SHA-256 of the peer certificate's SubjectPublicKeyInfo
(hex) once the address check trusts a v6.alt peer whose pinning is not off.
The sidecar judges it against its pin file with the core's rule
(:func:`v6alt.pins.check_tls`) and answers ``accept``; the Lua module closes
the stream when it is false. The pin file is the sidecar's alone (one
process serves the lookup service), written under a lock all the same, so
``v6alt pins forget`` may run beside it.
"""

from __future__ import annotations

import logging
import os
import time
from ipaddress import IPv6Address
from typing import Final

from v6alt.config import Config
from v6alt.names import HostKind, ServerName
from v6alt.pin_store import PinStore, decide
from v6alt.pins import Pin, PinCheck, PinFileError, PinStatus, check_tls
from v6alt.policy import Policy, Trust

from .lookup_answer import PinAnswer

__all__ = ["DEFAULT_PIN_FILE", "PinService", "pin_file"]

log = logging.getLogger("v6alt.sidecar")

DEFAULT_PIN_FILE: Final = "/var/lib/v6alt/xmpp-pins.json"
_HEX: Final = frozenset("0123456789abcdef")


def pin_file(config: Config) -> str:
    return config.pinning.file or DEFAULT_PIN_FILE


def valid_spki(text: str) -> bool:
    return len(text) == 64 and set(text) <= _HEX


class PinService:
    """Judges TLS keys of XMPP peers against the pin file at ``path``."""

    def __init__(self, path: str) -> None:
        self.store = PinStore(path)
        self.path = self.store.path

    def prepare(self) -> None:
        """Read the pin file once at start-up; log what cannot work (nothing is created
        until the first pin: a sidecar whose peers are all on the meshes writes nothing)."""
        try:
            self.store.all()
        except PinFileError as e:
            log.error(
                "pins cannot be read from %s (%s): v6.alt peers whose pinning is enforce will "
                "be refused until this is fixed",
                self.path,
                e,
            )
            return
        log.info("pins of v6.alt peers in %s", self.path)

    def _make_directory(self) -> None:
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            try:
                os.makedirs(directory, mode=0o700, exist_ok=True)
            except OSError as e:
                raise PinFileError(f"{directory}: cannot create: {e.strerror}") from None

    def answer(
        self, policy: Policy, name: ServerName, text: str, address: IPv6Address, spki: str
    ) -> PinAnswer:
        decision = policy.decide(address, name)
        if not (
            decision.allowed
            and name.kind is HostKind.V6ALT
            and name.address == address
            and decision.trust in (Trust.IP_BOUND, Trust.ANY)
        ):
            # Only a peer trusted by its address is pinned; anything else is refused
            # here, since a pin check should not have been asked for it.
            reason = f"{text} at [{address}] is not trusted by its address ({decision.rule})"
            return PinAnswer(text, address, "off", False, "not_pinnable", reason, None)
        mode = decision.pinning
        pin_name = text.lower()
        hint = f"v6alt pins forget {pin_name} --file {self.path}"
        now = int(time.time() * 1000)

        def judge(pin: Pin | None) -> PinCheck:
            return check_tls(
                pin,
                name=pin_name,
                protocol="xmpp",
                address=str(address),
                spki_sha256=spki,
                mode=mode,
                now_ms=now,
                accept_hint=hint,
            )

        try:
            self._make_directory()
            check = decide(self.store, pin_name, judge)
        except PinFileError as e:
            accept = mode != "enforce"
            message = f"pin check of {pin_name} failed: {e}; " + (
                "refused (pinning: enforce fails closed)" if not accept else "accepted (warn)"
            )
            log.error("%s", message)
            return PinAnswer(text, address, mode, accept, "error", message, message)
        if check.message is not None:
            level = logging.WARNING if check.status is PinStatus.MISMATCH else logging.INFO
            log.log(level, "%s", check.message)
        refusal = check.message if not check.accept else None
        return PinAnswer(
            text, address, mode, check.accept, check.status.value, refusal, check.message
        )
