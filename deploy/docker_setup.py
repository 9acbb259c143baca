"""What ``v6alt docker-setup`` does: a compose stack's configuration from its own address.

:func:`find_address` waits for the stack's address (the kernel's source
towards the range, as ``v6alt whoami`` finds it); :func:`write_synapse`
writes Synapse's ``/data`` for the address's v6.alt name: homeserver.yaml
(the documented settings, :mod:`.homeserver_config`, plus what a deployed
server needs), a self-signed certificate (:mod:`.certificates`), a signing
key, a log config, the worker configs; :func:`write_prosody_certificate`
Prosody's self-signed certificate. The environment fills in the rest
(docs/docker.md): ``V6ALT_REGISTRATION_SECRET``, ``V6ALT_UNSAFE_ALLOW``,
``POSTGRES_*``, ``REDIS_HOST``, ``V6ALT_INBOUND_WORKER``,
``V6ALT_FEDERATION_SENDERS``.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Mapping
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import Any, Final

import yaml

from v6alt.errors import V6AltError
from v6alt.hostinfo import HostInfoError, HostReport, RouteGet, survey

from .certificates import CertificateError, self_signed_certificate
from .homeserver_config import (
    FEDERATION_PORT,
    config_yaml,
    documented_module_config,
    documented_settings,
    signing_key,
)

__all__ = [
    "CERTIFICATE_DAYS",
    "LOG_CONFIG",
    "SYNAPSE_UID",
    "SetupError",
    "find_address",
    "homeserver_settings",
    "worker_files",
    "write_prosody_certificate",
    "write_synapse",
]

SYNAPSE_UID: Final = 991  # the official Synapse image runs Synapse as 991:991
#: A deployed server's self-signed certificate: nothing renews it, IP-bound trust needs none.
CERTIFICATE_DAYS: Final = 3650
_POLL_SECONDS: Final = 0.5
_SECRET_FILES: Final = ("tls.key", "signing.key", "registration_shared_secret")

LOG_CONFIG: Final = """\
version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s'
handlers:
  console:
    class: logging.StreamHandler
    formatter: precise
    stream: ext://sys.stdout
loggers:
  synapse.storage.SQL:
    level: INFO
root:
  level: INFO
  handlers: [console]
