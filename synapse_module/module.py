"""The Synapse module class: validates the config and wires the adapters.

homeserver.yaml::

    modules:
      - module: v6alt.synapse_module.V6AltFederation
        config: {}          # the v6alt config schema (docs/config.md)

Every decision is made by :mod:`v6alt.policy` and :mod:`v6alt.names`; this
class only connects them to Synapse, through the one seam that holds every
reach into Synapse's internals (:mod:`.synapse_seam`; each internal is named
and checked in :mod:`.synapse_contract`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from v6alt.codec import encode
from v6alt.config import Config, ConfigError, parse_config
from v6alt.config_warnings import config_warnings
from v6alt.errors import V6AltNameError, excerpt
from v6alt.names import is_v6alt, is_v6alt_server_name, parse_matrix_server_name
from v6alt.policy import Policy

from .inbound import InboundGate, claimed_origins
from .metrics import ModuleMetrics
from .outbound import OutboundJudge, SynapseBlocklist
from .pinning import PinGuard, default_pin_file, pinning_may_apply
from .probe_scheduler import ProbeLimits
from .recovery import BackoffRecovery
from .resolver import install_resolver
from .synapse_contract import (
    SynapseInternalsMissing,
    internals_problems,
    synapse_version,
    tested_range_text,
)
from .synapse_seam import (
    SynapseInternals,
    configured_server_name,
    install_federation_seams,
    install_inbound_seam,
    install_key_pin_seam,
    install_key_seam,
    require_internals,
)
from .tls import FederationTls, peer_bound_context

logger = logging.getLogger("v6alt.synapse_module")


def config_error(message: str, path: Sequence[str]) -> Exception:
    """Synapse's ``ConfigError`` (public module API), naming the key path."""
    from synapse.module_api.errors import ConfigError as SynapseConfigError

    return SynapseConfigError(message, path=list(path) or None)


def _synapse_config_error(error: ConfigError) -> Exception:
    # Synapse names list items "<item N>" in its own config paths.
    path = [part if isinstance(part, str) else f"<item {part}>" for part in error.path]
    return config_error(f"v6alt: {error.reason}", path)


def skip_lookup(host: bytes) -> bool:
    """No DNS-based lookup (.well-known, SRV) is ever made for a v6.alt host."""
    text = host.decode("ascii", "replace")
    if is_v6alt(text):
        logger.debug("v6alt: no .well-known/SRV lookup for %s", text)
        return True
    return False


def skip_notary(server_name: str) -> bool:
    """Keys of a v6.alt server come from the server itself, never from a notary."""
    if is_v6alt_server_name(server_name):
        logger.debug("v6alt: keys of %s fetched directly, not from a notary", server_name)
        return True
    return False


def _warn_about_notaries(synapse: SynapseInternals) -> None:
    names = [n for n in synapse.key_server_names() if not is_v6alt_server_name(n)]
    if names:
        logger.warning(
            "v6alt: trusted_key_servers names %s: a host that reaches only the mesh cannot "
            "reach them, and every key fetch first waits for them to fail; "
            "set `trusted_key_servers: []` on mesh-only hosts",
            ", ".join(names),
        )


def _no_key_pins(from_server: str, response_json: Any) -> None:
    return None


def own_name_problem(hostname: str) -> str | None:
    """Why this homeserver's own ``server_name`` cannot be a v6.alt identity, or None."""
    if not is_v6alt_server_name(hostname):
        return None
    try:
        own = parse_matrix_server_name(hostname)
    except V6AltNameError as e:
        return f"v6alt: server_name {excerpt(hostname)} is not a v6.alt name: {e}"
    if own.canonical:
        return None
    assert own.ipv6 is not None
    canonical = ".".join([*(s.lower() for s in own.subdomains), encode(own.ipv6)])
    port = f":{own.port}" if own.port is not None else ""
    return (
        f"v6alt: server_name {hostname!r} is not the canonical v6.alt name of {own.ipv6}; "
        f"other servers would refuse it: use {canonical}{port}"
    )


