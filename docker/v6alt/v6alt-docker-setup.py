#!/opt/v6alt/bin/python
"""v6alt-docker-setup: write a compose stack's configuration from its own address.

Runs once in the v6alt image, in the network namespace the servers will use
(``network_mode: service:yggdrasil`` in the mesh stack), before Synapse and
Prosody start (docs/docker.md):

1. waits until the namespace has an address in ``--range`` (200::/7: the
   Yggdrasil node's own address, ~1 s after the node starts; 2000::/3: the
   container's global IPv6) and takes the one the kernel uses as source, as
   ``v6alt whoami --json`` reports it;
2. the server name is that address's canonical ``<label>.v6.alt`` name;
3. writes what is missing: Synapse's ``homeserver.yaml`` (with the v6alt
   module, a federation listener on the address, port 8448, a self-signed
   certificate), its signing key and log config; the sidecar's YAML and
   Prosody's VirtualHost. Files already there are kept when they are for the
   same name (a restart); a different name stops it (exit 1): the address
   changed, and a homeserver cannot change its name.

Prints the server name. Exit 0 done, 1 an error (reason on stderr).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import secrets
import subprocess
import sys
import time
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from v6alt.codec import encode

SYNAPSE_UID = 991  # the official Synapse image runs Synapse as 991:991


class SetupError(Exception):
    pass


def find_address(network: IPv6Network, wait: float) -> IPv6Address:
    """The kernel's source address towards ``network``, from ``v6alt whoami --json``."""
    deadline = time.monotonic() + wait
    last = "no answer"
    while True:
        towards = str(network.network_address + 1)
        done = subprocess.run(
            ["v6alt", "whoami", "--json", "--towards", towards],
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            report: dict[str, Any] = json.loads(done.stdout)
        except ValueError:
            report = {}
            last = done.stderr.strip() or "v6alt whoami printed no JSON"
        for source in report.get("sources", []):
            if source.get("source") and IPv6Address(source["source"]) in network:
                return IPv6Address(source["source"])
        for entry in report.get("addresses", []):
            if IPv6Address(entry["address"]) in network:
                return IPv6Address(entry["address"])
        if report:
            found = len(report.get("addresses", []))
            last = f"no address in {network} yet ({found} mesh addresses)"
        if time.monotonic() > deadline:
            raise SetupError(f"no address in {network} after {wait:.0f} s: {last}")
        time.sleep(0.5)


def self_signed(name: str) -> tuple[bytes, bytes]:
    """A self-signed certificate for ``name`` (PEM) and its key (PEM): IP-bound
    trust needs no CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def signing_key() -> str:
    """A Synapse signing key file's line: ``ed25519 <key id> <unpadded base64 seed>``."""
    seed = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return f"ed25519 a_{secrets.token_hex(2)} {base64.b64encode(seed).decode().rstrip('=')}\n"


LOG_CONFIG = """\
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


def module_config(env: dict[str, str]) -> dict[str, Any]:
    """The v6alt module's ``config:`` (docs/synapse.md; the defaults, written
    out). ``V6ALT_UNSAFE_ALLOW`` (space-separated CIDRs) fills
    ``ranges.unsafe_allow``: for labs on a documentation prefix only."""
    ranges: dict[str, Any] = {"allow": ["200::/7", "2000::/3"], "cjdns": False}
    unsafe = env.get("V6ALT_UNSAFE_ALLOW", "").split()
    if unsafe:
        ranges["unsafe_allow"] = unsafe
    return {
        "ranges": ranges,
        "ip_bound_trust": True,
        "synapse": {
            "inbound_ip_binding": "log",
            "recovery_probe_rate": 300,
            "recovery_probe_interval": 2,
        },
    }


def database(env: dict[str, str], data: Path) -> dict[str, Any]:
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
    data: Path, env: dict[str, str], address: IPv6Address
) -> tuple[dict[str, Any], dict[str, str]]:
    """homeserver.yaml keys and worker config files: ``V6ALT_INBOUND_WORKER``
    names a generic worker taking inbound federation on the address, port 8448;
    ``V6ALT_FEDERATION_SENDERS`` is the number of federation senders sharding the
    outgoing traffic (federation_sender1..N). Every process shares the one
    network namespace, so the main process is at localhost for replication."""
    senders = int(env.get("V6ALT_FEDERATION_SENDERS", "0"))
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
    workers = [*sender_names, *([inbound] if inbound else [])]
    for worker in workers:
        listeners: list[dict[str, Any]] = []
        if worker == inbound:
            listeners.append(
                {
                    "port": 8448,
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


def write_synapse(data: Path, name: str, address: IPv6Address, network: IPv6Network) -> None:
    config_path = data / "homeserver.yaml"
    if config_path.exists():
        current = yaml.safe_load(config_path.read_text()) or {}
        if current.get("server_name") != name:
            raise SetupError(
                f"{config_path} is for {current.get('server_name')!r}, but this host is now "
                f"{name} ({address}): a homeserver cannot change its name; use a new volume"
            )
        return
    env = dict(os.environ)
    data.mkdir(parents=True, exist_ok=True)
    files: dict[str, str | bytes] = {}
    certificate, key = self_signed(name)
    files["tls.crt"], files["tls.key"] = certificate, key
    files["signing.key"] = signing_key()
    files["log.config"] = LOG_CONFIG
    secret = env.get("V6ALT_REGISTRATION_SECRET") or secrets.token_urlsafe(32)
    files["registration_shared_secret"] = secret + "\n"
    worker_keys, worker_configs = worker_files(data, env, address)
    inbound_on_worker = bool(env.get("V6ALT_INBOUND_WORKER"))
    listeners: list[dict[str, Any]] = [
        # Clients (and a reverse proxy) on port 8008; the image's HEALTHCHECK asks it.
        {
            "port": 8008,
            "bind_addresses": ["::"],
            "type": "http",
            "x_forwarded": True,
            "resources": [{"names": ["client"], "compress": False}],
        },
    ]
    # Federation on the server's own address, port 8448 (a v6.alt name without
    # a port is dialled there), TLS with any certificate (IP-bound trust). With
    # an inbound federation worker, that worker has the address; the main
    # process keeps a TLS listener on loopback only, because Synapse makes the
    # TLS context of every process (the worker's too) only when
    # homeserver.yaml's own listeners include a TLS one.
    listeners.append(
        {
            "port": 8448,
            "bind_addresses": ["::1"] if inbound_on_worker else [str(address)],
            "type": "http",
            "tls": True,
            "resources": [{"names": ["federation"]}],
        }
    )
    if worker_keys:
        # Replication for the workers, in the processes' shared namespace only.
        listeners.append(
            {
                "port": 9093,
                "bind_addresses": ["::1", "127.0.0.1"],
                "type": "http",
                "resources": [{"names": ["replication"]}],
            }
        )
    config: dict[str, Any] = {
        "server_name": name,
        "pid_file": str(data / "homeserver.pid"),
        "listeners": listeners,
        "database": database(env, data),
        "log_config": str(data / "log.config"),
        "media_store_path": str(data / "media_store"),
        "registration_shared_secret_path": str(data / "registration_shared_secret"),
        "report_stats": False,
        "signing_key_path": str(data / "signing.key"),
        "tls_certificate_path": str(data / "tls.crt"),
        "tls_private_key_path": str(data / "tls.key"),
        # A mesh or IPv6-only host cannot reach matrix.org: keys come from each server.
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "modules": [
            {"module": "v6alt.synapse_module.V6AltFederation", "config": module_config(env)}
        ],
        **worker_keys,
    }
    files["homeserver.yaml"] = (
        f"# Written by v6alt-docker-setup for {name} ({address}); edit freely, it is\n"
        "# kept on restart as long as the address (and so the name) stays.\n"
        + yaml.safe_dump(config, sort_keys=False)
    )
    files.update(worker_configs)
    for relative, content in files.items():
        path = data / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    for path in [data, *data.rglob("*")]:
        os.chown(path, SYNAPSE_UID, SYNAPSE_UID)
    for secret_file in ("tls.key", "signing.key", "registration_shared_secret"):
        (data / secret_file).chmod(0o600)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="v6alt-docker-setup", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--range",
        type=IPv6Network,
        default=IPv6Network("200::/7"),
        help="where this stack's address is (200::/7 Yggdrasil, 2000::/3 global)",
    )
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for it")
    parser.add_argument("--synapse", type=Path, metavar="DIR", help="Synapse's /data")
    parser.add_argument("--name-file", type=Path, metavar="FILE", help="also write the name here")
    args = parser.parse_args(argv)
    try:
        address = find_address(args.range, args.wait)
        name = encode(address)
        if args.synapse is not None:
            write_synapse(args.synapse, name, address, args.range)
        if args.name_file is not None:
            args.name_file.parent.mkdir(parents=True, exist_ok=True)
            args.name_file.write_text(name + "\n")
    except (SetupError, OSError) as error:
        print(f"v6alt-docker-setup: error: {error}", file=sys.stderr)
        return 1
    print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
