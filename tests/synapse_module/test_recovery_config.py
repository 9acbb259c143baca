"""The recovery's probe limits from the module config: the documented snippet, bad values."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("synapse.app.homeserver", reason="matrix-synapse is not installed")

from synapse.config._base import ConfigError

from v6alt.synapse_module import V6AltFederation

DOCS = Path(__file__).resolve().parents[2] / "docs" / "synapse.md"


def _documented_module_config() -> Any:
    """The yaml block of docs/synapse.md that sets the recovery's limits."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    (block,) = [b for b in blocks if "recovery_probe_rate" in b]
    return yaml.safe_load(block)["modules"][0]["config"]


def test_the_documented_limits_are_the_defaults_and_parse() -> None:
    config = V6AltFederation.parse_config(_documented_module_config())
    assert config.synapse.recovery_probe_rate == 300
    assert config.synapse.recovery_probe_interval == 2.0
    assert V6AltFederation.parse_config({}).synapse == config.synapse


def test_limits_are_read() -> None:
    config = V6AltFederation.parse_config(
        {"synapse": {"recovery_probe_rate": 50, "recovery_probe_interval": 1.5}}
    )
    assert (config.synapse.recovery_probe_rate, config.synapse.recovery_probe_interval) == (50, 1.5)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("recovery_probe_rate", 0),
        ("recovery_probe_rate", 10_001),
        ("recovery_probe_rate", "many"),
        ("recovery_probe_rate", 2.5),
        ("recovery_probe_interval", 0.1),
        ("recovery_probe_interval", -2),
        ("recovery_probe_interval", "soon"),
    ],
)
def test_a_bad_limit_is_a_config_error_naming_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError) as e:
        V6AltFederation.parse_config({"synapse": {key: value}})
    assert e.value.path == ["synapse", key], (e.value.path, str(e.value))
    assert str(e.value).startswith("v6alt: ")
