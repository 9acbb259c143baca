"""The one config schema of the Synapse module and the sidecar.

The data is a YAML mapping: the module's ``config:`` mapping in
homeserver.yaml, or the sidecar's YAML file. :func:`parse_config` validates
already-parsed data, :func:`load_config` reads a file. Every problem raises
:class:`ConfigError` naming the key path (``ranges.allow[1]``) and the reason;
unknown keys are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv6Network
from typing import Any, Final, Literal

from . import config_fields as fields
from .config_fields import ConfigError, ConfigPath, Endpoint, format_path
from .ipranges import GLOBAL_UNICAST, YGGDRASIL, never_dial_containing
from .yaml_file import read_yaml_file

TlsMode = Literal["required", "off"]
InboundIpBinding = Literal["off", "log", "enforce"]
PinningMode = Literal["enforce", "warn", "off"]

__all__ = [
    "DEFAULT_CONFIG_YAML",
    "Config",
    "ConfigError",
    "ConfigPath",
    "PinningMode",
    "PinningSettings",
    "RangeSettings",
    "SecureRange",
    "SidecarLimits",
    "SidecarSettings",
    "SynapseSettings",
    "check_unsafe_allow",
    "format_path",
    "load_config",
    "parse_config",
]


@dataclass(frozen=True)
class SecureRange:
    """Per-CIDR transport settings; the most specific range wins.

    ``trust_any_certificate``: True accepts any certificate from a peer in the
    range, False demands a CA-signed one (also for a v6.alt name at its own
    address), None (not written) lifts nothing: the trust is what it would be
    outside any secure range. ``pinning`` None (not written): the built-in
    default of the address (see :class:`PinningSettings`).
    """

    network: IPv6Network
    tls: TlsMode = "required"
    trust_any_certificate: bool | None = None
    pinning: PinningMode | None = None


@dataclass(frozen=True)
class RangeSettings:
    allow: tuple[IPv6Network, ...] = (YGGDRASIL, GLOBAL_UNICAST)
    cjdns: bool = False
    unsafe_allow: tuple[IPv6Network, ...] = ()


@dataclass(frozen=True)
class SynapseSettings:
    """``recovery_probe_rate``: connection attempts per second of the recovery
    probes, over all peers; ``recovery_probe_interval``: seconds between two
    probes of one peer while the rate allows (docs/synapse.md, "Peers that come back")."""

    inbound_ip_binding: InboundIpBinding = "log"
    recovery_probe_rate: int = 300
    recovery_probe_interval: float = 2.0


@dataclass(frozen=True)
class PinningSettings:
    """Trust on first use for v6.alt peers trusted by their address.

    ``default`` applies to addresses outside 200::/8 (Yggdrasil nodes) and
    fc00::/8 (cjdns), where pinning is off (the address is derived from the
    node's key), so also to Yggdrasil's routed 300::/8 subnets; a secure
    range's own ``pinning`` overrides both. ``file`` is the pin
    store; None: the adapter's default place (Synapse: beside its data, the
    sidecar: ``/var/lib/v6alt/xmpp-pins.json``).
    """

    default: PinningMode = "enforce"
    file: str | None = None


@dataclass(frozen=True)
class SidecarLimits:
    """What one client may hold of the sidecar (docs/dns.md, "Limits").

    DNS over TCP: ``tcp_connections`` open at once and
    ``tcp_connections_per_address`` from one address (a new connection over
    either closes the one that has gone longest without a complete query);
    ``tcp_idle_timeout`` seconds between queries and ``tcp_query_timeout``
    seconds for the bytes of one query, from its first byte. The lookup
    service: ``lookup_connections`` open at once (the same eviction),
    ``lookup_request_timeout`` seconds and ``lookup_request_bytes`` bytes for
    a request's line and headers. ``log_lines_per_minute``: refused and
    malformed DNS queries logged per minute, whatever the queries say.
    """

    tcp_connections: int = 256
    tcp_connections_per_address: int = 64
    tcp_idle_timeout: float = 10.0
    tcp_query_timeout: float = 5.0
    lookup_connections: int = 64
    lookup_request_timeout: float = 5.0
    lookup_request_bytes: int = 8192
    log_lines_per_minute: int = 20


@dataclass(frozen=True)
class SidecarSettings:
    dns_listen: Endpoint = ("::1", 5353)
    lookup_listen: Endpoint = ("::1", 5380)
    forwarders: tuple[Endpoint, ...] = ()
    limits: SidecarLimits = field(default_factory=SidecarLimits)


@dataclass(frozen=True)
class Config:
    ranges: RangeSettings = field(default_factory=RangeSettings)
    ip_bound_trust: bool = True
    secure_ranges: tuple[SecureRange, ...] = ()
    pinning: PinningSettings = field(default_factory=PinningSettings)
    synapse: SynapseSettings = field(default_factory=SynapseSettings)
    sidecar: SidecarSettings = field(default_factory=SidecarSettings)

    def to_dict(self) -> dict[str, Any]:
        """Plain data in the YAML schema; ``parse_config(c.to_dict()) == c``."""
        return {
            "ranges": {
                "allow": [str(n) for n in self.ranges.allow],
                "cjdns": self.ranges.cjdns,
                "unsafe_allow": [str(n) for n in self.ranges.unsafe_allow],
            },
            "ip_bound_trust": self.ip_bound_trust,
            "secure_ranges": [secure_range_dict(r) for r in self.secure_ranges],
            "pinning": {"default": self.pinning.default, "file": self.pinning.file},
            "synapse": {
                "inbound_ip_binding": self.synapse.inbound_ip_binding,
                "recovery_probe_rate": self.synapse.recovery_probe_rate,
                "recovery_probe_interval": self.synapse.recovery_probe_interval,
            },
            "sidecar": {
                "dns_listen": fields.format_endpoint(self.sidecar.dns_listen),
                "lookup_listen": fields.format_endpoint(self.sidecar.lookup_listen),
                "forwarders": [fields.format_endpoint(f) for f in self.sidecar.forwarders],
                "limits": {name: getattr(self.sidecar.limits, name) for name in _LIMIT_RANGES},
            },
        }


def secure_range_dict(secure: SecureRange) -> dict[str, Any]:
    """A secure range as written in the schema; keys left unset are left out."""
    data: dict[str, Any] = {"cidr": str(secure.network), "tls": secure.tls}
    if secure.trust_any_certificate is not None:
        data["trust_any_certificate"] = secure.trust_any_certificate
    if secure.pinning is not None:
        data["pinning"] = secure.pinning
    return data


DEFAULT_CONFIG_YAML: Final = """\
# v6alt configuration: the Synapse module's `config:` mapping in
# homeserver.yaml, or the sidecar's YAML file. Every key is optional;
# the values below are the defaults.
ranges:
  # Where v6.alt names (and IP literals that v6alt judges) may point:
  # 200::/7 is Yggdrasil, 2000::/3 is global unicast. The never-dial
  # ranges inside them (documentation, Teredo, ...) stay refused.
  allow: ["200::/7", "2000::/3"]
  # true adds fc00::/8 (cjdns) to allow; fd00::/8 (ULA) stays never-dial.
  cjdns: false
  # CIDRs lifted out of the never-dial list, for labs and loopback demos.
  # Each must lie inside a never-dial range. Logged as a warning.
  unsafe_allow: []
