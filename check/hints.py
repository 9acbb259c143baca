"""What to change, for each kind of failure: one line each, pure text."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from v6alt.codec import encode
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


def never_dial(name: str, address: IPv6Address | IPv4Address, rule: str) -> str:
    if address.version == 4:
        return (
            f"{name} points at {address}, a non-global IPv4 address that federation never "
            "dials (Synapse's blocklist): use a public address or a v6.alt name"
        )
    return (
        f"{name} points at {address}, which is never dialled ({rule}); use the name of a "
        "mesh address (200::/7 Yggdrasil, 2000::/3 global) or, for a lab only, lift the "
        "range with ranges.unsafe_allow in the v6alt config"
    )


def synapse_blocklist(address: IPv6Address | IPv4Address, network: str) -> str:
    return (
        f"Synapse's default ip_range_blacklist has {network}: every Synapse peer that should "
        f"reach {address} must list {network} in ip_range_whitelist"
    )


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
        f"install a CA-signed certificate for {host}, or use a v6.alt server name "
        "(IP-bound trust needs no CA)"
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
