"""``v6alt config check FILE`` and ``v6alt config defaults``.

The config module is imported when a config command runs, not when the CLI
starts, so ``encode``/``decode`` do not pay for loading YAML.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, Final

from .cli_common import EXIT_OK, EXIT_USAGE, Streams, SubParsers, add_command, dump_json, host_port
from .errors import abridge

if TYPE_CHECKING:
    from .config import Config, SecureRange, SidecarLimits

__all__ = [
    "config_summary_lines",
    "config_to_json",
    "pinning_by_range_json",
    "register_config",
]

_CHECK_EPILOG: Final = """\
exit status: 0 the file is valid (a summary of the effective settings is
  printed; settings that weaken trust outside the crypto-addressed meshes
  get a 'v6alt: config: FILE: warning: ...' line each on stderr); 2 it is
  not, or cannot be read: one line
  'v6alt: config: FILE: <key path>: <reason>' on stderr.
"""


def register_config(subparsers: SubParsers) -> None:
    parser = add_command(
        subparsers,
        "config",
        summary="check a config file, print the defaults",
        description="The one config schema of the Synapse module and the sidecar.",
        handler=None,
    )
    actions = parser.add_subparsers(title="commands", dest="config_command", metavar="COMMAND")
    actions.required = True
    check = add_command(
        actions,
        "check",
        summary="validate a YAML config file and show the effective settings",
        description=(
            "Validate FILE (a sidecar config file, or the module's config: mapping\n"
            "written out as YAML) and print the settings in effect, defaults included."
        ),
        handler=_run_check,
        epilog=_CHECK_EPILOG,
    )
    check.add_argument("file", metavar="FILE", help="YAML config file")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    add_command(
        actions,
        "defaults",
        summary="print the documented default config as YAML",
        description="Print every key with its default value and a comment.",
        handler=_run_defaults,
    )


def _run_defaults(args: argparse.Namespace, streams: Streams) -> int:
    from .config import DEFAULT_CONFIG_YAML

    streams.stdout.write(DEFAULT_CONFIG_YAML)
    return EXIT_OK


def _run_check(args: argparse.Namespace, streams: Streams) -> int:
    from .config import ConfigError, load_config

    path: str = args.file
    try:
        config = load_config(path)
    except ConfigError as exc:
        # Whole-document errors (unreadable, YAML syntax; empty key path)
        # already start with the file name; do not print it twice.
        reason = exc.reason if exc.path else exc.reason.removeprefix(f"{abridge(path)}: ")
        streams.error("config", f"{abridge(path)}: {str(exc) if exc.path else reason}")
        if args.json:
            error = {"path": list(exc.path), "reason": reason}
            dump_json({"file": path, "valid": False, "error": error}, streams.stdout)
        return EXIT_USAGE
    from .config_warnings import config_warnings

    warnings = config_warnings(config)
    for warning in warnings:
        streams.error("config", f"{path}: warning: {warning}")
    if args.json:
        dump_json(
            {
                "file": path,
                "valid": True,
                "config": config_to_json(config),
                "pinning_by_range": pinning_by_range_json(config),
                "warnings": warnings,
            },
            streams.stdout,
        )
    else:
        streams.stdout.write(f"{path}: valid; effective settings:\n")
        streams.stdout.writelines(f"  {line}\n" for line in config_summary_lines(config))
    return EXIT_OK


def _networks(networks: tuple[Any, ...]) -> str:
    return ", ".join(str(n) for n in networks) if networks else "(none)"


def _flag(value: bool) -> str:
    return "true" if value else "false"


def config_summary_lines(config: Config) -> list[str]:
    """One line per setting, in the order of the defaults file."""
    ranges, sidecar = config.ranges, config.sidecar
    lines = [
        f"ranges.allow: {_networks(ranges.allow)}",
        f"ranges.cjdns: {_flag(ranges.cjdns)}" + (" (fc00::/8 allowed)" if ranges.cjdns else ""),
        f"ranges.unsafe_allow: {_networks(ranges.unsafe_allow)}",
        f"ip_bound_trust: {_flag(config.ip_bound_trust)}",
    ]
    if config.secure_ranges:
        lines.append("secure_ranges:")
        lines.extend(_secure_range_line(r) for r in config.secure_ranges)
    else:
        lines.append("secure_ranges: (none)")
    forwarders = ", ".join(host_port(*f) for f in sidecar.forwarders) or "(none)"
    lines += [
        f"pinning.default: {config.pinning.default} (outside the ranges below)",
        "pinning by range (a secure range's pinning overrides):",
        *_pinning_by_range_lines(config),
        f"pinning.file: {config.pinning.file or '(the server default)'}",
        f"synapse.inbound_ip_binding: {config.synapse.inbound_ip_binding}",
        f"synapse.recovery_probe_rate: {config.synapse.recovery_probe_rate} per second, "
        f"each peer every {config.synapse.recovery_probe_interval:g} s "
        "(recovery_probe_interval)",
        f"sidecar.dns_listen: {host_port(*sidecar.dns_listen)}",
        f"sidecar.lookup_listen: {host_port(*sidecar.lookup_listen)}",
        f"sidecar.forwarders: {forwarders}",
        f"sidecar.limits: {_limits_text(sidecar.limits)}",
    ]
    return lines


def _limits_text(limits: SidecarLimits) -> str:
    return (
        f"dns tcp {limits.tcp_connections} connections ({limits.tcp_connections_per_address} "
        f"per address), idle {limits.tcp_idle_timeout:g} s, query {limits.tcp_query_timeout:g} s; "
        f"lookup {limits.lookup_connections} connections, request "
        f"{limits.lookup_request_timeout:g} s and {limits.lookup_request_bytes} bytes; "
        f"log {limits.log_lines_per_minute} lines per minute"
    )


def _pinning_by_range_lines(config: Config) -> list[str]:
    from .policy import range_pinning_defaults

    return [
        f"  {r.network} ({r.name}): {r.mode} ({r.why})"
        for r in range_pinning_defaults(config.pinning)
    ]


def pinning_by_range_json(config: Config) -> list[dict[str, str]]:
    """The built-in pinning mode of each named range under this config (``pinning``
    in a secure range overrides it); ``pinning.default`` applies elsewhere."""
    from .policy import range_pinning_defaults

    return [
        {"cidr": str(r.network), "name": r.name, "pinning": r.mode}
        for r in range_pinning_defaults(config.pinning)
    ]


def _secure_range_line(secure: SecureRange) -> str:
    trust = secure.trust_any_certificate
    line = f"  {secure.network}: tls {secure.tls}, trust_any_certificate "
    line += "not set (lifts no check)" if trust is None else _flag(trust)
    if secure.pinning is not None:
        line += f", pinning {secure.pinning}"
    return line


def config_to_json(config: Config) -> dict[str, Any]:
    """The effective settings with the config file's keys and spelling."""
    from .config import secure_range_dict

    ranges, sidecar = config.ranges, config.sidecar
    return {
        "ranges": {
            "allow": [str(n) for n in ranges.allow],
            "cjdns": ranges.cjdns,
            "unsafe_allow": [str(n) for n in ranges.unsafe_allow],
        },
        "ip_bound_trust": config.ip_bound_trust,
        "secure_ranges": [secure_range_dict(r) for r in config.secure_ranges],
        "pinning": {"default": config.pinning.default, "file": config.pinning.file},
        "synapse": config.to_dict()["synapse"],
        "sidecar": {
            "dns_listen": host_port(*sidecar.dns_listen),
            "lookup_listen": host_port(*sidecar.lookup_listen),
            "forwarders": [host_port(*f) for f in sidecar.forwarders],
            "limits": config.to_dict()["sidecar"]["limits"],
        },
    }
