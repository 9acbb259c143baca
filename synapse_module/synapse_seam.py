"""The one seam between the module and Synapse: every reach into its internals.

Synapse's module API has no hook for destination lookup, TLS, the X-Matrix
origin or destination backoff, and modules load after the federation client
exists. So the module reaches into Synapse, and every such reach is here:
the homeserver as far as the module uses it (:class:`SynapseInternals`,
handed out by :func:`require_internals` once every internal is there), the
raw homeserver config while the module's config is parsed, the class-level
wrappers (``install_*``), Synapse's key lookup error and its TLS verifier.
Each internal is named, with the Synapse versions it was checked on, in
:mod:`.synapse_contract`, which checks them at start-up; nothing outside
these two files imports Synapse internals.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from v6alt.names import is_v6alt_server_name

from .synapse_contract import (
    DESTINATIONS_COLUMNS,
    ORIGINALS_ATTRIBUTE,
    TLS_VERIFIER_ATTRIBUTE,
    SynapseInternalsMissing,
    internals_problems,
    synapse_version,
    tested_range_text,
    version_tested,
)

logger = logging.getLogger("v6alt.synapse_module")


def require_internals(api: Any) -> SynapseInternals:
    """The running homeserver's internals, once every one the module needs is there.

    Raises :class:`SynapseInternalsMissing` naming each missing piece; warns
    when this Synapse release is outside the tested range.
    """
    version = synapse_version()
    if not version_tested(version):
        logger.warning(
            "v6alt: Synapse %s is outside the versions this module is tested on (%s); "
            "every internal it needs was found, but check federation after the upgrade",
            version,
            tested_range_text(),
        )
    hs = getattr(api, "_hs", None)
    problems = [] if hs is not None else ["ModuleApi._hs is missing"]
    problems += internals_problems(hs)
    if problems:
        raise SynapseInternalsMissing(problems)
    return SynapseInternals(api, hs)


class SynapseInternals:
    """The homeserver, as far as the module uses it (checked on 1.100-1.163)."""

    def __init__(self, api: Any, hs: Any) -> None:
        self.api = api
        self._hs = hs

    @property
    def server_name(self) -> str:
        return str(self._hs.hostname)

    @property
    def federation_ip_blocklist(self) -> object | None:
        """A netaddr IPSet (``iter_cidrs()``), or None."""
        return getattr(self._hs.config.server, "federation_ip_range_blocklist", None)

    @property
    def federation_ip_allowlist(self) -> object | None:
        return getattr(self._hs.config.server, "federation_ip_range_allowlist", None)

    @property
    def minimum_tls_version(self) -> str:
        return str(self._hs.config.tls.federation_client_minimum_tls_version)

    @property
    def media_store_path(self) -> str:
        return str(self._hs.config.media.media_store_path)

    def key_server_names(self) -> list[str]:
        return [str(k.server_name) for k in self._hs.config.key.key_servers]

    @property
    def reactor(self) -> Any:
        return self._hs.get_reactor()

    def sends_federation(self) -> bool:
        return bool(self._hs.should_send_federation())

    def now_ms(self) -> int:
        return int(self._hs.get_clock().time_msec())

    async def backed_off_v6alt_destinations(self, now_ms: int, limit: int) -> list[str]:
        """v6.alt destinations Synapse is backing off from, longest backed off first."""
        result: list[str] = await self.api.run_db_interaction(
            "v6alt_backed_off_destinations", _backed_off_txn, now_ms, limit
        )
        return result

    async def destinations_table_problem(self) -> str | None:
        """Why the ``destinations`` table cannot serve the recovery, or None."""
        try:
            await self.api.run_db_interaction("v6alt_destinations_columns", _columns_txn)
        except Exception as e:
            return f"Synapse's destinations table lacks {', '.join(DESTINATIONS_COLUMNS)} ({e})"
        return None

    async def clear_backoff(self, destination: str) -> None:
        """What Synapse does on an inbound request from ``destination``."""
        store = self._hs.get_datastores().main
        await store.set_destination_retry_timings(destination, None, 0, 0)
        self.wake(destination)

    def wake(self, destination: str) -> None:
        """Wake the federation sender's queue for ``destination`` and end the sleep
        of a request to it that waits between retries (Synapse's
        ``notify_remote_server_up``: ``FederationSender.wake_destination`` and
        ``MatrixFederationHttpClient.wake_destination``)."""
        self._hs.get_notifier().notify_remote_server_up(destination)

    def destinations_in_flight(self) -> list[str]:
        """Destinations this federation sender has a transaction in flight to.

        In flight includes a request that waits between its retries
        (``long_retries``: 4 s, 16 s, then every minute, up to 10 times) and
        one stuck on a dead connection until Synapse's 60 s timeout; Synapse
        only backs the destination off once they all fail. Empty where this
        process does not send federation.
        """
        sender = self._hs.get_federation_sender()
        queues = getattr(sender, "_per_destination_queues", None)
        if not isinstance(queues, dict):
            return []
        return [
            str(destination)
            for destination, queue in list(queues.items())
            # Spelled exactly as the backed-off query's patterns match a name.
            if is_v6alt_server_name(str(destination), exact=True)
            and getattr(queue, "transmission_loop_running", False)
        ]


_BACKED_OFF_SQL: Final = """
SELECT destination FROM destinations
WHERE retry_interval > 0 AND retry_last_ts + retry_interval > ?
  AND (destination LIKE ? OR destination LIKE ?)
