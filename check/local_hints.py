"""What to change when a ``check local`` check fails: one line each, pure text."""

from __future__ import annotations

from ipaddress import IPv6Address

from v6alt.codec import encode

__all__ = [
    "dns_server_name",
    "key_servers",
    "listener",
    "module_config",
    "module_missing",
    "no_mesh",
    "not_listening",
    "not_local",
    "server_name_canonical",
    "server_name_missing",
    "sidecar_config",
    "sidecar_down",
    "unreadable",
]


def unreadable(path: str) -> str:
    return f"give the path of the homeserver.yaml Synapse runs with (--homeserver-config {path})"


def module_missing() -> str:
    return (
        "add '- module: v6alt.synapse_module.V6AltFederation' with its config: to modules: in "
        "homeserver.yaml (docs/synapse.md) and restart Synapse"
    )


def module_config(error: str) -> str:
    return f"fix the module's config: mapping in homeserver.yaml: {error} (docs/config.md)"


def server_name_missing() -> str:
    return "set server_name: to the v6.alt name of the mesh address (v6alt whoami prints it)"


def dns_server_name(name: str) -> str:
    return (
        f"peers reach {name} by DNS and check its certificate against CAs; to be reached by "
        'mesh peers too, see docs/mixed.md, "Keeping a DNS name on the mesh"; to serve it '
        'from a v6.alt name, "Delegating a DNS name to a v6.alt server"'
    )


def server_name_canonical(given: str, canonical: str) -> str:
    return f"server_name must be {canonical}, not {given} (peers refuse other spellings)"


def key_servers() -> str:
    return (
        "set trusted_key_servers: [] in homeserver.yaml so keys come from each server "
        "directly (a mesh-only host cannot reach matrix.org)"
    )


def listener(address: IPv6Address, port: int) -> str:
    return (
        f'add a listener (port: {port}, bind_addresses: ["{address}"], type: http, tls: true, '
        "resources: [{names: [federation]}]) to homeserver.yaml"
    )


def not_listening(address: IPv6Address, port: int, error: str) -> str:
    return (
        f"nothing accepts at [{address}]:{port} ({error}): is Synapse running, and is "
        f"{address} configured on this host when Synapse starts?"
    )


def sidecar_config(error: str) -> str:
    return f"fix the sidecar config: {error} (docs/config.md)"


def sidecar_down(path: str | None, where: str) -> str:
    config = f" --config {path}" if path else ""
    return (
        f"start the sidecar so it serves {where}: v6alt sidecar{config} (or its systemd "
        "unit); Prosody's mod_v6alt refuses v6.alt peers while it is down"
    )


def no_mesh() -> str:
    return "bring up the mesh (Yggdrasil: systemctl start yggdrasil; yggdrasilctl getSelf)"


def not_local(address: IPv6Address) -> str:
    return (
        f"server_name {encode(address)} encodes {address}, which this host does not have: "
        "use the name of this host's mesh address (v6alt whoami)"
    )
