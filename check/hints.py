"""What to change, for each kind of failure: one line each, pure text."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from typing import Any, Final

from v6alt.codec import encode
from v6alt.ipranges import CJDNS, GLOBAL_UNICAST, NEVER_DIAL_RANGES, YGGDRASIL
from v6alt.names import is_v6alt

__all__ = [
    "ca_certificate",
    "canonical_name",
    "certificate_other_address",
    "dns_failed",
    "http_failed",
    "key_server_name",
    "key_signature",
    "key_valid_until",
    "never_dial",
    "no_addresses",
    "refusal_fix",
    "stream_refused",
    "synapse_blocklist",
    "tcp_failed",
    "tls_failed",
    "well_known_broken",
    "xmpp_tls_failed",
]


def _at(address: IPv4Address | IPv6Address, port: int) -> str:
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def canonical_name(given: str, canonical: str) -> str:
    return (
        f"use the canonical spelling {canonical}: peers compare server names as strings, "
        f"so {given} is a second identity they refuse"
    )


@dataclass(frozen=True)
class Fix:
    """The v6alt config setting that makes the policy dial a refused address.

    ``setting`` is how the hint words it; ``config`` is that setting as a
    fragment of the config file (the tests apply it and dial again).
    """

    setting: str
    config: dict[str, Any]
    lab_only: bool = False


# The policy's refusal rule ids (v6alt.policy.rule_ids) that are not a never-dial range.
CJDNS_OFF: Final = "cjdns_off"
OUTSIDE_ALLOW: Final = "outside_allow"
_MESH_RANGES: Final = (YGGDRASIL, GLOBAL_UNICAST, CJDNS)


def _never_dial_range(address: IPv6Address) -> IPv6Network | None:
    containing = [s.network for s in NEVER_DIAL_RANGES if address in s.network]
    return max(containing, key=lambda n: n.prefixlen) if containing else None


def refusal_fix(address: IPv6Address, rule_id: str) -> Fix:
    """The setting that lifts the policy's refusal (rule ``rule_id``) of ``address``."""
    if rule_id == CJDNS_OFF:
        return Fix("ranges.cjdns: true", {"ranges": {"cjdns": True}})
    if rule_id == OUTSIDE_ALLOW:
        known = [n for n in _MESH_RANGES if address in n]
        network = known[0] if known else IPv6Network(f"{address}/64", strict=False)
        if network == CJDNS:
            return Fix("ranges.cjdns: true", {"ranges": {"cjdns": True}})
        return Fix(
            f'"{network}" to ranges.allow',
            {"ranges": {"allow": [str(YGGDRASIL), str(GLOBAL_UNICAST), str(network)]}},
        )
    guard = _never_dial_range(address)
    network = guard if guard is not None else IPv6Network(f"{address}/128")
    return Fix(
        f'ranges.unsafe_allow: ["{network}"]',
        {"ranges": {"unsafe_allow": [str(network)]}},
        lab_only=True,
    )


def never_dial(
    name: str, address: IPv6Address | IPv4Address, rule: str, rule_id: str | None = None
) -> str:
    """What to change when the policy refuses ``address`` (``rule``, ``rule_id``)."""
    if address.version == 4:
        return (
            f"{name} points at {address}, a non-global IPv4 address that federation never "
            "dials (Synapse's blocklist): use a public address or a v6.alt name"
        )
    assert isinstance(address, IPv6Address)
    if rule_id is None:  # the rule text names the case
        rule_id = (
            CJDNS_OFF
            if "ranges.cjdns" in rule
            else OUTSIDE_ALLOW
            if "outside ranges.allow" in rule
            else "never_dial"
        )
    fix = refusal_fix(address, rule_id)
    if rule_id == CJDNS_OFF or fix.setting == "ranges.cjdns: true":
        return (
            f"{name} points at {address}, a cjdns address, which the v6alt config does not "
            f"allow ({rule}): set {fix.setting} there (Synapse peers also need fc00::/8 in "
            "ip_range_whitelist)"
        )
    if not fix.lab_only:
        return (
            f"{name} points at {address}, outside the ranges the v6alt config allows "
            f"({rule}): add {fix.setting} if peers there are meant to be reached"
        )
    return (
        f"{name} points at {address}, which is never dialled ({rule}); use the name of a "
        "mesh address (200::/7 Yggdrasil, 2000::/3 global, fc00::/8 cjdns) or, for a lab "
        f"only, lift the range with {fix.setting} in the v6alt config"
    )