# A v6.alt name dialled at the very address it encodes is trusted without
# a CA-signed certificate: the address is the identity.
ip_bound_trust: true
# Per-CIDR transport settings, the most specific CIDR wins, e.g.
#   - cidr: "200:1234::/32"
#     tls: required              # required | off (v6.alt names and IPv6
#                                # literals only; never relaxes a TLS check)
#     trust_any_certificate: true   # not written: the range lifts no check
#     pinning: warn              # not written: the default of the address
secure_ranges: []
pinning:
  # Trust on first use for v6.alt peers trusted by their address: the first
  # TLS key (and, for Matrix, signing keys) seen is remembered; a later
  # different key is refused (enforce), logged (warn) or ignored (off).
  # This is the mode everywhere but 200::/8 (Yggdrasil nodes) and fc00::/8
  # (cjdns), where it is off (the address is derived from the node's key);
  # Yggdrasil's routed 300::/8 subnets get this mode too (any host on the
  # subnet's LAN can take its addresses). A secure range's pinning
  # overrides both. enforce | warn | off
  default: enforce
  # The pin store (a JSON file). null: Synapse keeps it beside its data
  # (v6alt-pins.json next to the media store), the sidecar in
  # /var/lib/v6alt/xmpp-pins.json.
  file: null
synapse:
  # Inbound federation: does a v6.alt server's request come from the
  # address its name encodes? off | log | enforce
  inbound_ip_binding: log
  # Peers that are unreachable (backed off, or a transaction retrying) are
  # probed with a bare TCP connect: at most this many connection attempts
  # per second in all, each peer every recovery_probe_interval seconds, or
  # every (peers / rate) seconds when there are more (docs/synapse.md).
  recovery_probe_rate: 300
  recovery_probe_interval: 2
