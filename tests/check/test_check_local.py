"""``v6alt check local`` inside a namespace: homeserver.yaml, sidecar, source address."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.prosody.servers import DNS_PORT, LOOKUP_PORT, Node, Sidecar
from v6alt.codec import encode

from .net import Pair, run, self_signed

MODULE = "v6alt.synapse_module.V6AltFederation"


@dataclass
class Host:
    address: IPv6Address
    sidecar: Sidecar
    sidecar_config: Path

    def homeserver(self, directory: Path, **changes: Any) -> Path:
        """A homeserver.yaml like docs/synapse-homeserver.yaml, with ``changes`` applied."""
        config: dict[str, Any] = {
            "server_name": encode(self.address),
            "listeners": [{"port": 8448, "bind_addresses": [str(self.address)], "type": "http",
                           "tls": True, "resources": [{"names": ["federation"]}]}],
            "trusted_key_servers": [],
            "modules": [{"module": MODULE, "config": {"ranges": {"allow": ["200::/7"]}}}],
        }  # fmt: skip
        for key, value in changes.items():
            if value is None:
                config.pop(key)
            else:
                config[key] = value
        path = directory / "homeserver.yaml"
        path.write_text(yaml.safe_dump(config))
        return path


@pytest.fixture
def host(pair: Pair) -> Iterator[Host]:
    """The server namespace as a host: a mesh address, a route into 200::/7, a sidecar
    and something listening on the federation port."""
    address = pair.add_address("200:c::40")
    run(["ip", "-n", pair.server, "route", "add", "200::/7", "dev", "eth0"])
    run_dir = pair.root / "host"
    run_dir.mkdir(mode=0o755)
    shutil.chown(run_dir, "prosody", "prosody")
    yaml_text = (
        f'sidecar:\n  dns_listen: "[::1]:{DNS_PORT}"\n  lookup_listen: "[::1]:{LOOKUP_PORT}"\n'
    )
    sidecar = Sidecar(Node(pair.hosts["srv"], address, run_dir), yaml_text)
    sidecar.start()
    cert, key = self_signed(pair.root, encode(address))
    pair.fake_matrix(address, 8448, cert, key, encode(address))
    try:
        yield Host(address, sidecar, sidecar.config)
    finally:
        sidecar.kill()


def _local(pair: Pair, homeserver: Path, host: Host) -> Any:
    return pair.check(
        "local",
        "--homeserver-config",
        str(homeserver),
        "--sidecar-config",
        str(host.sidecar_config),
        namespace=pair.server,
    )


def test_good_host(pair: Pair, host: Host) -> None:
    result = _local(pair, host.homeserver(pair.root), host)
    assert result.code == 0, result.report["checks"]
    assert result.one("homeserver.module")["status"] == "pass"
    assert result.one("homeserver.listening")["status"] == "pass"
    assert result.one("sidecar.lookup")["status"] == "pass"
    assert result.one("sidecar.dns")["status"] == "pass"
    kernel = [c for c in result.checks("source.kernel") if "200::/7" in c["summary"]]
    assert kernel[0]["summary"] == "towards 200::/7: source 200:c::40"


def test_sidecar_down(pair: Pair, host: Host) -> None:
    host.sidecar.kill()
    result = _local(pair, host.homeserver(pair.root), host)
    assert result.code == 1
    assert result.failed_ids() == ["sidecar.lookup", "sidecar.dns"]
    for check in (result.one("sidecar.lookup"), result.one("sidecar.dns")):
        assert f"v6alt sidecar --config {host.sidecar_config}" in check["hint"]


def test_broken_homeserver_config(pair: Pair, host: Host) -> None:
    other = {"port": 8448, "bind_addresses": ["200:c::41"], "resources": [{"names": ["client"]}]}
    homeserver = host.homeserver(pair.root, modules=[], listeners=[other],
                                 trusted_key_servers=None)  # fmt: skip
    result = _local(pair, homeserver, host)
    assert result.code == 1
    assert result.failed_ids() == ["homeserver.module", "homeserver.listener"]
    assert "modules:" in result.one("homeserver.module")["hint"]
    assert 'bind_addresses: ["200:c::40"]' in result.one("homeserver.listener")["hint"]
    keys = result.one("homeserver.trusted_key_servers")
    assert keys["status"] == "warn" and "trusted_key_servers: []" in keys["hint"]


def test_module_config_error_names_the_key(pair: Pair, host: Host) -> None:
    module = {"module": MODULE, "config": {"ranges": {"allow": ["bogus"]}}}
    result = _local(pair, host.homeserver(pair.root, modules=[module]), host)
    assert result.failed_ids() == ["homeserver.module"]
    assert "ranges.allow[0]" in result.one("homeserver.module")["summary"]


def test_server_name_of_another_address(pair: Pair, host: Host) -> None:
    stranger = IPv6Address("200:c::99")
    homeserver = host.homeserver(pair.root, server_name=encode(stranger))
    result = _local(pair, homeserver, host)
    assert result.code == 1
    assert "source.server_name" in result.failed_ids()
    assert "v6alt whoami" in result.one("source.server_name")["hint"]
    kernel = [c for c in result.checks("source.kernel") if c["status"] == "fail"]
    assert encode(host.address) in kernel[0]["hint"]
