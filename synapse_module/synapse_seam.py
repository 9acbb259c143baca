"""The one seam between the module and Synapse: every internal it touches.

Synapse's module API has no hook for destination lookup, TLS, the X-Matrix
origin or destination backoff, and modules load after the federation client
exists. So the module reaches into Synapse, and every such reach is here,
named in :data:`METHODS` or in :class:`SynapseInternals`, each with the
Synapse versions it was checked on. Nothing else in the package imports
Synapse internals.

At start-up :func:`require_internals` checks each of them on the running
Synapse (the methods exist with the parameters the wrappers pass, the
homeserver attributes are there, Synapse's TLS connection creator still
hangs its verifier on the TLS protocol) and refuses to start with one line
per missing piece, instead of degrading silently; a Synapse outside
:data:`TESTED_VERSIONS` only gets a warning. The contract test
(``tests/synapse_module/test_synapse_seam.py``) runs the same checks, and
checks the ``destinations`` table, in every ``synapse-*`` tox env, so a new
Synapse release that moves one of them shows up as a failing env.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

logger = logging.getLogger("v6alt.synapse_module")

#: The Synapse releases the module is tested on (tox.ini's synapse-* envs), inclusive.
TESTED_VERSIONS: Final = ((1, 100), (1, 163))
#: Where the module's wrappers keep the methods they replaced, on each class.
_ORIGINALS: Final = "_v6alt_originals"
#: Synapse's SSLClientConnectionCreator sets its ConnectionVerifier on the TLS
#: protocol under this name; its SSL context's info callback calls the
#: verifier's ``verify_context_info_cb`` (checked on 1.100-1.163).
TLS_VERIFIER_ATTRIBUTE: Final = "_synapse_tls_verifier"
#: Columns of Synapse's ``destinations`` table read by the backoff recovery
#: (checked on 1.100-1.163).
DESTINATIONS_COLUMNS: Final = ("destination", "retry_last_ts", "retry_interval")


@dataclass(frozen=True)
class Method:
    """A Synapse method the module wraps or calls, with the parameters it passes."""

    module: str
    qualname: str
    parameters: tuple[str, ...]  # after self; "*" stands for *args, "**" for **kwargs
    use: str
    checked_on: str = "1.100-1.163"

    @property
    def name(self) -> str:
        return f"{self.module}.{self.qualname}"


#: Every Synapse method the module wraps (class level) or calls.
METHODS: Final = (
    Method(
        "synapse.crypto.context_factory",
        "FederationPolicyForHTTPS.get_options",
        ("host",),
        "wrapped: TLS options and refusals for outbound federation",
    ),
    Method(
        "synapse.crypto.context_factory",
        "ConnectionVerifier.verify_context_info_cb",
        ("ssl_connection", "where"),
        "called: Synapse's own host name check, kept for DNS names",
    ),
    Method(
        "synapse.http.federation.well_known_resolver",
        "WellKnownResolver.get_well_known",
        ("server_name",),
        "wrapped: no .well-known fetch for a v6.alt name",
    ),
    Method(
        "synapse.http.federation.well_known_resolver",
        "WellKnownLookupResult",
        ("delegated_server",),
        "built: the 'no delegation' answer",
    ),
    Method(
        "synapse.http.federation.srv_resolver",
        "SrvResolver.resolve_service",
        ("service_name",),
        "wrapped: no SRV query for a v6.alt name",
    ),
    Method(
        "synapse.federation.transport.server._base",
        "Authenticator.authenticate_request",
        ("request", "content"),
        "wrapped: inbound X-Matrix origin checks",
    ),
    Method(
        "synapse.crypto.keyring",
        "PerspectivesKeyFetcher.get_keys",
        ("server_name", "key_ids", "minimum_valid_until_ts"),
        "wrapped: no notary asked about a v6.alt server",
    ),
    Method(
        "synapse.config.modules",
        "ModulesConfig.read_config",
        ("config", "**"),
        "inspected: the raw homeserver config (its server_name) while the module's "
        "config is parsed, so a bad server_name is a config error",
    ),
    Method(
        "synapse.crypto.keyring",
        "BaseV2KeyFetcher.process_v2_response",
        ("from_server", "response_json", "time_added_ms"),
        "wrapped: a v6.alt server's key response judged against its pinned keys",
    ),
    Method(
        "synapse.storage.databases.main.transactions",
        "TransactionWorkerStore.set_destination_retry_timings",
        ("destination", "failure_ts", "retry_last_ts", "retry_interval"),
        "called: clear the backoff of a destination found reachable",
    ),
    Method(
        "synapse.notifier",
        "Notifier.notify_remote_server_up",
        ("server",),
        "called: wake the federation sender for that destination",
    ),
    Method("synapse.server", "HomeServer.should_send_federation", (), "called: probe or not"),
    Method("synapse.server", "HomeServer.get_reactor", (), "called"),
    Method("synapse.server", "HomeServer.get_clock", (), "called"),
    Method("synapse.server", "HomeServer.get_datastores", (), "called"),
    Method("synapse.server", "HomeServer.get_notifier", (), "called"),
    Method(
        "synapse.server",
        "HomeServer.get_federation_sender",
        (),
        "called: which destinations have a transaction in flight (the recovery)",
    ),
    # Public module API, listed because the module depends on their parameters.
    Method(
        "synapse.module_api",
        "ModuleApi.looping_background_call",
        ("f", "msec", "*", "desc", "run_on_all_instances", "**"),
        "called: the recovery's probe rounds",
    ),
    Method(
        "synapse.module_api",
        "ModuleApi.run_db_interaction",
        ("desc", "func", "*", "**"),
        "called: the recovery's query of the destinations table",
    ),
)

#: Homeserver attributes read at start-up (attribute paths on ``ModuleApi._hs``).
HOMESERVER_ATTRIBUTES: Final = (
    "hostname",
    "config.server.federation_ip_range_blocklist",
    "config.server.federation_ip_range_allowlist",
    "config.tls.federation_client_minimum_tls_version",
    "config.key.key_servers",
    "config.media.media_store_path",
)

#: Instance attributes the recovery reads, set in each class's ``__init__``
#: (module, class, attribute, use; checked on 1.100-1.163).
INSTANCE_ATTRIBUTES: Final = (
    (
        "synapse.federation.sender",
        "FederationSender",
        "_per_destination_queues",
        "read: the per-destination queues of this federation sender",
    ),
    (
        "synapse.federation.sender.per_destination_queue",
        "PerDestinationQueue",
        "transmission_loop_running",
        "read: a transaction to that destination is in flight (or retrying)",
    ),
)

#: Exception classes the module raises inside Synapse's own code paths.
EXCEPTIONS: Final = (
    (
        "synapse.crypto.keyring",
        "KeyLookupError",
        "raised: a key response refused by a pin (Synapse logs it as a failed fetch)",
    ),
)


class SynapseInternalsMissing(Exception):
    """The running Synapse lacks an internal the module needs (one line each)."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