def synapse_blocklist(
    address: IPv6Address | IPv4Address, network: str, allowlist_entry: str | None = None
) -> str:
    """Synapse's default blocklist holds ``network``; ``allowlist_entry`` is the
    narrowest range to list instead (fc00::/8 for cjdns: fc00::/7 holds ULA too)."""
    entry = allowlist_entry or network
    wider = (
        f" (not {network}, which would also let Synapse dial {_rest_of(network, entry)})"
        if entry != network
        else ""
    )
    return (
        f"Synapse's default ip_range_blacklist has {network}: every Synapse peer that should "
        f"reach {address} must list {entry} in ip_range_whitelist{wider}"
    )


def _rest_of(network: str, entry: str) -> str:
    outer, inner = IPv6Network(network), IPv6Network(entry)
    if inner.subnet_of(outer) and inner.prefixlen == outer.prefixlen + 1:
        sibling = next(n for n in outer.subnets(new_prefix=inner.prefixlen) if n != inner)
        name = next((s.name for s in NEVER_DIAL_RANGES if s.network == sibling), None)
        return f"{name} {sibling}" if name else str(sibling)
    return f"the rest of {network}"


def tcp_failed(
    address: IPv4Address | IPv6Address, port: int, reason: str, service: str = "matrix"
) -> str:
    where = _at(address, port)
    if service == "xmpp":
        return (
            f"nothing accepts connections at {where} ({reason}): start the XMPP server, "
            f"let it listen on {address} port {port} (s2s_interfaces/s2s_ports) and open "
            f"TCP {port} in the firewall"
        )
    if "refused" in reason:
        return (
            f"nothing listens at {where}: add a federation listener (port: {port}, "
            f'bind_addresses: ["{address}"], tls: true) to homeserver.yaml and restart Synapse'
        )
    return (
        f"{where} does not answer ({reason}): check the route to it (mesh peering up?) and "
        f"that the firewall lets TCP {port} in"
    )


def tls_failed(where: str, reason: str) -> str:
    return (
        f"the server at {where} does not complete TLS ({reason}): give the federation "
        "listener tls: true with tls_certificate_path and tls_private_key_path"
    )


def xmpp_tls_failed(where: str, domain: str, reason: str) -> str:
    return (
        f"the server at {where} does not complete TLS ({reason}): give the VirtualHost "
        f'"{domain}" a certificate and key (ssl = {{ certificate = ...; key = ... }})'
    )


def xmpp_no_starttls(where: str, domain: str) -> str:
    return (
        f"the server at {where} offers no STARTTLS: either its sidecar has a secure range "
        "with tls: off for the address this check connects from while this host's config "
        'does not (both ends need the same secure_ranges: docs/prosody.md, "Secure ranges '
        f'on both ends"), or VirtualHost "{domain}" has no certificate and key '
        "(ssl = { certificate = ...; key = ... })"
    )


def certificate_other_address(
    address: IPv6Address, presented_for: str, presented_address: IPv6Address
) -> str:
    return (
        f"the certificate presented at {address} is for {presented_for} "
        f"({presented_address}): another server answers there (a proxy or port forward?); "
        f"bind the federation listener of {encode(address)} to {address} itself"
    )


