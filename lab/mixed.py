"""Mixed worlds in the lab: DNS names served by unbound beside v6.alt names.

What docs/mixed.md's recipes need around the servers themselves:

- a DNS zone (``mixed.example``) served by Debian's unbound inside a host's
  namespace on ``[::1]:53``, from local data only (AAAA and SRV records;
  every other name is NXDOMAIN at once, no query leaves the host), and
  optionally ``.v6.alt`` forwarded to the host's sidecar as docs/dns.md
  shows (a host-wide resolver that answers v6.alt names);
- the host's ``resolv.conf`` pointing at it: ``ip netns exec`` bind-mounts
  ``/etc/netns/<namespace>/resolv.conf`` over ``/etc/resolv.conf``, so every
  process started in the host afterwards (Synapse's getaddrinfo and SRV
  client, Prosody's libunbound) asks it;
- an HTTPS server for ``/.well-known/matrix/server`` (:mod:`.well_known`).

::

    zone = ZoneRecords().aaaa("hs.mixed.example", address).srv(
        "_matrix-fed._tcp", "mixed.example", "fiabbgadu-e.v6.alt", 8448)
    start_zone_unbound(host, directory, zone, v6alt_forward=5353)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any, Final

from .errors import LabError, LabTimeoutError
from .local_servers import SIDECAR_READY, sidecar_command, unbound_binary, unbound_server_lines
from .netns import FlatHost, find_tool

__all__ = [
    "ZONE",
    "ZoneRecords",
    "start_resolver_sidecar",
    "start_well_known",
    "start_zone_unbound",
    "zone_unbound_config",
]

#: The test zone, under the reserved ``.example`` (RFC 2606). Not ``.test``: libunbound
#: (Prosody's resolver) answers every ``.test`` name NXDOMAIN itself, a default local zone.
ZONE: Final = "mixed.example"
STARTUP_TIMEOUT: Final = 20.0


def _check_name(name: str) -> str:
    if not name.isascii() or any(c in name for c in '" \\\n') or not name.strip("."):
        raise ValueError(f"DNS name {name!r} is not a plain ASCII host name")
    return name.rstrip(".")


@dataclass
class ZoneRecords:
    """Resource records in unbound's ``local-data`` form, added one by one."""

    lines: list[str] = field(default_factory=list)

    def aaaa(self, name: str, address: IPv6Address | str) -> ZoneRecords:
        self.lines.append(f"{_check_name(name)}. 300 IN AAAA {IPv6Address(address)}")
        return self

    def srv(self, service: str, name: str, target: str, port: int) -> ZoneRecords:
        """``<service>.<name>`` (``service`` e.g. ``_matrix-fed._tcp``) -> ``target:port``."""
        owner = f"{_check_name(service)}.{_check_name(name)}"
        self.lines.append(f"{owner}. 300 IN SRV 10 0 {port} {_check_name(target)}.")
        return self


def zone_unbound_config(
    directory: Path,
    records: ZoneRecords,
    *,
    zone: str = ZONE,
    v6alt_forward: int | None = None,
) -> str:
    """unbound.conf on [::1]:53: ``records`` for ``zone``, NXDOMAIN for every other
    name; with ``v6alt_forward``, ``.v6.alt`` forwarded to the sidecar's DNS on
    ``[::1]:<v6alt_forward>`` (the forward-zone of docs/dns.md)."""
    lines = [
        *unbound_server_lines(directory, 53, logfile=str(directory / "unbound.log"), verbosity=1),
        # Local data only: nothing is looked up elsewhere, so no query leaves the host.
        '    local-zone: "." static',
        f'    local-zone: "{_check_name(zone)}." static',
        *(f'    local-data: "{line}"' for line in records.lines),
    ]
    if v6alt_forward is not None:
        lines += [
            "    do-not-query-localhost: no",
            '    domain-insecure: "v6.alt."',
            # Not the static "." zone: resolved by the forward-zone below.
            '    local-zone: "v6.alt." transparent',
            "forward-zone:",
            '    name: "v6.alt."',
            f"    forward-addr: ::1@{v6alt_forward}",
        ]
    lines += ["remote-control:", "    control-enable: no"]
    return "\n".join(lines) + "\n"