def synapse_version() -> str:
    import synapse

    return str(getattr(synapse, "__version__", "unknown"))


def version_tested(version: str) -> bool:
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        return False
    low, high = TESTED_VERSIONS
    return low <= (major, minor) <= high


def tested_range_text() -> str:
    (a, b), (c, d) = TESTED_VERSIONS
    return f"{a}.{b} to {c}.{d}"


def _resolve(method: Method) -> Any:
    target: Any = importlib.import_module(method.module)
    for part in method.qualname.split("."):
        target = getattr(target, part)
    # A method the module wrapped earlier in this process: check Synapse's own.
    owner_name, _, attribute = method.qualname.rpartition(".")
    if owner_name:
        owner = importlib.import_module(method.module)
        for part in owner_name.split("."):
            owner = getattr(owner, part)
        originals = owner.__dict__.get(_ORIGINALS) or {}
        target = originals.get(attribute, target)
    return target


def _parameter_shape(target: Any) -> tuple[str, ...]:
    signature = inspect.signature(target)
    shape = []
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            shape.append("*")
        elif parameter.kind is inspect.Parameter.VAR_KEYWORD:
            shape.append("**")
        else:
            shape.append(parameter.name)
    if shape and shape[0] == "self":
        shape = shape[1:]
    return tuple(shape)


