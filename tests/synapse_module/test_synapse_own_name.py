"""A server_name that is not a canonical v6.alt name stops Synapse with one clean
"Error in configuration" message (the module refuses it when Synapse parses the
module's config), not a start-up traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("synapse.app.homeserver", reason="matrix-synapse is not installed")
import yaml

from v6alt.synapse_module.module import V6AltFederation, own_name_problem

from .homeserver import log_config, render_config

pytestmark = pytest.mark.integration

CASES = [
    ("AI-E.v6.alt", "is not the canonical v6.alt name of 200::1", "use ai-e.v6.alt"),
    ("AI-E.v6.alt:8448", "is not the canonical v6.alt name of 200::1", "use ai-e.v6.alt:8448"),
    ("aiaaaaaaaaaaaaaaaaaaaaaaae.v6.alt", "canonical v6.alt name of 200::1", "use ai-e.v6.alt"),
    ("x.v6.alt", "is not a v6.alt name", "label 'x'"),
]


def _start(tmp: Path, server_name: str) -> subprocess.CompletedProcess[str]:
    values = {
        "server_name": server_name,
        "mesh_address": "200::1",
        "tls_certificate_path": str(tmp / "tls.crt"),
        "tls_private_key_path": str(tmp / "tls.key"),
        "data_dir": str(tmp),
        "registration_secret": "x",
    }
    # An existing log config: otherwise Synapse writes one (and a log) into the cwd.
    (tmp / "log.yaml").write_text(log_config(tmp / "homeserver.log"))
    (tmp / "homeserver.yaml").write_text(yaml.safe_dump(render_config(values)))
    return subprocess.run(
        [sys.executable, "-m", "synapse.app.homeserver", "-c", str(tmp / "homeserver.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp,
    )


@pytest.mark.parametrize(("server_name", "problem", "fix"), CASES, ids=[c[0] for c in CASES])
def test_bad_own_server_name_is_one_config_error(
    tmp_path: Path, server_name: str, problem: str, fix: str
) -> None:
    result = _start(tmp_path, server_name)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    assert "Error in configuration at 'modules.<item 0>.config'" in output, output
    assert problem in output and fix in output, output
    assert f"v6alt: server_name {server_name!r}"[:40] in output, output


def test_own_name_problem() -> None:
    assert own_name_problem("ai-e.v6.alt") is None
    assert own_name_problem("ai-e.v6.alt:8448") is None
    assert own_name_problem("groups.ai-e.v6.alt") is None
    assert own_name_problem("example.org") is None
    problem = own_name_problem("Groups.AI-E.v6.alt")
    assert problem is not None and problem.endswith("use groups.ai-e.v6.alt")
    long = own_name_problem("x" * 5000 + ".v6.alt")
    assert long is not None and len(long) < 600


def test_parse_config_outside_synapse_does_not_judge_a_name() -> None:
    # No homeserver config is being read: nothing to judge, the config is parsed.
    assert V6AltFederation.parse_config({}) is not None
