"""The lab homeserver's config is the documented homeserver.yaml snippet, plus lab-only keys.

No root, no Synapse process: the files are written to a temporary directory
and compared with docs/synapse-homeserver.yaml filled in the same way.
"""

from __future__ import annotations

import shutil
from importlib.util import find_spec
from ipaddress import IPv6Address
from pathlib import Path
from string import Template

import pytest
import yaml

from v6alt.codec import encode
from v6alt.lab.matrix.files import HomeserverFiles, write_homeserver_files

DOCS_SNIPPET = Path(__file__).resolve().parents[2] / "docs" / "synapse-homeserver.yaml"
ADDRESS = IPv6Address("200:cab8:deb4:ce60:4362:4492:e539:4b5")


@pytest.fixture
def files(tmp_path: Path) -> HomeserverFiles:
    if find_spec("signedjson") is None or shutil.which("openssl") is None:
        pytest.skip("needs matrix-synapse (signedjson) and openssl")
    files = HomeserverFiles(tmp_path, encode(ADDRESS))
    write_homeserver_files(files, ADDRESS)
    return files


def test_every_documented_setting_is_used_unchanged(files: HomeserverFiles) -> None:
    documented = yaml.safe_load(
        Template(DOCS_SNIPPET.read_text()).substitute(
            server_name=files.server_name,
            mesh_address=str(ADDRESS),
            tls_certificate_path=str(files.tree / "tls.crt"),
            tls_private_key_path=str(files.tree / "tls.key"),
        )
    )
    config = yaml.safe_load(files.config.read_text())
    listeners = config.pop("listeners")
    assert listeners[: len(documented["listeners"])] == documented.pop("listeners")
    for key, value in documented.items():
        assert config[key] == value, key


def test_lab_settings_sqlite_shared_secret_and_a_unix_client_socket(
    files: HomeserverFiles,
) -> None:
    config = yaml.safe_load(files.config.read_text())
    assert config["server_name"] == "aiamvog6wthgaq3cisjokoiewu.v6.alt"
    assert config["database"]["name"] == "sqlite3"
    assert config["registration_shared_secret"] == files.secret()
    assert config["trusted_key_servers"] == []
    client = [entry for entry in config["listeners"] if "path" in entry]
    assert client == [
        {"path": str(files.client_socket), "type": "http", "resources": [{"names": ["client"]}]}
    ]
    assert all(Path(config[k]).parent == files.tree for k in ("signing_key_path", "log_config"))
    assert files.config.stat().st_mode & 0o077 == 0  # it holds the registration secret
