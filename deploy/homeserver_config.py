"""Synapse's homeserver.yaml with the v6alt module: the documented settings, as data.

:func:`documented_settings` is exactly what docs/synapse-homeserver.yaml
documents, filled in: federation on ``[mesh address]:8448`` with TLS (any
certificate: IP-bound trust), ``trusted_key_servers: []`` and the module with
its default config. :func:`template_settings` fills in such a snippet given
as text (the docs' own file, which the tests read). Every homeserver.yaml
v6alt writes starts from one of the two: the container setup's
(:mod:`v6alt.deploy.docker_setup`) and the lab's disposable servers'
(``v6alt.lab.matrix.files``) add their own settings on top. Pure: no I/O.
"""

from __future__ import annotations

import base64
import secrets
from ipaddress import IPv6Address
from pathlib import Path
from string import Template
from typing import Any, Final

import yaml

__all__ = [
    "FEDERATION_PORT",
    "SYNAPSE_MODULE",
    "config_yaml",
    "documented_module_config",
    "documented_settings",
    "signing_key",
    "template_settings",
]

#: Where a v6.alt name without a port is dialled.
FEDERATION_PORT: Final = 8448
SYNAPSE_MODULE: Final = "v6alt.synapse_module.V6AltFederation"


def documented_module_config() -> dict[str, Any]:
    """The module's ``config:`` of the documented snippet (the defaults, written out)."""
    return {
        "ranges": {"allow": ["200::/7", "2000::/3"], "cjdns": False},
        "ip_bound_trust": True,
        "synapse": {"inbound_ip_binding": "log"},
    }


def documented_settings(
    server_name: str,
    mesh_address: IPv6Address,
    certificate: Path,
    key: Path,
    port: int = FEDERATION_PORT,
) -> dict[str, Any]:
    """Exactly the settings docs/synapse-homeserver.yaml documents, filled in."""
    return {
        "server_name": server_name,
        "listeners": [
            {
                "port": port,
                "bind_addresses": [str(mesh_address)],
                "type": "http",
                "tls": True,
                "resources": [{"names": ["federation"]}],
            }
        ],
        "tls_certificate_path": str(certificate),
        "tls_private_key_path": str(key),
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "modules": [{"module": SYNAPSE_MODULE, "config": documented_module_config()}],
    }


def template_settings(
    template: str, server_name: str, mesh_address: IPv6Address, certificate: Path, key: Path
) -> dict[str, Any]:
    """A homeserver.yaml snippet with ``$server_name``, ``$mesh_address``,
    ``$tls_certificate_path`` and ``$tls_private_key_path`` (such as
    docs/synapse-homeserver.yaml), filled in and parsed."""
    values = {
        "server_name": server_name,
        "mesh_address": str(mesh_address),
        "tls_certificate_path": str(certificate),
        "tls_private_key_path": str(key),
    }
    settings: dict[str, Any] = yaml.safe_load(Template(template).substitute(values))
    return settings


def signing_key() -> str:
    """A new Synapse signing key file: ``ed25519 <key id> <unpadded base64 seed>``.

    An Ed25519 private key is any 32 random bytes (the seed), which is what
    the file holds. A fresh key id every time: a server name may come again
    (a homeserver started afresh), and peers cache keys by (server name, key id).
    """
    seed = base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return f"ed25519 a_{secrets.token_hex(4)} {seed}\n"


def config_yaml(config: dict[str, Any], header: str = "") -> str:
    """``config`` as homeserver.yaml text, keys in their order, after the comment ``header``."""
    comment = "".join(f"# {line}\n".replace("# \n", "#\n") for line in header.splitlines())
    return comment + yaml.safe_dump(config, sort_keys=False)
