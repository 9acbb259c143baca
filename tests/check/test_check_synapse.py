"""``v6alt check matrix`` and ``check local`` against a real Synapse homeserver.

The homeserver is the synapse tests' helper (tests/synapse/v6s_homeserver.py:
docs/synapse-homeserver.yaml plus test-only settings) run in this test's own
namespace. Skipped when matrix-synapse is not installed in this environment.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .v6c_net import Pair, run


def _have_synapse() -> bool:
    # Without matrix-synapse installed, tests/synapse (no __init__.py) is found
    # as a namespace package "synapse" and find_spec of a submodule raises.
    try:
        return importlib.util.find_spec("synapse.app.homeserver") is not None
    except ImportError:
        return False


pytestmark = pytest.mark.skipif(
    not _have_synapse(),
    reason="matrix-synapse not installed (pip install 'matrix-synapse==1.163.*')",
)


@pytest.fixture
def homeserver(pair: Pair, tmp_path: Path) -> Iterator[Any]:
    sys.path.insert(0, str(Path(__file__).parents[1] / "synapse_module"))
    try:
        from v6s_homeserver import Homeserver
        from v6s_netns import Host
    finally:
        sys.path.pop(0)
    address = pair.add_address("200:c::50")
    run(["ip", "-n", pair.server, "route", "add", "200::/7", "dev", "eth0"])
    server = Homeserver(Host(pair.server, "eth0", [address]), tmp_path / "hs")
    server.prepare()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_real_synapse_passes_every_check(pair: Pair, homeserver: Any) -> None:
    result = pair.check("matrix", homeserver.server_name, timeout=10)
    assert result.code == 0, result.report["checks"]
    assert result.one("version")["summary"].startswith("Synapse 1.")
    signature = result.one("keys.signature")
    assert signature["status"] == "pass" and "ed25519:a_" in signature["summary"]
    assert result.one("tls.trust")["summary"].startswith("IP-bound trust")
    keys = result.report["connections"]["[200:c::50]:8448"]["keys"]
    assert keys["document"]["server_name"] == homeserver.server_name


def test_local_check_of_the_documented_homeserver_yaml(pair: Pair, homeserver: Any) -> None:
    config = homeserver.data_dir / "homeserver.yaml"
    result = pair.check("local", "--homeserver-config", str(config), namespace=pair.server)
    assert result.failed_ids() == [], result.report["checks"]
    assert result.one("homeserver.module")["status"] == "pass"
    assert result.one("homeserver.trusted_key_servers")["status"] == "pass"
    assert result.one("homeserver.listening")["status"] == "pass"
    # No --sidecar-config: a Synapse-only host needs no sidecar, so only a warning.
    assert result.one("sidecar.lookup")["status"] == "warn"
