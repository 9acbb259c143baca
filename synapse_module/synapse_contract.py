"""What the module needs from Synapse, and the check that the running Synapse has it.

Every Synapse internal the module touches is named here, with the Synapse
versions it was checked on: the methods it wraps or calls (:data:`METHODS`),
the homeserver and instance attributes it reads, the exception it raises
inside Synapse's code, the TLS verifier attribute and the ``destinations``
columns. :mod:`.synapse_seam` is the only code that uses them.

At start-up :func:`internals_problems` checks each of them on the running
Synapse (the methods exist with the parameters the wrappers pass, the
homeserver attributes are there, Synapse's TLS connection creator still
hangs its verifier on the TLS protocol), so the module refuses to start with
one line per missing piece instead of degrading silently; a Synapse outside
:data:`TESTED_VERSIONS` only gets a warning. The contract test
(``tests/synapse_module/test_synapse_seam.py``) runs the same checks, and
checks the ``destinations`` table, in every ``synapse-*`` tox env, so a new
Synapse release that moves one of them shows up as a failing env.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

#: The Synapse releases the module is tested on (tox.ini's synapse-* envs), inclusive.
TESTED_VERSIONS: Final = ((1, 100), (1, 163))
#: Where the seam's wrappers keep, on each class, the Synapse methods they
#: replaced: the checks look past the module's own wrappers at Synapse's.
ORIGINALS_ATTRIBUTE: Final = "_v6alt_originals"
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


def original_method(cls: type, name: str) -> Any:
    """Synapse's own ``cls.name``, also after the seam wrapped it."""
    originals: dict[str, Any] = cls.__dict__.get(ORIGINALS_ATTRIBUTE) or {}
    return originals.get(name, getattr(cls, name))


def _resolve(method: Method) -> Any:
    owner: Any = importlib.import_module(method.module)
    *path, name = method.qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    # A method the module wrapped earlier in this process: check Synapse's own.
    return original_method(owner, name)


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


__all__ = [
    "DESTINATIONS_COLUMNS",
    "EXCEPTIONS",
    "HOMESERVER_ATTRIBUTES",
    "INSTANCE_ATTRIBUTES",
    "METHODS",
    "ORIGINALS_ATTRIBUTE",
    "TESTED_VERSIONS",
    "TLS_VERIFIER_ATTRIBUTE",
    "Method",
    "SynapseInternalsMissing",
    "exception_problem",
    "instance_attribute_problem",
    "internals_problems",
    "method_problem",
    "original_method",
    "synapse_version",
    "tested_range_text",
    "tls_verifier_problem",
    "version_tested",
]