sidecar:
  # Where the sidecar answers DNS queries (host:port, IPv6 in brackets).
  dns_listen: "[::1]:5353"
  # Where the sidecar serves its local lookup API.
  lookup_listen: "[::1]:5380"
  # Upstream DNS servers ("host:port") for names outside .v6.alt.
  forwarders: []
  # What one client may hold (docs/dns.md, "Limits"). A new connection
  # over a limit closes the one that has gone longest without a complete
  # query (or request).
  limits:
    # DNS over TCP: connections at once, and from one address.
    tcp_connections: 256
    tcp_connections_per_address: 64
    # Seconds a DNS-over-TCP connection may wait between queries, and
    # may take for the bytes of one query (from its first byte).
    tcp_idle_timeout: 10
    tcp_query_timeout: 5
    # Lookup service: connections at once; seconds and bytes for the
    # request line and headers (a request body is always refused).
    lookup_connections: 64
    lookup_request_timeout: 5
    lookup_request_bytes: 8192
    # Refused and malformed DNS queries logged per minute, in all.
    log_lines_per_minute: 20
"""


# --- the schema -----------------------------------------------------------

_TOP_KEYS: Final = (
    "ranges",
    "ip_bound_trust",
    "secure_ranges",
    "pinning",
    "synapse",
    "sidecar",
)
_RANGE_KEYS: Final = ("allow", "cjdns", "unsafe_allow")
_SECURE_KEYS: Final = ("cidr", "tls", "trust_any_certificate", "pinning")
_PINNING_KEYS: Final = ("default", "file")
_PINNING_MODES: Final = ("enforce", "warn", "off")
_SYNAPSE_KEYS: Final = ("inbound_ip_binding", "recovery_probe_rate", "recovery_probe_interval")
_SIDECAR_KEYS: Final = ("dns_listen", "lookup_listen", "forwarders", "limits")
#: Each limit: (kind, lowest, highest). Seconds may be fractions.
_LIMIT_RANGES: Final[dict[str, tuple[str, float, float]]] = {
    "tcp_connections": ("count", 1, 65536),
    "tcp_connections_per_address": ("count", 1, 65536),
    "tcp_idle_timeout": ("seconds", 0.1, 3600),
    "tcp_query_timeout": ("seconds", 0.1, 3600),
    "lookup_connections": ("count", 1, 65536),
    "lookup_request_timeout": ("seconds", 0.1, 3600),
    "lookup_request_bytes": ("count", 256, 1 << 20),
    "log_lines_per_minute": ("count", 1, 100_000),
}
_TLS_MODES: Final = ("required", "off")
_BINDING_MODES: Final = ("off", "log", "enforce")


def check_unsafe_allow(network: IPv6Network, path: ConfigPath) -> None:
    """Refuse an unsafe_allow entry that does not lie inside a never-dial range."""
    if never_dial_containing(network) is None:
        raise ConfigError(
            path,
            f"'{network}' is not inside a never-dial range; unsafe_allow only lifts "
            "never-dial ranges (loopback, ULA, ...), use ranges.allow for other addresses",
        )


def _parse_ranges(value: object, path: ConfigPath) -> RangeSettings:
    data = fields.mapping(value, path, _RANGE_KEYS)
    default = RangeSettings()
    allow = default.allow
    if "allow" in data:
        allow = fields.networks(data["allow"], (*path, "allow"))
        for i, network in enumerate(allow):
            special = never_dial_containing(network)
            if special is not None and special.embedded_ipv4 is None:
                raise ConfigError(
                    (*path, "allow", i),
                    f"'{network}' lies inside never-dial {special.name} ({special.network}), "
                    "which ranges.allow cannot lift; use ranges.unsafe_allow",
                )
    cjdns = fields.boolean(data["cjdns"], (*path, "cjdns")) if "cjdns" in data else default.cjdns
    unsafe: tuple[IPv6Network, ...] = ()
    if "unsafe_allow" in data:
        unsafe = fields.networks(data["unsafe_allow"], (*path, "unsafe_allow"))
        for i, network in enumerate(unsafe):
            check_unsafe_allow(network, (*path, "unsafe_allow", i))
    return RangeSettings(allow=allow, cjdns=cjdns, unsafe_allow=unsafe)


def _parse_secure_range(value: object, path: ConfigPath) -> SecureRange:
    if not isinstance(value, Mapping):
        raise ConfigError(
            path,
            "expected a mapping with cidr, tls, trust_any_certificate, pinning, "
            f"got {fields.describe(value)}",
        )
    data = fields.mapping(value, path, _SECURE_KEYS)
    if "cidr" not in data:
        raise ConfigError(path, "missing required key 'cidr'")
    network = fields.network(data["cidr"], (*path, "cidr"))
    tls: TlsMode = "required"
    if "tls" in data:
        tls = (
            "off" if fields.choice(data["tls"], (*path, "tls"), _TLS_MODES) == "off" else "required"
        )
    trust_any: bool | None = None
    if data.get("trust_any_certificate") is not None:
        trust_any = fields.boolean(data["trust_any_certificate"], (*path, "trust_any_certificate"))
    pinning: PinningMode | None = None
    if data.get("pinning") is not None:
        pinning = _pinning_mode(data["pinning"], (*path, "pinning"))
    return SecureRange(network=network, tls=tls, trust_any_certificate=trust_any, pinning=pinning)


def _pinning_mode(value: object, path: ConfigPath) -> PinningMode:
    mode = fields.choice(value, path, _PINNING_MODES)
    return "enforce" if mode == "enforce" else "warn" if mode == "warn" else "off"


def _parse_pinning(value: object, path: ConfigPath) -> PinningSettings:
    data = fields.mapping(value, path, _PINNING_KEYS)
    default = PinningSettings()
    mode = default.default
    if "default" in data:
        mode = _pinning_mode(data["default"], (*path, "default"))
    file = default.file
    if data.get("file") is not None:
        raw = data["file"]
        if not isinstance(raw, str) or not raw or "\0" in raw:
            raise ConfigError(
                (*path, "file"), f"expected a file path or null, got {fields.describe(raw)}"
            )
        file = raw
    return PinningSettings(default=mode, file=file)


def _parse_secure_ranges(value: object, path: ConfigPath) -> tuple[SecureRange, ...]:
    items = fields.sequence(value, path, "secure range mappings")
    ranges = tuple(_parse_secure_range(v, (*path, i)) for i, v in enumerate(items))
    fields.no_duplicates([r.network for r in ranges], path, "cidr")
    return ranges


def _parse_synapse(value: object, path: ConfigPath) -> SynapseSettings:
    data = fields.mapping(value, path, _SYNAPSE_KEYS)
    default = SynapseSettings()
    binding: InboundIpBinding = default.inbound_ip_binding
    if "inbound_ip_binding" in data:
        where = (*path, "inbound_ip_binding")
        mode = fields.choice(data["inbound_ip_binding"], where, _BINDING_MODES)
        binding = "off" if mode == "off" else "log" if mode == "log" else "enforce"
    rate = default.recovery_probe_rate
    if "recovery_probe_rate" in data:
        rate = fields.integer(
            data["recovery_probe_rate"], (*path, "recovery_probe_rate"), 1, 10_000
        )
    interval = default.recovery_probe_interval
    if "recovery_probe_interval" in data:
        where = (*path, "recovery_probe_interval")
        interval = fields.seconds(data["recovery_probe_interval"], where, 0.5, 3600)
    return SynapseSettings(
        inbound_ip_binding=binding, recovery_probe_rate=rate, recovery_probe_interval=interval
    )


def _parse_sidecar(value: object, path: ConfigPath) -> SidecarSettings:
    data = fields.mapping(value, path, _SIDECAR_KEYS)
    default = SidecarSettings()
    dns = default.dns_listen
    if "dns_listen" in data:
        dns = fields.endpoint(data["dns_listen"], (*path, "dns_listen"))
    lookup = default.lookup_listen
    if "lookup_listen" in data:
        lookup = fields.endpoint(data["lookup_listen"], (*path, "lookup_listen"))
    forwarders: tuple[Endpoint, ...] = ()
    if "forwarders" in data:
        where = (*path, "forwarders")
        items = fields.sequence(data["forwarders"], where, '"host:port" strings')
        forwarders = tuple(
            fields.endpoint(v, (*where, i), default_port=53) for i, v in enumerate(items)
        )
    limits = default.limits
    if "limits" in data:
        limits = _parse_limits(data["limits"], (*path, "limits"))
    return SidecarSettings(
        dns_listen=dns, lookup_listen=lookup, forwarders=forwarders, limits=limits
    )


def _parse_limits(value: object, path: ConfigPath) -> SidecarLimits:
    data = fields.mapping(value, path, tuple(_LIMIT_RANGES))
    values: dict[str, Any] = {}
    for key, raw in data.items():
        kind, low, high = _LIMIT_RANGES[key]
        if kind == "count":
            values[key] = fields.integer(raw, (*path, key), int(low), int(high))
        else:
            values[key] = fields.seconds(raw, (*path, key), low, high)
    return SidecarLimits(**values)


def parse_config(data: object) -> Config:
    """Validate already-parsed YAML data; ``None`` or ``{}`` gives all defaults."""
    top = fields.mapping(data, (), _TOP_KEYS)
    ranges = _parse_ranges(top.get("ranges"), ("ranges",))
    ip_bound_trust = True
    if "ip_bound_trust" in top:
        ip_bound_trust = fields.boolean(top["ip_bound_trust"], ("ip_bound_trust",))
    secure: tuple[SecureRange, ...] = ()
    if "secure_ranges" in top:
        secure = _parse_secure_ranges(top["secure_ranges"], ("secure_ranges",))
    return Config(
        ranges=ranges,
        ip_bound_trust=ip_bound_trust,
        secure_ranges=secure,
        pinning=_parse_pinning(top.get("pinning"), ("pinning",)),
        synapse=_parse_synapse(top.get("synapse"), ("synapse",)),
        sidecar=_parse_sidecar(top.get("sidecar"), ("sidecar",)),
    )


# --- files -----------------------------------------------------------------


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a YAML config file; an empty file gives the defaults.

    The file is read within bounds (:func:`v6alt.yaml_file.read_yaml_file`):
    every problem is a :class:`ConfigError`, never a traceback.
    """
    return parse_config(read_yaml_file(path))