class V6AltFederation:
    """Federation with ``<label>.v6.alt`` server names (see docs/synapse.md)."""

    def __init__(self, config: Config, api: Any) -> None:
        synapse = self._require_internals(api)
        self.config = config
        self._check_own_name(synapse.server_name)
        self.policy = Policy(config)
        # prometheus_client's default registry, which Synapse serves (docs/metrics.md).
        self.metrics = ModuleMetrics(synapse.server_name)
        blocklist = SynapseBlocklist(
            synapse.federation_ip_blocklist, synapse.federation_ip_allowlist
        )
        self.judge = OutboundJudge(self.policy, blocklist, self.metrics)
        self.resolver = install_resolver(synapse.reactor, self.judge)
        self.tls = FederationTls(
            self.judge, peer_bound_context(synapse.minimum_tls_version), self.metrics
        )
        self.pins = self._start_pinning(config, self.policy, synapse, self.metrics)
        options_for: Callable[[bytes, Callable[[], Any]], Any] = self.tls.options_for
        if self.pins is not None:
            options_for = self.pins.wrap_options(options_for)
        install_federation_seams(options_for, skip_lookup)
        self.inbound = InboundGate(config.synapse.inbound_ip_binding, self.metrics)
        install_inbound_seam(claimed_origins, self.inbound.check)
        install_key_seam(skip_notary)
        install_key_pin_seam(
            self.pins.check_key_response if self.pins is not None else _no_key_pins
        )
        limits = ProbeLimits(
            rate=config.synapse.recovery_probe_rate,
            period=config.synapse.recovery_probe_interval,
        )
        self.recovery = BackoffRecovery(synapse, self.judge, self.metrics, limits)
        probing = self.recovery.start()
        _warn_about_notaries(synapse)
        logger.info(
            "v6alt: federation with .v6.alt names enabled (ip_bound_trust=%s, %d secure "
            "range(s), inbound_ip_binding=%s, backoff recovery probes: %s)",
            config.ip_bound_trust,
            len(config.secure_ranges),
            config.synapse.inbound_ip_binding,
            "on" if probing else "off (this process does not send federation)",
        )

    @staticmethod
    def _start_pinning(
        config: Config, policy: Policy, synapse: SynapseInternals, metrics: ModuleMetrics
    ) -> PinGuard | None:
        for warning in config_warnings(config):
            logger.warning("v6alt: config: %s (docs/security.md)", warning)
        if not pinning_may_apply(policy):
            logger.info("v6alt: pinning is off everywhere (pinning.default: off)")
            return None
        path = config.pinning.file or default_pin_file(synapse.media_store_path)
        guard = PinGuard(policy, path, metrics)
        problem = guard.check_start()
        if problem is not None:
            logger.error("v6alt: cannot keep pins: %s", problem)
            raise config_error(
                f"v6alt: pinning.file: {problem}. Pins of v6.alt peers outside 200::/8 and "
                "fc00::/8 must be kept (docs/security.md): fix the file or its directory, set "
                "pinning.file, or turn pinning off explicitly (pinning.default: off)",
                ["modules"],
            )
        logger.info(
            "v6alt: pins of v6.alt peers in %s (pinning.default: %s; off in 200::/8 and fc00::/8)",
            guard.path,
            config.pinning.default,
        )
        return guard

    @staticmethod
    def _require_internals(api: Any) -> SynapseInternals:
        try:
            return require_internals(api)
        except SynapseInternalsMissing as e:
            raise V6AltFederation._missing_internals_error(e) from None

    @staticmethod
    def _missing_internals_error(e: SynapseInternalsMissing) -> Exception:
        logger.error("v6alt: cannot start on Synapse %s: %s", synapse_version(), e)
        return config_error(
            f"v6alt: this Synapse ({synapse_version()}) lacks internals the module needs "
            f"for v6.alt federation: {e}. The module is tested on Synapse "
            f"{tested_range_text()}; use one of those, or a v6alt release that supports "
            "this Synapse",
            ["modules"],
        )

    @staticmethod
    def _check_own_name(hostname: str) -> None:
        # Normally refused in parse_config already (a clean config error); here
        # for a module constructed without Synapse's config loader.
        problem = own_name_problem(hostname)
        if problem is not None:
            raise config_error(problem, ["server_name"])

    @staticmethod
    def parse_config(config: object) -> Config:
        try:
            parsed = parse_config(config)
        except ConfigError as e:
            raise _synapse_config_error(e) from None
        # Synapse prints an error raised here as one "Error in configuration"
        # message; raised from __init__ it would end start-up with a traceback.
        # So whatever can be checked before the homeserver exists is checked
        # here: the Synapse methods the module needs, and the own server name.
        missing = internals_problems(None)
        if missing:
            raise V6AltFederation._missing_internals_error(SynapseInternalsMissing(missing))
        own = configured_server_name()
        problem = own_name_problem(own) if own is not None else None
        if problem is not None:
            raise config_error(problem, [])
        return parsed

    def __repr__(self) -> str:
        return "V6AltFederation()"