def method_problem(method: Method) -> str | None:
    """Why ``method`` is not as the module expects, or None."""
    try:
        target = _resolve(method)
    except (ImportError, AttributeError) as e:
        return f"{method.name} is missing ({e})"
    if not callable(target):
        return f"{method.name} is not callable"
    try:
        shape = _parameter_shape(target)
    except (TypeError, ValueError) as e:
        return f"{method.name}: signature unreadable ({e})"
    if shape != method.parameters:
        return (
            f"{method.name} takes ({', '.join(shape)}), "
            f"the module expects ({', '.join(method.parameters)})"
        )
    return None


def tls_verifier_problem(config: Any) -> str | None:
    """Whether Synapse's TLS creator still sets its verifier on the TLS protocol.

    Builds Synapse's own federation TLS policy from the homeserver config and
    asks it for one connection object (no network): without the attribute the
    handshake-time peer check could not keep Synapse's host name check.
    """
    try:
        from synapse.crypto.context_factory import FederationPolicyForHTTPS

        policy = FederationPolicyForHTTPS(config)
        get_options = original_method(FederationPolicyForHTTPS, "get_options")
        creator = get_options(policy, b"seam-check.invalid")

        class TlsProtocolStandIn:
            pass

        stand_in = TlsProtocolStandIn()
        creator.clientConnectionForTLS(stand_in)
    except Exception as e:
        return f"Synapse's federation TLS policy could not be probed ({e!r})"
    verifier = getattr(stand_in, TLS_VERIFIER_ATTRIBUTE, None)
    if not callable(getattr(verifier, "verify_context_info_cb", None)):
        return (
            "Synapse's TLS connection creator no longer sets "
            f"{TLS_VERIFIER_ATTRIBUTE}.verify_context_info_cb on the TLS protocol"
        )
    return None


def exception_problem(module: str, name: str) -> str | None:
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        return f"{module}.{name} is missing ({e})"
    if not (isinstance(found, type) and issubclass(found, Exception)):
        return f"{module}.{name} is not an exception class"
    return None


def instance_attribute_problem(module: str, cls: str, attribute: str) -> str | None:
    """Whether ``cls.__init__`` still sets ``self.<attribute>``."""
    try:
        init = getattr(importlib.import_module(module), cls).__init__
        source = inspect.getsource(init)
    except (ImportError, AttributeError, OSError, TypeError) as e:
        return f"{module}.{cls}.__init__ could not be read ({e})"
    if f"self.{attribute}" not in source:
        return f"{module}.{cls} no longer sets {attribute}"
    return None


def _attribute(root: Any, path: str) -> Any:
    value = root
    for part in path.split("."):
        value = getattr(value, part)
    return value


def internals_problems(hs: Any | None) -> list[str]:
    """Every internal that is missing or changed; ``hs`` None checks only the code."""
    problems = [p for p in map(method_problem, METHODS) if p is not None]
    problems += [p for m, n, _ in EXCEPTIONS if (p := exception_problem(m, n)) is not None]
    problems += [
        p
        for m, c, a, _ in INSTANCE_ATTRIBUTES
        if (p := instance_attribute_problem(m, c, a)) is not None
    ]
    if hs is not None:
        for path in HOMESERVER_ATTRIBUTES:
            try:
                _attribute(hs, path)
            except AttributeError:
                problems.append(f"the homeserver has no {path}")
        tls = tls_verifier_problem(hs.config)
        if tls is not None:
            problems.append(tls)
    return problems


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
            if _is_v6alt_destination(str(destination))
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