def ca_certificate(host: str, reason: str) -> str:
    if is_v6alt(host):
        return (
            f"peers verify {host} against CAs ({reason}): the policy gives it no IP-bound "
            "trust here (ip_bound_trust: false, or a secure range with "
            "trust_any_certificate: false); change that, or install a CA-signed certificate"
        )
    return (
        f"peers verify {host} against public CAs and refuse this certificate ({reason}): "
        f"install a CA-signed certificate for {host}; or, for peers on the mesh only, a "
        "secure range over its address with trust_any_certificate: true in every peer's "
        'v6alt config (docs/mixed.md, "Keeping a DNS name on the mesh"); or use a v6.alt '
        "server name (IP-bound trust needs no CA)"
    )


def http_failed(path: str, problem: str) -> str:
    return (
        f"{path} {problem}: the federation listener must serve the federation and keys "
        "resources (resources: - names: [federation]) on this port"
    )


def key_server_name(expected: str, got: object) -> str:
    return (
        f"the key server answers for {got!r}, not {expected}: set server_name: {expected} in "
        f"homeserver.yaml, or make sure {expected} reaches this homeserver and not another"
    )


def key_valid_until(expected: str) -> str:
    return (
        f"the keys of {expected} have expired: check the homeserver's clock "
        "(and key_refresh_interval in homeserver.yaml)"
    )


def key_signature(expected: str, error: str) -> str:
    return (
        f"the key document of {expected} is not correctly self-signed ({error}): "
        "check signing_key_path belongs to this server_name, or a proxy that rewrites the "
        "JSON body"
    )


def dns_failed(name: str, what: str, reason: str) -> str:
    return (
        f"the {what} lookup for {name} failed ({reason}): check the resolver (--resolver) "
        "and the zone"
    )


def no_addresses(name: str) -> str:
    return (
        f"{name} has no address to dial: publish AAAA (or A) records, an SRV record, or "
        "delegate with .well-known/matrix/server to a v6.alt name"
    )


def well_known_broken(name: str, problem: str) -> str:
    return (
        f"https://{name}/.well-known/matrix/server {problem}: serve "
        '{"m.server": "<host>[:<port>]"} as JSON with status 200, or remove it '
        "(404) so peers fall back to SRV and port 8448"
    )


def well_known_redirect(name: str, problem: str) -> str:
    return (
        f"https://{name}/.well-known/matrix/server {problem}: peers follow 301, 302, 303, "
        "307 and 308 to https:// URLs, up to 30 hops; point the redirect at a URL that "
        'serves {"m.server": "<host>[:<port>]"} with status 200, or serve that JSON at '
        f"{name} itself"
    )


def delegated_to_v6alt(name: str, target: str, how: str) -> str:
    if how == "well-known":
        what = (
            f"{name} delegates federation to {target}: peers dial it by its address and trust "
            "its self-signed certificate by that address, which only v6alt does"
        )
    elif how == "xmpp-srv":
        what = (
            f"the SRV record of {name} points at {target}: peers need v6alt (or mod_s2s_v6mesh) "
            f"to find its address, and its certificate must still be valid for {name}"
        )
    else:
        what = (
            f"the SRV record of {name} points at {target}: peers need v6alt (or the host-wide "
            f"resolver) to find its address, and its certificate must still be valid for {name}"
        )
    return (
        f'{what}; every peer needs v6alt for this (docs/mixed.md, "Delegating a DNS name to '
        'a v6.alt server"). To stay reachable from stock servers, keep a CA certificate for '
        f'{name} and publish its AAAA (docs/mixed.md, "Keeping a DNS name on the mesh")'
    )


def stream_refused(domain: str, condition: str) -> str:
    if condition == "host-unknown":
        return (
            f'the server at this address does not host {domain}: add VirtualHost "{domain}" '
            "(or a Component) to its config, or fix the name/SRV that points here"
        )
    if condition == "policy-violation":
        return (
            f"{domain} refused our stream: a mod_v6alt server refuses v6.alt peers when its "
            "sidecar is down (run v6alt check local there) or when the stream's from name is "
            "not the address we connect from (check --from)"
        )
    return (
        f"{domain} closed the stream ({condition}): read that server's log for the reason; "
        "check its s2s settings (s2s_require_encryption, modules_enabled)"
    )
