"""``v6alt docker-setup``: write a compose stack's configuration from its own address.

Runs once in the v6alt image, in the network namespace the servers will use
(``network_mode: service:yggdrasil`` in the mesh stack), before Synapse and
Prosody start (docs/docker.md):

1. waits until the namespace has an address in ``--range`` (200::/7: the
   Yggdrasil node's own address, ~1 s after the node starts; 2000::/3: the
   container's global IPv6) and takes the one the kernel uses as source, as
   ``v6alt whoami`` finds it;
2. the server name is that address's canonical ``<label>.v6.alt`` name;
3. with ``--synapse DIR``, writes Synapse's ``homeserver.yaml`` (the v6alt
   module, a federation listener on the address, port 8448, a self-signed
   certificate), its signing key and log config, owned by the official
   image's user (991). Files already there are kept when they are for the
   same name (a restart); a different name stops it (exit 1): the address
   changed, and a homeserver cannot change its name;
4. with ``--prosody-certificates DIR``, makes Prosody's self-signed
   certificate for the name there once (``<name>.crt``, ``<name>.key``);
   with ``--name-file FILE`` it writes the name there too, for Prosody's
   entrypoint.

Prints the server name. Exit 0 done, 1 an error (reason on stderr), 2 bad usage.
"""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Callable, Mapping
from ipaddress import IPv6Network
from pathlib import Path
from typing import Final

from v6alt.cli_common import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Streams,
    SubParsers,
    add_command,
)
from v6alt.codec import encode
from v6alt.hostinfo import MESH_RANGES, RouteGet, ip_route_get, read_if_inet6

from .docker_setup import SetupError, find_address, write_prosody_certificate, write_synapse

__all__ = ["register"]

_EPILOG: Final = """\
The environment fills in homeserver.yaml (docs/docker.md):
  V6ALT_REGISTRATION_SECRET  the registration shared secret (default: random)
  V6ALT_UNSAFE_ALLOW         never-dial CIDRs to federate with anyway (labs only)
  POSTGRES_HOST, POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB   PostgreSQL
  REDIS_HOST, V6ALT_INBOUND_WORKER, V6ALT_FEDERATION_SENDERS     workers

exit status: 0 done (the server name printed); 1 no address in time, files
  for another name, or a file that could not be written; 2 bad usage.
"""


def _run(
    args: argparse.Namespace,
    io: Streams,
    *,
    read_addresses: Callable[[], str],
    route_get: RouteGet,
    environ: Mapping[str, str],
) -> int:
    network: IPv6Network = args.range
    if not any(network.subnet_of(mesh) for mesh in MESH_RANGES.values()):
        ranges = ", ".join(str(mesh) for mesh in MESH_RANGES.values())
        io.error("docker-setup", f"--range {network} lies in none of the mesh ranges {ranges}")
        return EXIT_USAGE
    try:
        address = find_address(network, args.wait, read_addresses, route_get)
        name = encode(address)
        if args.synapse is not None:
            write_synapse(args.synapse, name, address, environ)
        if args.prosody_certificates is not None:
            write_prosody_certificate(args.prosody_certificates, name)
        if args.name_file is not None:
            args.name_file.parent.mkdir(parents=True, exist_ok=True)
            args.name_file.write_text(name + "\n")
    except SetupError as error:
        io.error("docker-setup", str(error))
        return EXIT_CHECK_FAILED
    except OSError as error:
        where = f" {error.filename}" if error.filename else ""
        io.error("docker-setup", f"cannot write{where}: {error.strerror or error}")
        return EXIT_CHECK_FAILED
    io.stdout.write(name + "\n")
    return EXIT_OK


def register(
    subparsers: SubParsers,
    *,
    read_addresses: Callable[[], str] = read_if_inet6,
    route_get: RouteGet = ip_route_get,
    environ: Mapping[str, str] = os.environ,
) -> None:
    """Add ``docker-setup`` to the ``v6alt`` command; the readers and the
    environment are injectable for tests."""
    parser = add_command(
        subparsers,
        "docker-setup",
        summary="write a compose stack's configuration from its own address",
        description=(
            "Wait for this network namespace's address in --range, print its v6.alt\n"
            "name, and write what is missing for it: Synapse's homeserver.yaml,\n"
            "certificate, signing key and log config (--synapse), Prosody's certificate\n"
            "(--prosody-certificates), the name (--name-file)."
        ),
        handler=functools.partial(
            _run, read_addresses=read_addresses, route_get=route_get, environ=environ
        ),
        epilog=_EPILOG,
    )
    parser.add_argument(
        "--range",
        type=IPv6Network,
        default=IPv6Network("200::/7"),
        help="where this stack's address is (200::/7 Yggdrasil, 2000::/3 global)",
    )
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for it")
    parser.add_argument("--synapse", type=Path, metavar="DIR", help="Synapse's /data")
    parser.add_argument(
        "--prosody-certificates",
        type=Path,
        metavar="DIR",
        help="make Prosody's certificate for the name here (NAME.crt, NAME.key)",
    )
    parser.add_argument("--name-file", type=Path, metavar="FILE", help="also write the name here")
