"""The files of a lab homeserver: homeserver.yaml, certificate, signing key, log config.

The homeserver.yaml is the documented snippet (docs/synapse-homeserver.yaml:
federation on ``[mesh address]:8448`` with TLS, ``trusted_key_servers: []``,
the v6alt module with the default config) plus what a disposable lab server
needs: SQLite, a registration shared secret, the client API on a unix socket
in its directory (reached from any namespace through the file system), and
rate limits that let a test send bursts. The homeservers of the Synapse
tests are disposable servers too: they take the same settings
(:func:`lab_config`) on top of the documented snippet read from the docs
themselves (:func:`homeserver_config`'s ``template``). Every homeserver the
lab, the tests and the benchmarks start is written by :func:`homeserver_config`
and :func:`write_server_keys`, through :class:`.homeserver.Homeserver`. The
documented settings, the signing key and the certificates are the product's
own (:mod:`v6alt.deploy`), which ``v6alt docker-setup`` writes a deployed
homeserver with.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv6Address
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Final

from v6alt.deploy.homeserver_config import (
    FEDERATION_PORT,
    config_yaml,
    documented_settings,
    signing_key,
    template_settings,
)

from ..certificates import CertificateIssuer, LabCa, self_signed_certificate
from ..service_control import ServiceTree

__all__ = [
    "FEDERATION_PORT",
    "LAB_LOGGERS",
    "CertificateIssuer",
    "HomeserverFiles",
    "homeserver_config",
    "lab_config",
    "log_config",
    "write_config",
    "write_homeserver_files",
    "write_server_keys",
]

#: The loggers a lab homeserver logs apart from the rest (name -> level; the rest: INFO).
LAB_LOGGERS: Final[Mapping[str, str]] = MappingProxyType(
    {"v6alt": "DEBUG", "synapse.storage.SQL": "WARNING"}
)

_LOG_CONFIG: Final = """\
version: 1
formatters:
  plain:
    format: "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
handlers:
  file:
    class: logging.FileHandler
    filename: "{log}"
    formatter: plain
loggers:
{loggers}
root:
  level: INFO
  handlers: [file]
disable_existing_loggers: false
"""


@dataclass(frozen=True)
class HomeserverFiles(ServiceTree):
    """Where one lab homeserver keeps everything (its own directory, removed by ``down``)."""

    server_name: str
    log_name: ClassVar[str] = "homeserver.log"

    @property
    def config(self) -> Path:
        return self.tree / "homeserver.yaml"

    @property
    def client_socket(self) -> Path:
        return self.tree / "client.sock"

    @property
    def secret_file(self) -> Path:
        return self.tree / "registration-secret"

    def secret(self) -> str:
        return self.secret_file.read_text().strip()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def log_config(log: Path, loggers: Mapping[str, str] = LAB_LOGGERS) -> str:
    """Synapse's logging config (YAML): INFO and up into ``log``, ``loggers`` at their levels."""
    levels = "\n".join(f"  {name}: {{level: {level}}}" for name, level in loggers.items())
    return _LOG_CONFIG.format(log=log, loggers=levels)


def _lab_settings(files: HomeserverFiles, secret: str) -> dict[str, Any]:
    tree = files.tree
    limit = {"per_second": 100, "burst_count": 100}
    return {
        "pid_file": str(tree / "homeserver.pid"),
        "signing_key_path": str(tree / "signing.key"),
        "media_store_path": str(tree / "media"),
        "log_config": str(tree / "log.yaml"),
        "report_stats": False,
        "registration_shared_secret": secret,
        "enable_metrics": False,
        "use_presence": False,
        "database": {"name": "sqlite3", "args": {"database": str(tree / "homeserver.db")}},
        "rc_message": limit,
        "rc_joins": {"local": limit, "remote": limit},
        "rc_invites": {"per_room": limit, "per_user": limit},
        "rc_federation": {"window_size": 1000, "sleep_limit": 100, "reject_limit": 1000},
    }


def _lift_never_dial(config: dict[str, Any], unsafe_allow: Sequence[str]) -> None:
    # Both gates must open: the module's never-dial list and Synapse's own blocklist.
    module_ranges = config["modules"][0]["config"]["ranges"]
    module_ranges["unsafe_allow"] = list(unsafe_allow)
    config["ip_range_whitelist"] = list(unsafe_allow)


