"""docker/matrix-docker-ansible-deploy/vars.yml, the section docs/docker.md
gives matrix-docker-ansible-deploy users, loaded as the playbook would."""

from __future__ import annotations

from ipaddress import IPv6Address
from pathlib import Path
from typing import Any

import yaml

from v6alt.codec import decode, encode
from v6alt.config import parse_config

VARS = Path(__file__).resolve().parents[2] / "docker" / "matrix-docker-ansible-deploy" / "vars.yml"


def _vars() -> dict[str, Any]:
    loaded = yaml.safe_load(VARS.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_the_image_customization_installs_the_module() -> None:
    data = _vars()
    assert data["matrix_synapse_container_image_customizations_enabled"] is True
    body = data["matrix_synapse_container_image_customizations_dockerfile_body_custom"]
    assert body.strip().splitlines() == ["RUN pip install --no-cache-dir v6alt"]


def test_the_module_entry_is_a_valid_v6alt_config() -> None:
    (entry,) = _vars()["matrix_synapse_modules"]
    assert entry["module"] == "v6alt.synapse_module.V6AltFederation"
    config = parse_config(entry["config"])
    assert config.ip_bound_trust is True
    assert config.synapse.inbound_ip_binding == "log"


def test_server_name_and_federation_address_agree() -> None:
    data = _vars()
    name = data["matrix_domain"]
    assert encode(decode(name)) == name  # canonical, or every peer refuses it
    bind = data["matrix_synapse_container_federation_api_tls_host_bind_port"]
    address, port = bind.rsplit(":", 1)
    assert IPv6Address(address.strip("[]")) == decode(name)
    assert port == "8448"


def test_keys_come_from_each_server() -> None:
    data = _vars()
    assert data["matrix_synapse_trusted_key_servers"] == []
    extension = yaml.safe_load(data["matrix_synapse_configuration_extension_yaml"])
    assert extension == {"suppress_key_server_warning": True}
    assert data["matrix_synapse_tls_federation_listener_enabled"] is True