ORDER BY retry_last_ts
LIMIT ?
"""
# Bound as parameters: on PostgreSQL a literal % in the statement would be
# taken for a psycopg2 placeholder.
_V6ALT_PATTERNS: Final = ("%.v6.alt", "%.v6.alt:%")


def _backed_off_txn(txn: Any, now_ms: int, limit: int) -> list[str]:
    txn.execute(_BACKED_OFF_SQL, (now_ms, *_V6ALT_PATTERNS, limit))
    return [str(row[0]) for row in txn.fetchall()]


def _columns_txn(txn: Any) -> None:
    txn.execute(f"SELECT {', '.join(DESTINATIONS_COLUMNS)} FROM destinations WHERE 1 = 0")
    txn.fetchall()


def configured_server_name() -> str | None:
    """The ``server_name`` of the homeserver config Synapse is reading, or None.

    Called from the module's ``parse_config``: Synapse's config loader calls
    it from ``ModulesConfig.read_config(config)``, whose ``config`` is the
    whole homeserver.yaml as a dict. ``ModulesConfig`` is read before
    ``ServerConfig`` (checked on 1.100-1.163), so the raw dict is the only
    place the name is known then. Found by walking up the stack to that
    frame; None when parse_config is called any other way (tests, tools).
    An error raised in parse_config is printed by Synapse as one clean
    "Error in configuration" message, while one raised when the module is
    constructed ends start-up with a traceback.
    """
    import sys

    try:
        from synapse.config.modules import ModulesConfig
    except ImportError:
        return None
    code = getattr(ModulesConfig.read_config, "__code__", None)
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is code:
            config = frame.f_locals.get("config")
            name = config.get("server_name") if isinstance(config, dict) else None
            return name if isinstance(name, str) else None
        frame = frame.f_back  # type: ignore[assignment]
    return None


# Class-level wrapping: every instance, including those made later, goes
# through the wrapper. Idempotent: the original is kept on the class once (in
# ORIGINALS_ATTRIBUTE, where the contract's checks find Synapse's own method)
# and a second install replaces the wrapper instead of stacking one on another.


def wrap_method(cls: type, name: str, make_wrapper: Callable[[Any], Any]) -> None:
    """Replace ``cls.name`` by ``make_wrapper(original)``, keeping the original once."""
    originals: dict[str, Any] = cls.__dict__.get(ORIGINALS_ATTRIBUTE) or {}
    if name not in originals:
        original = getattr(cls, name, None)  # may be inherited
        if not callable(original):
            raise SynapseInternalsMissing([f"{cls.__qualname__}.{name} is missing"])
        originals[name] = original
        setattr(cls, ORIGINALS_ATTRIBUTE, originals)
    setattr(cls, name, make_wrapper(originals[name]))
    logger.debug("v6alt: wrapped %s.%s.%s", cls.__module__, cls.__qualname__, name)


def unwrap_method(cls: type, name: str) -> None:
    """Put the original method back (used by tests that load the module twice)."""
    originals: dict[str, Any] = cls.__dict__.get(ORIGINALS_ATTRIBUTE) or {}
    if name in originals:
        setattr(cls, name, originals.pop(name))


def install_federation_seams(
    options_for: Callable[[bytes, Callable[[], Any]], Any],
    skip_lookup: Callable[[bytes], bool],
) -> None:
    """Wrap TLS policy, .well-known and SRV for outbound federation."""
    from synapse.crypto.context_factory import FederationPolicyForHTTPS
    from synapse.http.federation.srv_resolver import SrvResolver
    from synapse.http.federation.well_known_resolver import (
        WellKnownLookupResult,
        WellKnownResolver,
    )

    def tls_wrapper(original: Any) -> Any:
        def get_options(self: Any, host: bytes) -> Any:
            return options_for(host, lambda: original(self, host))

        return get_options

    def well_known_wrapper(original: Any) -> Any:
        async def get_well_known(self: Any, server_name: bytes) -> Any:
            if skip_lookup(server_name):
                return WellKnownLookupResult(delegated_server=None)
            return await original(self, server_name)

        return get_well_known

    def srv_wrapper(original: Any) -> Any:
        async def resolve_service(self: Any, service_name: bytes) -> Any:
            # service_name is b"_matrix-fed._tcp.<host>" or b"_matrix._tcp.<host>"
            parts = service_name.split(b".", 2)
            if len(parts) == 3 and skip_lookup(parts[2]):
                return []
            return await original(self, service_name)

        return resolve_service

    wrap_method(FederationPolicyForHTTPS, "get_options", tls_wrapper)
    wrap_method(WellKnownResolver, "get_well_known", well_known_wrapper)
    wrap_method(SrvResolver, "resolve_service", srv_wrapper)


def install_inbound_seam(
    claimed_origins: Callable[[Any], list[str]], check_origin: Callable[..., None]
) -> None:
    """Wrap the X-Matrix authenticator: ``check_origin(origin, request, authenticated=)``
    raises to refuse.

    It runs on every origin the Authorization headers claim before Synapse
    verifies signatures (so no key fetch is made for a refused name) and on
    the origin Synapse authenticated.
    """
    from synapse.federation.transport.server._base import Authenticator

    def wrapper(original: Any) -> Any:
        async def authenticate_request(self: Any, request: Any, content: Any) -> str:
            for claimed in claimed_origins(request):
                check_origin(claimed, request, authenticated=False)
            origin: str = await original(self, request, content)
            check_origin(origin, request, authenticated=True)
            return origin

        return authenticate_request

    wrap_method(Authenticator, "authenticate_request", wrapper)


def install_key_seam(skip_notary: Callable[[str], bool]) -> None:
    """Never ask a notary (``trusted_key_servers``) about a server ``skip_notary`` names."""
    from synapse.crypto.keyring import PerspectivesKeyFetcher

    def wrapper(original: Any) -> Any:
        async def get_keys(
            self: Any, server_name: str, key_ids: list[str], minimum_valid_until_ts: int
        ) -> Any:
            if skip_notary(server_name):
                return {}
            return await original(self, server_name, key_ids, minimum_valid_until_ts)

        return get_keys

    wrap_method(PerspectivesKeyFetcher, "get_keys", wrapper)


def install_key_pin_seam(check_response: Callable[[str, Any], None]) -> None:
    """Before Synapse parses and stores a key response, ``check_response(from_server,
    response_json)`` may raise :func:`key_lookup_error` to refuse it: nothing is stored
    and Synapse treats the fetch as failed."""
    from synapse.crypto.keyring import BaseV2KeyFetcher

    def wrapper(original: Any) -> Any:
        async def process_v2_response(
            self: Any, from_server: str, response_json: Any, time_added_ms: int
        ) -> Any:
            check_response(from_server, response_json)
            return await original(self, from_server, response_json, time_added_ms)

        return process_v2_response

    wrap_method(BaseV2KeyFetcher, "process_v2_response", wrapper)


def key_lookup_error(message: str) -> Exception:
    from synapse.crypto.keyring import KeyLookupError

    return KeyLookupError(message)


def synapse_tls_verifier(tls_protocol: Any) -> Any:
    """Synapse's ConnectionVerifier on this TLS protocol (None for another creator)."""
    return getattr(tls_protocol, TLS_VERIFIER_ATTRIBUTE, None)


def replace_synapse_tls_verifier(tls_protocol: Any, verifier: Any) -> None:
    setattr(tls_protocol, TLS_VERIFIER_ATTRIBUTE, verifier)


__all__ = [
    "SynapseInternals",
    "configured_server_name",
    "install_federation_seams",
    "install_inbound_seam",
    "install_key_pin_seam",
    "install_key_seam",
    "key_lookup_error",
    "replace_synapse_tls_verifier",
    "require_internals",
    "synapse_tls_verifier",
    "unwrap_method",
    "wrap_method",
]
