"""The module's config is validated by Synapse's config loader, errors name the key."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("synapse.app.homeserver", reason="matrix-synapse is not installed")
import yaml

from v6alt.config import Config
from v6alt.lab import LabError
from v6alt.lab.matrix.files import HomeserverFiles
from v6alt.lab.matrix.homeserver import synapse_command
from v6alt.lab.netns import FlatNet
from v6alt.synapse_module import V6AltFederation

from .homeserver import Homeserver, log_config, render_config

pytestmark = pytest.mark.integration

BAD_CONFIGS = [
    (
        {"ranges": {"allow": ["200::/7", "200::/129"]}},
        "modules.<item 0>.config.ranges.allow.<item 1>",
        "200::/129",
    ),
    (
        {"synapse": {"inbound_ip_binding": "sometimes"}},
        "modules.<item 0>.config.synapse.inbound_ip_binding",
        "sometimes",
    ),
    ({"ip_bond_trust": True}, "modules.<item 0>.config.ip_bond_trust", "ip_bound_trust"),
    (
        {"secure_ranges": [{"cidr": "202::/16", "tls": "maybe"}]},
        "modules.<item 0>.config.secure_ranges.<item 0>.tls",
        "maybe",
    ),
]


def _values(tmp: Path) -> dict[str, str]:
    return {
        "server_name": "ai-e.v6.alt",
        "mesh_address": "200::1",
        "tls_certificate_path": str(tmp / "tls.crt"),
        "tls_private_key_path": str(tmp / "tls.key"),
        "data_dir": str(tmp),
        "registration_secret": "x",
    }


@pytest.mark.parametrize(("config", "path", "detail"), BAD_CONFIGS)
def test_synapse_refuses_to_start_naming_the_key(
    tmp_path: Path, config: Any, path: str, detail: str
) -> None:
    # An existing log config: otherwise Synapse writes one (and a log) into the cwd.
    (tmp_path / "log.yaml").write_text(log_config(tmp_path / "homeserver.log"))
    (tmp_path / "homeserver.yaml").write_text(
        yaml.safe_dump(render_config(_values(tmp_path), module_config=config))
    )
    result = subprocess.run(
        synapse_command(HomeserverFiles(tmp_path, _values(tmp_path)["server_name"])),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"Error in configuration at '{path}'" in output, output
    assert detail in output, output


def test_parse_config_returns_the_frozen_core_config() -> None:
    parsed = V6AltFederation.parse_config({"synapse": {"inbound_ip_binding": "enforce"}})
    assert isinstance(parsed, Config)
    assert parsed.synapse.inbound_ip_binding == "enforce"
    assert V6AltFederation.parse_config({}) == Config()
    with pytest.raises(AttributeError):
        parsed.ip_bound_trust = False  # type: ignore[misc]


def test_non_canonical_own_server_name_stops_start_up(
    mesh: FlatNet,
    start_homeservers: Callable[..., list[Homeserver]],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    host = mesh["h"]
    hs = Homeserver(host, tmp_path_factory.mktemp("hs-upper"))
    hs.extra = {"server_name": hs.server_name.upper()}
    with pytest.raises(LabError, match="exited at start-up"):
        start_homeservers(hs)
    assert "is not the canonical v6.alt name" in hs.output_tail(200)