def _is_v6alt_destination(destination: str) -> bool:
    """The same test as :data:`_V6ALT_PATTERNS` (a name, or a name with a port)."""
    host = destination.rsplit(":", 1)[0] if ":" in destination else destination
    return host.endswith(".v6.alt")


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


# Errors, from the public module API (synapse.module_api.errors, 1.100-1.163).


def config_error(message: str, path: Sequence[str]) -> Exception:
    from synapse.module_api.errors import ConfigError

    return ConfigError(message, path=list(path) or None)


def http_errors() -> tuple[type[Exception], Any]:
    """Synapse's ``SynapseError`` and ``Codes``, for refusing a request."""
    from synapse.module_api.errors import Codes, SynapseError

    return SynapseError, Codes


async def yieldable(deferred: Any) -> Any:
    """Await a Twisted Deferred under Synapse's logcontext rules."""
    from synapse.module_api import make_deferred_yieldable

    return await make_deferred_yieldable(deferred)


# Class-level wrapping: every instance, including those made later, goes
# through the wrapper. Idempotent: the original is kept on the class once and
# a second install replaces the wrapper instead of stacking one on another.


def original_method(cls: type, name: str) -> Any:
    originals: dict[str, Any] = cls.__dict__.get(_ORIGINALS) or {}
    return originals.get(name, getattr(cls, name))


def wrap_method(cls: type, name: str, make_wrapper: Callable[[Any], Any]) -> None:
    """Replace ``cls.name`` by ``make_wrapper(original)``, keeping the original once."""
    originals: dict[str, Any] = cls.__dict__.get(_ORIGINALS) or {}
    if name not in originals:
        original = getattr(cls, name, None)  # may be inherited
        if not callable(original):
            raise SynapseInternalsMissing([f"{cls.__qualname__}.{name} is missing"])
        originals[name] = original
        setattr(cls, _ORIGINALS, originals)
    setattr(cls, name, make_wrapper(originals[name]))
    logger.debug("v6alt: wrapped %s.%s.%s", cls.__module__, cls.__qualname__, name)


def unwrap_method(cls: type, name: str) -> None:
    """Put the original method back (used by tests that load the module twice)."""
    originals: dict[str, Any] = cls.__dict__.get(_ORIGINALS) or {}
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


def synapse_tls_verifier(tls_protocol: Any) -> Any:
    """Synapse's ConnectionVerifier on this TLS protocol (None for another creator)."""
    return getattr(tls_protocol, TLS_VERIFIER_ATTRIBUTE, None)


def replace_synapse_tls_verifier(tls_protocol: Any, verifier: Any) -> None:
    setattr(tls_protocol, TLS_VERIFIER_ATTRIBUTE, verifier)


__all__ = [
    "DESTINATIONS_COLUMNS",
    "EXCEPTIONS",
    "HOMESERVER_ATTRIBUTES",
    "INSTANCE_ATTRIBUTES",
    "METHODS",
    "TESTED_VERSIONS",
    "TLS_VERIFIER_ATTRIBUTE",
    "Method",
    "SynapseInternals",
    "SynapseInternalsMissing",
    "config_error",
    "http_errors",
    "install_federation_seams",
    "install_inbound_seam",
    "install_key_pin_seam",
    "install_key_seam",
    "instance_attribute_problem",
    "internals_problems",
    "key_lookup_error",
    "method_problem",
    "original_method",
    "replace_synapse_tls_verifier",
    "require_internals",
    "signed_by_key",
    "synapse_tls_verifier",
    "synapse_version",
    "tls_verifier_problem",
    "unwrap_method",
    "version_tested",
    "wrap_method",
]
