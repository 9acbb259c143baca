"""The packaged install without Docker on Debian 13, as README's Deploy has it:
a venv in /opt/v6alt from the wheel, the sidecar's unit printed by that
install and accepted by `systemd-analyze verify`, the sidecar running from
it. In a container of a local Debian 13 base image (the host is Debian 12,
where tests/packaging checks the same), with no network at all: pip installs
from a directory of wheels for Debian 13's Python."""

from __future__ import annotations

import json
import re

import pytest

from v6alt.lab.docker.engine import Engine
from v6alt.lab.docker.images import TRIXIE, base_image, wheelhouse

from .conftest import REPO

pytestmark = pytest.mark.integration

SCRIPT = r"""
set -eu
. /etc/os-release
echo "release: $VERSION_ID"
python3 -m venv /opt/v6alt
/opt/v6alt/bin/pip install --quiet --no-index --find-links /dist \
    "$(ls /dist/v6alt-*.whl)[sidecar,check]"
/opt/v6alt/bin/v6alt sidecar --print-systemd-unit > /etc/systemd/system/v6alt-sidecar.service
grep '^ExecStart=' /etc/systemd/system/v6alt-sidecar.service
findings=$(systemd-analyze verify /etc/systemd/system/v6alt-sidecar.service 2>&1)
echo "verify: ok [$findings]"
mkdir -p /etc/v6alt
/opt/v6alt/bin/v6alt config defaults > /etc/v6alt/sidecar.yaml
/opt/v6alt/bin/v6alt sidecar --config /etc/v6alt/sidecar.yaml \
    --dns 127.0.0.1:5353 --lookup 127.0.0.1:5380 > /tmp/sidecar.log 2>&1 &
for _ in $(seq 100); do
    if /opt/v6alt/bin/python -c "import urllib.request as u; \
print('health:', u.urlopen('http://127.0.0.1:5380/v1/health', timeout=1).read().decode())" \
        2>/dev/null; then
        break
    fi
    sleep 0.2
done
/opt/v6alt/bin/python -c "import urllib.request as u; \
print('resolve:', u.urlopen('http://127.0.0.1:5380/v1/resolve?name=fiabbgadu-e.v6.alt').read().decode())"
"""


def test_venv_install_with_its_systemd_unit_on_debian_13(
    engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> None:
    work = tmp_path_factory.mktemp("trixie")
    image, _ = base_image(engine, work, TRIXIE)
    python = engine.docker(
        [
            "run",
            "--rm",
            "--network",
            "none",
            image,
            "python3",
            "-c",
            "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')",
        ]
    ).strip()
    dist = wheelhouse(REPO, work / "dist", ["v6alt[sidecar,check]"], python_version=python)
    out = engine.docker(
        ["run", "--rm", "--network", "none", "-v", f"{dist}:/dist:ro", image, "bash", "-c", SCRIPT]
    )
    assert "release: 13" in out
    (exec_start,) = re.findall(r"^ExecStart=(.*)$", out, re.MULTILINE)
    assert exec_start == "/opt/v6alt/bin/v6alt sidecar --config /etc/v6alt/sidecar.yaml"
    # Exit 0 (set -e) and nothing to report.
    assert "verify: ok []" in out
    health = re.search(r"^health: (.*)$", out, re.MULTILINE)
    assert health, out
    resolved = json.loads(re.findall(r"^resolve: (.*)$", out, re.MULTILINE)[0])
    assert resolved["address"] == "2a00:1098:3a0::1", resolved
