"""``v6alt check matrix`` and ``check local`` against a real Synapse homeserver.

The homeserver is the Synapse tests' (tests/synapse_module/homeserver.py: the
lab's launcher on docs/synapse-homeserver.yaml plus test-only settings) run in
this test's own namespace. Skipped when matrix-synapse is not installed in this environment.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from v6alt.lab.matrix import synapse_installed

from ..synapse_module.homeserver import Homeserver
from .net import Pair, run

pytestmark = pytest.mark.skipif(
    not synapse_installed(),
    reason="matrix-synapse not installed (pip install 'matrix-synapse==1.163.*')",
)


@pytest.fixture
def homeserver(pair: Pair, tmp_path: Path) -> Iterator[Any]:
    pair.add_address("200:c::50")
    run(["ip", "-n", pair.server, "route", "add", "200::/7", "dev", "eth0"])
    server = Homeserver(pair.hosts["srv"], tmp_path / "hs")
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
