"""``v6alt check local`` inside a namespace: homeserver.yaml, sidecar, source address."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv6Address
from pathlib import Path
from string import Template
from typing import Any

import pytest
import yaml

from tests.prosody.servers import DNS_PORT, LOOKUP_PORT, Node, Sidecar, documented_block
from v6alt.codec import encode
from v6alt.prosody_bridge.cli_prosody_module_path import install_module

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


def _prosody_config(directory: Path, body: str) -> Path:
    path = directory / "prosody.cfg.lua"
    path.write_text(body)
    return path


def _with_prosody(pair: Pair, host: Host, prosody: Path) -> Any:
    return pair.check(
        "local",
        "--homeserver-config",
        str(host.homeserver(pair.root)),
        "--sidecar-config",
        str(host.sidecar_config),
        "--prosody-config",
        str(prosody),
        namespace=pair.server,
    )


@pytest.mark.skipif(shutil.which("prosody") is None, reason="needs prosody")
def test_prosody_config_as_documented(pair: Pair, host: Host) -> None:
    # docs/prosody.md's block, as the Prosody tests render it.
    body = Template(documented_block("prosody-config")).substitute(
        plugin_path=install_module(pair.root / "plugins"),
        domain=encode(host.address),
        certificate="/dev/null",
        key="/dev/null",
        lookup_url=f"http://[::1]:{LOOKUP_PORT}",
    )
    result = _with_prosody(pair, host, _prosody_config(pair.root, body))
    assert result.code == 0, result.report["checks"]
    for check in ("config", "module", "plugin_paths", "s2s_secure_auth",
                  "s2s_require_encryption", "lookup_url", "lookup_concurrency"):  # fmt: skip
        assert result.one(f"prosody.{check}")["status"] == "pass", check
    assert result.checks("prosody.component") == []
    assert result.checks("prosody.virtualhost") == []


@pytest.mark.skipif(shutil.which("prosody") is None, reason="needs prosody")
def test_prosody_config_mistakes(pair: Pair, host: Host) -> None:
    body = f"""
plugin_paths = {{ "{pair.root}/nowhere" }}
modules_enabled = {{ "tls"; "saslauth"; "s2s_v6mesh" }}
v6alt_lookup_url = "http://[::1]:5999"
v6alt_lookup_concurrency = 64
VirtualHost "example.org"
    modules_enabled = {{ "v6alt" }}
Component "groups.example.org" "muc"
"""
    result = _with_prosody(pair, host, _prosody_config(pair.root, body))
    assert result.code == 1
    module = result.one("prosody.module")
    assert (
        module["summary"] == "v6alt is not in the global modules_enabled (only under example.org)"
    )
    assert "mod_v6alt is a global module" in module["hint"]
    assert "load one of mod_s2s_v6mesh and mod_v6alt" in result.one("prosody.module.v6mesh")["hint"]
    assert result.one("prosody.plugin_paths")["status"] == "fail"
    assert "v6alt prosody-module-path" in result.one("prosody.plugin_paths")["hint"]
    secure_auth = result.one("prosody.s2s_secure_auth")
    assert secure_auth["status"] == "warn"
    assert secure_auth["summary"] == "s2s_secure_auth is not set (false in Prosody 13)"
    lookup = result.one("prosody.lookup_url")
    assert lookup["summary"] == (
        f"v6alt_lookup_url http://[::1]:5999 is not the sidecar's lookup_listen [::1]:{LOOKUP_PORT}"
    )
    concurrency = result.one("prosody.lookup_concurrency")
    assert concurrency["summary"].startswith(
        "v6alt_lookup_concurrency 64 is not below the sidecar's limits.lookup_connections 64"
    )
    assert "set v6alt_lookup_concurrency = 16" in concurrency["hint"]
    assert result.one("prosody.component")["summary"] == (
        'Component "groups.example.org" does not list v6alt'
    )
    virtual = result.one("prosody.virtualhost")
    assert virtual["status"] == "info"
    assert 'docs/mixed.md, "Keeping a DNS name on the mesh"' in virtual["hint"]


@pytest.mark.skipif(shutil.which("prosody") is None, reason="needs prosody")
def test_prosody_lookup_concurrency_against_the_sidecars_limit(pair: Pair, host: Host) -> None:
    # The default 16 against a sidecar that takes 8 lookup connections.
    sidecar = pair.root / "sidecar-few-lookups.yaml"
    sidecar.write_text(host.sidecar_config.read_text() + "  limits:\n    lookup_connections: 8\n")
    prosody = _prosody_config(pair.root, 'modules_enabled = { "v6alt" }\n')
    result = pair.check(
        "local", "--homeserver-config", str(host.homeserver(pair.root)),
        "--sidecar-config", str(sidecar), "--prosody-config", str(prosody),
        namespace=pair.server,
    )  # fmt: skip
    concurrency = result.one("prosody.lookup_concurrency")
    assert concurrency["status"] == "fail"
    assert concurrency["summary"].startswith(
        "v6alt_lookup_concurrency 16 is not below the sidecar's limits.lookup_connections 8"
    )
    assert "set v6alt_lookup_concurrency = 7" in concurrency["hint"]
    for bad in ('"many"', "0", "5000"):
        prosody.write_text(f'modules_enabled = {{ "v6alt" }}\nv6alt_lookup_concurrency = {bad}\n')
        result = _with_prosody(pair, host, prosody)
        concurrency = result.one("prosody.lookup_concurrency")
        assert concurrency["status"] == "fail", bad
        assert "is not a number from 1 to 1024" in concurrency["summary"], bad


@pytest.mark.skipif(shutil.which("prosody") is None, reason="needs prosody")
def test_prosody_config_that_does_not_load(pair: Pair, host: Host) -> None:
    result = _with_prosody(pair, host, _prosody_config(pair.root, "modules_enabled = {\n"))
    assert result.code == 1
    config = result.one("prosody.config")
    assert config["status"] == "fail"
    assert "prosody.cfg.lua" in config["summary"]
    assert "prosodyctl check config" in config["hint"]


def test_prosody_config_that_is_not_a_file_is_bad_input(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-prosody.cfg.lua"
    done = subprocess.run(
        [sys.executable, "-m", "v6alt", "check", "local", "--prosody-config", str(missing)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert f"--prosody-config {missing}: No such file or directory" in done.stderr