def write_server_keys(
    files: HomeserverFiles,
    issuer: CertificateIssuer = self_signed_certificate,
    loggers: Mapping[str, str] = LAB_LOGGERS,
) -> str:
    """TLS certificate (from ``issuer``), signing key, log config and registration secret.

    Written into ``files.tree`` (already made); returns the registration secret.
    The default issuer's self-signed certificate is never checked by peers
    with the module: they trust the address they dialled (IP-bound trust).
    """
    tree = files.tree
    host_name = files.server_name.partition(":")[0]  # a v6.alt name has no colon; a port may follow
    issuer(host_name, tree / "tls.key", tree / "tls.crt")
    (tree / "signing.key").write_text(signing_key())
    secret = secrets.token_hex(16)
    files.secret_file.write_text(secret + "\n")
    files.secret_file.chmod(0o600)
    (tree / "log.yaml").write_text(log_config(files.log, loggers))
    return secret


def lab_config(
    files: HomeserverFiles,
    config: dict[str, Any],
    secret: str,
    client_resources: Sequence[str] = ("client",),
) -> dict[str, Any]:
    """``config`` plus the client API on ``files.client_socket`` and the lab settings.

    ``client_resources`` are the resources the socket serves (``keys`` too for
    a test that queries keys through its own server).
    """
    client = {"path": str(files.client_socket), "type": "http",
              "resources": [{"names": list(client_resources)}]}  # fmt: skip
    return {
        **config,
        "listeners": [*config["listeners"], client],
        **_lab_settings(files, secret),
    }


def homeserver_config(
    files: HomeserverFiles,
    mesh_address: IPv6Address,
    secret: str,
    *,
    port: int = FEDERATION_PORT,
    template: Path | None = None,
    ca_certificate: Path | None = None,
    module_config: Any = None,
    extra: Mapping[str, Any] | None = None,
    federation_tls: bool = True,
    extra_listeners: Sequence[Any] = (),
    unsafe_allow: Sequence[str] = (),
    client_resources: Sequence[str] = ("client",),
) -> dict[str, Any]:
    """The whole homeserver.yaml of a disposable homeserver, as data.

    The documented settings (``template``: a homeserver.yaml with
    ``$server_name``, ``$mesh_address``, ``$tls_certificate_path`` and
    ``$tls_private_key_path``, such as docs/synapse-homeserver.yaml; else
    :func:`documented_settings`), without the module and trusting
    ``ca_certificate`` for a stock homeserver, then the lab settings
    (:func:`lab_config`), then the overrides: the module's ``config:``
    mapping, top-level keys (``extra``), a plain-HTTP federation listener
    (``federation_tls``), more listeners, and never-dial CIDRs the server may
    federate with anyway (``unsafe_allow``, e.g. ``["::1/128"]`` on loopback).
    """
    tree = files.tree
    certificate, key = tree / "tls.crt", tree / "tls.key"
    if template is not None:
        text = template.read_text()
        config = template_settings(text, files.server_name, mesh_address, certificate, key)
    else:
        config = documented_settings(files.server_name, mesh_address, certificate, key, port)
    if ca_certificate is not None:
        del config["modules"]
        config["federation_verify_certificates"] = True
        config["federation_custom_ca_list"] = [str(ca_certificate)]
    config = lab_config(files, config, secret, client_resources)
    if module_config is not None:
        config["modules"][0]["config"] = module_config
    config.update(extra or {})
    if not federation_tls:
        # A `tls: off` secure range: the documented federation listener, plain HTTP.
        config["listeners"][0]["tls"] = False
    config["listeners"] += list(extra_listeners)
    if unsafe_allow:
        _lift_never_dial(config, unsafe_allow)
    return config


def write_config(files: HomeserverFiles, config: dict[str, Any]) -> None:
    """``config`` as ``files.config`` (mode 0600: it holds the registration secret)."""
    files.config.write_text(config_yaml(config))
    files.config.chmod(0o600)


def write_homeserver_files(
    files: HomeserverFiles,
    mesh_address: IPv6Address,
    *,
    ca: LabCa | None = None,
    issuer: CertificateIssuer | None = None,
    loggers: Mapping[str, str] = LAB_LOGGERS,
    **settings: Any,
) -> str:
    """Write config, certificate, signing key and secret into ``files.tree`` (already made).

    ``ca``: a stock homeserver, without the module, whose certificate ``ca``
    issues and which trusts ``ca`` (its certificate is copied in as
    ``ca.crt``, its key is not). ``issuer``: who issues the certificate
    otherwise (self-signed by default). ``settings`` are
    :func:`homeserver_config`'s keywords (``port``, ``unsafe_allow``,
    ``template``, ...). Returns the registration secret.
    """
    if ca is not None:
        issuer = issuer or ca.issue
        settings["ca_certificate"] = shutil.copyfile(ca.certificate, files.tree / "ca.crt")
    secret = write_server_keys(files, issuer or self_signed_certificate, loggers)
    write_config(files, homeserver_config(files, mesh_address, secret, **settings))
    return secret