disable_existing_loggers: false
"""


class SetupError(V6AltError):
    """The stack cannot be set up (exit 1); the message says why."""


def _address_in(report: HostReport, network: IPv6Network) -> IPv6Address | None:
    for check in report.sources:
        if check.source is not None and check.source in network:
            return check.source
    for local in report.addresses:
        if local.address in network:
            return local.address
    return None


def find_address(
    network: IPv6Network,
    wait: float,
    read_addresses: Callable[[], str],
    route_get: RouteGet,
    sleep: Callable[[float], None] = time.sleep,
) -> IPv6Address:
    """The kernel's source address towards ``network`` (within one of the mesh
    ranges), else this host's address in it, once there is one;
    :class:`SetupError` after ``wait`` seconds without."""
    probe = network.network_address + 1
    deadline = time.monotonic() + wait
    while True:
        try:
            report = survey(read_addresses(), route_get, [probe])
        except HostInfoError as error:
            last = str(error)
        else:
            found = _address_in(report, network)
            if found is not None:
                return found
            last = f"no address in {network} yet ({len(report.addresses)} mesh addresses)"
        if time.monotonic() > deadline:
            raise SetupError(f"no address in {network} after {wait:.0f} s: {last}")
        sleep(_POLL_SECONDS)


def _module_config(env: Mapping[str, str]) -> dict[str, Any]:
    """The module's ``config:``: the documented one with the recovery probe limits
    written out (docs/synapse.md). ``V6ALT_UNSAFE_ALLOW`` (space-separated CIDRs)
    fills ``ranges.unsafe_allow``: for labs on a documentation prefix only."""
    config = documented_module_config()
    config["synapse"].update({"recovery_probe_rate": 300, "recovery_probe_interval": 2})
    unsafe = env.get("V6ALT_UNSAFE_ALLOW", "").split()
    if unsafe:
        config["ranges"]["unsafe_allow"] = unsafe
    return config


def _database(env: Mapping[str, str], data: Path) -> dict[str, Any]:
    if env.get("POSTGRES_HOST"):
        return {
            "name": "psycopg2",
            "args": {
                "host": env["POSTGRES_HOST"],
                "user": env.get("POSTGRES_USER", "synapse"),
                "password": env.get("POSTGRES_PASSWORD", ""),
                "dbname": env.get("POSTGRES_DB", "synapse"),
                "cp_min": 2,
                "cp_max": 5,
            },
        }
    return {"name": "sqlite3", "args": {"database": str(data / "homeserver.db")}}


def worker_files(
    data: Path, env: Mapping[str, str], address: IPv6Address
) -> tuple[dict[str, Any], dict[str, str]]:
    """homeserver.yaml keys and worker config files: ``V6ALT_INBOUND_WORKER``
    names a generic worker taking inbound federation on the address, port 8448;
    ``V6ALT_FEDERATION_SENDERS`` is the number of federation senders sharding the
    outgoing traffic (federation_sender1..N). Every process shares the one
    network namespace, so the main process is at localhost for replication."""
    count = env.get("V6ALT_FEDERATION_SENDERS", "") or "0"
    if not count.isdigit():
        raise SetupError(f"V6ALT_FEDERATION_SENDERS={count!r} is not a number of senders")
    senders = int(count)
    inbound = env.get("V6ALT_INBOUND_WORKER", "")
    if not senders and not inbound:
        return {}, {}
    sender_names = [f"federation_sender{i + 1}" for i in range(senders)]
    keys: dict[str, Any] = {
        "redis": {"enabled": True, "host": env.get("REDIS_HOST", "redis"), "port": 6379},
        "instance_map": {"main": {"host": "localhost", "port": 9093}},
        "federation_sender_instances": sender_names,
    }
    files = {}
    for worker in [*sender_names, *([inbound] if inbound else [])]:
        listeners: list[dict[str, Any]] = []
        if worker == inbound:
            listeners.append(
                {
                    "port": FEDERATION_PORT,
                    "bind_addresses": [str(address)],
                    "type": "http",
                    "tls": True,
                    "resources": [{"names": ["federation"]}],
                }
            )
        worker_config = {
            "worker_app": "synapse.app.generic_worker",
            "worker_name": worker,
            "worker_listeners": listeners,
            "worker_log_config": str(data / "log.config"),
        }
        files[f"workers/{worker}.yaml"] = yaml.safe_dump(worker_config, sort_keys=False)
    return keys, files


def homeserver_settings(
    data: Path, name: str, address: IPv6Address, env: Mapping[str, str], workers: dict[str, Any]
) -> dict[str, Any]:
    """The stack's homeserver.yaml: the documented settings, the module's config
    from the environment, the client listener, the files in ``data``, and
    ``workers`` (the keys :func:`worker_files` gives)."""
    config = documented_settings(name, address, data / "tls.crt", data / "tls.key")
    config["modules"][0]["config"] = _module_config(env)
    federation = config["listeners"][0]
    if env.get("V6ALT_INBOUND_WORKER"):
        # The inbound worker has the address. The main process keeps a TLS
        # listener on loopback only, because Synapse makes the TLS context of
        # every process (the worker's too) only when homeserver.yaml's own
        # listeners include a TLS one.
        federation["bind_addresses"] = ["::1"]
    # Clients (and a reverse proxy) on port 8008; the image's HEALTHCHECK asks it.
    client = {
        "port": 8008,
        "bind_addresses": ["::"],
        "type": "http",
        "x_forwarded": True,
        "resources": [{"names": ["client"], "compress": False}],
    }
    config["listeners"] = [client, federation]
    if workers:
        # Replication for the workers, in the processes' shared namespace only.
        config["listeners"].append(
            {
                "port": 9093,
                "bind_addresses": ["::1", "127.0.0.1"],
                "type": "http",
                "resources": [{"names": ["replication"]}],
            }
        )
    return {
        **config,
        "pid_file": str(data / "homeserver.pid"),
        "database": _database(env, data),
        "log_config": str(data / "log.config"),
        "media_store_path": str(data / "media_store"),
        "registration_shared_secret_path": str(data / "registration_shared_secret"),
        "report_stats": False,
        "signing_key_path": str(data / "signing.key"),
        **workers,
    }


def _self_signed(name: str, key: Path, certificate: Path) -> None:
    try:
        self_signed_certificate(name, key, certificate, days=CERTIFICATE_DAYS)
    except CertificateError as error:
        raise SetupError(f"cannot make the TLS certificate for {name}: {error}") from None
    key.chmod(0o600)


def write_prosody_certificate(directory: Path, name: str) -> bool:
    """Prosody's certificate for ``name`` in ``directory`` (``<name>.crt`` and
    ``<name>.key``, self-signed: IP-bound trust needs no CA); False when it is
    there already. Prosody's entrypoint gives them to its own user."""
    certificate, key = directory / f"{name}.crt", directory / f"{name}.key"
    if certificate.exists() and key.exists():
        return False
    directory.mkdir(parents=True, exist_ok=True)
    _self_signed(name, key, certificate)
    return True


def _check_same_name(config_path: Path, name: str, address: IPv6Address) -> None:
    try:
        current = yaml.safe_load(config_path.read_text()) or {}
    except yaml.YAMLError as error:
        raise SetupError(f"{config_path} is not YAML: {error}") from None
    written = current.get("server_name") if isinstance(current, dict) else None
    if written != name:
        raise SetupError(
            f"{config_path} is for {written!r}, but this host is now "
            f"{name} ({address}): a homeserver cannot change its name; use a new volume"
        )


def write_synapse(
    data: Path,
    name: str,
    address: IPv6Address,
    env: Mapping[str, str],
    owner: tuple[int, int] | None = (SYNAPSE_UID, SYNAPSE_UID),
) -> bool:
    """Synapse's files in ``data`` for ``name`` at ``address``; False (nothing
    written) when its homeserver.yaml is there already for the same name,
    :class:`SetupError` when it is there for another. ``owner``: (uid, gid) to
    give every file to, None to leave them the caller's."""
    config_path = data / "homeserver.yaml"
    if config_path.exists():
        _check_same_name(config_path, name, address)
        return False
    workers, worker_configs = worker_files(data, env, address)
    data.mkdir(parents=True, exist_ok=True)
    _self_signed(name, data / "tls.key", data / "tls.crt")
    secret = env.get("V6ALT_REGISTRATION_SECRET") or secrets.token_urlsafe(32)
    files = {
        "signing.key": signing_key(),
        "log.config": LOG_CONFIG,
        "registration_shared_secret": secret + "\n",
        **worker_configs,
    }
    for relative, content in files.items():
        path = data / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    for secret_file in _SECRET_FILES:
        (data / secret_file).chmod(0o600)
    # Written last: its presence is what marks the volume as set up.
    header = (
        f"Written by v6alt docker-setup for {name} ({address}); edit freely, it is\n"
        "kept on restart as long as the address (and so the name) stays."
    )
    config_path.write_text(
        config_yaml(homeserver_settings(data, name, address, env, workers), header)
    )
    if owner is not None:
        for path in [data, *data.rglob("*")]:
            os.chown(path, *owner)
    return True
