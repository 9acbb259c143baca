"""The stock-Synapse baseline's files: no module, a DNS name, a CA-signed certificate, unbound.

No root, no Synapse process: the files are written to a temporary directory;
openssl checks the certificate chain and unbound-checkconf the DNS config.
"""

from __future__ import annotations

import shutil
import subprocess
from importlib.util import find_spec
from ipaddress import IPv6Address
from pathlib import Path

import pytest
import yaml

from v6alt.codec import encode
from v6alt.lab.matrix.files import HomeserverFiles, write_homeserver_files
from v6alt.lab.matrix.stock_files import (
    DnsFiles,
    LabCa,
    make_lab_ca,
    stock_server_name,
    unbound_config,
    write_dns_files,
    write_stock_homeserver_files,
)

ADDRESS = IPv6Address("200:cab8:deb4:ce60:4362:4492:e539:4b5")
PEER = IPv6Address("202:3e2c:f69a:c7c5:201e:c3d3:3f05:2676")


def _needs_synapse_and_openssl() -> None:
    if find_spec("signedjson") is None or shutil.which("openssl") is None:
        pytest.skip("needs matrix-synapse (signedjson) and openssl")


@pytest.fixture
def ca(tmp_path: Path) -> LabCa:
    _needs_synapse_and_openssl()
    return make_lab_ca(tmp_path / "ca")


@pytest.fixture
def stock(tmp_path: Path, ca: LabCa) -> HomeserverFiles:
    files = HomeserverFiles(tmp_path / "stock", "a.lab.example")
    files.tree.mkdir()
    write_stock_homeserver_files(files, ADDRESS, ca)
    return files


def test_stock_server_names_are_dns_names_under_the_reserved_zone() -> None:
    assert stock_server_name("a") == "a.lab.example"
    for bad in ("a.b", "", "ä", "a b"):
        with pytest.raises(ValueError, match="single DNS label"):
            stock_server_name(bad)


def test_stock_config_has_no_module_and_verifies_against_the_test_ca(
    stock: HomeserverFiles,
) -> None:
    config = yaml.safe_load(stock.config.read_text())
    assert config["server_name"] == "a.lab.example"
    assert "modules" not in config
    assert config["federation_verify_certificates"] is True
    assert config["federation_custom_ca_list"] == [str(stock.tree / "ca.crt")]
    assert not (stock.tree / "ca.key").exists()  # the CA's key stays with the CA
    assert stock.config.stat().st_mode & 0o077 == 0


def test_stock_certificate_is_issued_for_the_server_name(stock: HomeserverFiles, ca: LabCa) -> None:
    def verify(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["openssl", "verify", "-x509_strict", "-CAfile", str(stock.tree / "ca.crt"),
             "-verify_hostname", name, str(stock.tree / "tls.crt")],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip

    assert verify("a.lab.example").returncode == 0, verify("a.lab.example").stdout
    assert verify("b.lab.example").returncode != 0


def test_stock_and_module_configs_differ_only_in_naming_and_trust(
    tmp_path: Path, stock: HomeserverFiles
) -> None:
    module = HomeserverFiles(tmp_path / "module", encode(ADDRESS))
    module.tree.mkdir()
    write_homeserver_files(module, ADDRESS)
    ours, theirs = (yaml.safe_load(f.config.read_text()) for f in (stock, module))
    differing = {key for key in ours.keys() | theirs.keys() if key not in ours or key not in theirs}
    assert differing == {"modules", "federation_verify_certificates", "federation_custom_ca_list"}
    changed = {
        key
        for key in ours.keys() & theirs.keys()
        if yaml.safe_dump(ours[key]).replace(str(stock.tree), "T")
        != yaml.safe_dump(theirs[key]).replace(str(module.tree), "T")
    }
    assert changed == {"server_name", "registration_shared_secret"}


def test_stock_files_refuse_a_name_outside_the_lab_zone(tmp_path: Path, ca: LabCa) -> None:
    files = HomeserverFiles(tmp_path, "a.example.org")
    with pytest.raises(ValueError, match=r"not a name under lab\.example"):
        write_stock_homeserver_files(files, ADDRESS, ca)


def test_unbound_answers_only_the_lab_names(tmp_path: Path) -> None:
    files = DnsFiles(tmp_path)
    write_dns_files(files, {"a.lab.example": ADDRESS, "b.lab.example": PEER})
    text = files.config.read_text()
    assert f'local-data: "a.lab.example. 300 IN AAAA {ADDRESS}"' in text
    assert f'local-data: "b.lab.example. 300 IN AAAA {PEER}"' in text
    assert 'local-zone: "." static' in text  # nothing is looked up outside
    assert "forward-zone" not in text
    assert files.resolv_conf.read_text().splitlines()[0] == "nameserver ::1"
    checkconf = shutil.which("unbound-checkconf") or "/usr/sbin/unbound-checkconf"
    if not Path(checkconf).exists():
        pytest.skip("unbound is not installed (apt-get install unbound)")
    proc = subprocess.run(
        [checkconf, str(files.config)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_unbound_config_refuses_names_outside_the_lab_zone(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"not a name under lab\.example"):
        unbound_config(DnsFiles(tmp_path), {"example.org": ADDRESS})
