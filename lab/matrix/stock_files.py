"""The files of the stock-Synapse baseline on lab hosts: DNS names, a test CA, unbound.

The benchmarks compare the v6alt module with Synapse as an operator runs it
today: no module, server names that are DNS names (``<host>.lab.example``,
under the reserved ``example`` top-level domain) whose AAAA records give the
host's mesh address, and federation certificates signed by a certificate
authority every homeserver of the comparison trusts
(``federation_custom_ca_list``, verification on). Everything else (the
federation listener on ``[mesh address]:8448``, ``trusted_key_servers: []``,
the lab settings) is the same as for the module's homeservers, so the two
differ only in how a peer is named, found and trusted.

The names are served by an unbound inside each host's namespace on
``[::1]:53``, from local data only: ``.`` is a static zone, so a name the lab
does not define is answered NXDOMAIN at once and no query leaves the host.
Synapse finds that server through ``resolv.conf`` in the DNS directory, which
the lab mounts over ``/etc/resolv.conf`` for the homeserver's process alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv6Address
from pathlib import Path
from typing import ClassVar, Final

from ..certificates import LabCa, make_lab_ca
from ..local_servers import unbound_server_lines
from ..service_control import ServiceTree
from .files import HomeserverFiles, write_homeserver_files

__all__ = [
    "STOCK_ZONE",
    "DnsFiles",
    "LabCa",
    "make_lab_ca",
    "stock_server_name",
    "unbound_config",
    "write_dns_files",
    "write_stock_homeserver_files",
]

STOCK_ZONE: Final = "lab.example"
DNS_LISTEN: Final = "::1"


def stock_server_name(host: str) -> str:
    """The DNS name of lab host ``host`` (``a`` -> ``a.lab.example``)."""
    if not host.isalnum() or not host.isascii():
        raise ValueError(f"host name {host!r} is not a single DNS label of letters and digits")
    return f"{host.lower()}.{STOCK_ZONE}"


def write_stock_homeserver_files(
    files: HomeserverFiles, mesh_address: IPv6Address, ca: LabCa
) -> None:
    """Config, CA-signed certificate, signing key and secret into ``files.tree`` (already made).

    The module's documented settings without the module, trusting the test CA,
    whose certificate is copied in (``ca.crt``); its key is not.
    """
    if not files.server_name.endswith(f".{STOCK_ZONE}"):
        raise ValueError(f"server name {files.server_name!r} is not a name under {STOCK_ZONE}")
    write_homeserver_files(files, mesh_address, ca=ca)


@dataclass(frozen=True)
class DnsFiles(ServiceTree):
    """Where one host's unbound keeps its config, log and the resolv.conf that points at it."""

    log_name: ClassVar[str] = "unbound.log"

    @property
    def config(self) -> Path:
        return self.tree / "unbound.conf"

    @property
    def resolv_conf(self) -> Path:
        return self.tree / "resolv.conf"


def unbound_config(files: DnsFiles, records: Mapping[str, IPv6Address]) -> str:
    """unbound.conf answering ``records`` (name -> AAAA) and NXDOMAIN for anything else."""
    for name in records:
        if not name.endswith(f".{STOCK_ZONE}") or not name.isascii() or '"' in name:
            raise ValueError(f"DNS record name {name!r} is not a name under {STOCK_ZONE}")
    lines = [
        *unbound_server_lines(files.tree, 53, logfile=str(files.log), verbosity=1),
        # Local data only: nothing is looked up elsewhere, so no query leaves the host.
        '    local-zone: "." static',
        f'    local-zone: "{STOCK_ZONE}." static',
        *(f'    local-data: "{name}. 300 IN AAAA {address}"' for name, address in records.items()),
    ]
    return "\n".join(lines) + "\n"


def write_dns_files(files: DnsFiles, records: Mapping[str, IPv6Address]) -> None:
    """unbound.conf and resolv.conf into ``files.tree`` (already made)."""
    files.config.write_text(unbound_config(files, records))
    # One quick retry: the server is local, an unanswered query means it is not up.
    files.resolv_conf.write_text(f"nameserver {DNS_LISTEN}\noptions timeout:1 attempts:2\n")
    files.resolv_conf.chmod(0o644)