def _wait(what: str, ready: Any, process: subprocess.Popen[Any], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not ready():
        if process.poll() is not None:
            raise LabError(f"{what} exited at start-up: {log.read_text(errors='replace')[-2000:]}")
        if time.monotonic() > deadline:
            raise LabTimeoutError(f"{what} did not start in {STARTUP_TIMEOUT:g} s")
        time.sleep(0.1)


def start_zone_unbound(
    host: FlatHost,
    directory: Path,
    records: ZoneRecords,
    *,
    zone: str = ZONE,
    v6alt_forward: int | None = None,
) -> subprocess.Popen[str]:
    """unbound for ``host`` on [::1]:53 (:func:`zone_unbound_config`), and the host's
    resolv.conf pointing at it; returns once it answers. ``host.stop()`` stops it."""
    binary = unbound_binary()
    if binary is None:
        raise LabError("unbound is not installed (apt-get install unbound)")
    dig = find_tool("dig", "dnsutils", "apt-get install dnsutils")
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "unbound.conf"
    config.write_text(
        zone_unbound_config(directory, records, zone=zone, v6alt_forward=v6alt_forward)
    )
    checked = subprocess.run(
        ["unbound-checkconf", str(config)], capture_output=True, text=True, check=False
    )
    if checked.returncode != 0:
        raise LabError(f"bad unbound config {config}: {checked.stdout}{checked.stderr}")
    host.set_resolv_conf("nameserver ::1\noptions timeout:1 attempts:2\n")
    output = directory / "unbound.out"
    with output.open("w") as out:
        process = host.popen(
            [binary, "-d", "-c", str(config)], stdout=out, stderr=subprocess.STDOUT
        )

    def answers() -> bool:
        probe = host.run([dig, "@::1", "+time=1", "+tries=1", zone, "SOA"], check=False)
        return "status: " in probe.stdout

    _wait(f"unbound in {host.netns}", answers, process, output)
    return process


def start_resolver_sidecar(
    host: FlatHost, directory: Path, dns_port: int = 5353, lookup_port: int = 5380
) -> subprocess.Popen[str]:
    """A sidecar in ``host`` with the default config, its DNS on ``[::1]:dns_port``:
    with :func:`start_zone_unbound` (``v6alt_forward=dns_port``) the host's resolver
    answers v6.alt names (docs/dns.md), for servers without v6alt. Returns once it
    serves; ``host.stop()`` stops it."""
    directory.mkdir(parents=True, exist_ok=True)
    config, log = directory / "sidecar.yaml", directory / "sidecar.log"
    config.write_text("{}\n")
    with log.open("w") as out:
        process = host.popen(
            sidecar_command(config, f"[::1]:{dns_port}", f"[::1]:{lookup_port}"),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    _wait(f"the sidecar in {host.netns}", lambda: SIDECAR_READY in log.read_text(), process, log)
    return process


def start_well_known(
    host: FlatHost,
    directory: Path,
    listen: IPv6Address,
    certificate: Path,
    key: Path,
    routes: Mapping[str, Mapping[str, Any]],
    port: int = 443,
) -> subprocess.Popen[str]:
    """The HTTPS server of :mod:`.well_known` in ``host`` on ``[listen]:port``;
    ``routes``: ``"host/path"`` -> ``{"json": ...}`` or ``{"status": 301, "location": URL}``.
    Requests are logged to ``directory/well-known.log``; returns once it serves."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "well-known.json"
    log = directory / "well-known.log"
    config.write_text(
        json.dumps(
            {
                "listen": [str(listen), port],
                "certificate": str(certificate),
                "key": str(key),
                "log": str(log),
                "routes": dict(routes),
            }
        )
    )
    process = host.popen(
        [sys.executable, "-m", "v6alt.lab.well_known", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if line != "ready":
        raise LabError(f"the .well-known server in {host.netns} did not start: {line}")
    return process
