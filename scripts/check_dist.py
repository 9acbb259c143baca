"""Check the built distributions: scripts/check_dist.py DIST_DIR.

Run by tox's package env after `python -m build`. Runs `twine check --strict`
on the sdist and the wheel (the metadata an index would show), then fails
(exit 1, one line per missing part) when the sdist lacks the Lua modules, the
docs, the systemd units, the rockspec, the Docker files or the LICENSE, or
when the wheel lacks the Lua modules, the units, ``v6alt docker-setup`` or
the LICENSE.
"""

from __future__ import annotations

import fnmatch
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

SDIST_NEEDS = [
    "LICENSE",
    "README.md",
    "docs/synapse.md",
    "docs/docker.md",
    "docs/synapse-homeserver.yaml",
    "prosody_bridge/lua/mod_v6alt.lua",
    "prosody_bridge/lua/v6alt_*.lib.lua",
    "prosody_bridge/units/v6alt-sidecar.service",
    "packaging/mod_v6alt-*.rockspec",
    "docker/synapse/Dockerfile",
    "docker/v6alt/Dockerfile",
    "docker/apt-backports.sh",
    "docker/mesh/compose.yaml",
]
WHEEL_NEEDS = [
    "v6alt/prosody_bridge/lua/mod_v6alt.lua",
    "v6alt/prosody_bridge/lua/v6alt_*.lib.lua",
    "v6alt/prosody_bridge/units/v6alt-sidecar.service",
    "v6alt-*.dist-info/licenses/LICENSE",
    "v6alt/py.typed",
    # `v6alt docker-setup`, which the v6alt image runs (docker/*/compose.yaml).
    "v6alt/deploy/cli_docker_setup.py",
]


def missing(names: list[str], patterns: list[str]) -> list[str]:
    return [p for p in patterns if not fnmatch.filter(names, p)]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: check_dist.py DIST_DIR", file=sys.stderr)
        return 2
    dist = Path(argv[1])
    sdists = sorted(dist.glob("v6alt-*.tar.gz"))
    wheels = sorted(dist.glob("v6alt-*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        print(f"check_dist: expected one sdist and one wheel in {dist}", file=sys.stderr)
        return 1
    twine = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(sdists[0]), str(wheels[0])],
        check=False,
    )
    if twine.returncode != 0:
        print("check_dist: twine check failed (above)", file=sys.stderr)
        return 1
    with tarfile.open(sdists[0]) as sdist:
        # Members are v6alt-<version>/<path>.
        in_sdist = [m.split("/", 1)[1] for m in sdist.getnames() if "/" in m]
    with zipfile.ZipFile(wheels[0]) as wheel:
        in_wheel = wheel.namelist()
    problems = [f"{sdists[0].name} lacks {p}" for p in missing(in_sdist, SDIST_NEEDS)]
    problems += [f"{wheels[0].name} lacks {p}" for p in missing(in_wheel, WHEEL_NEEDS)]
    for problem in problems:
        print(f"check_dist: {problem}", file=sys.stderr)
    if not problems:
        print(f"check_dist: {sdists[0].name} and {wheels[0].name} carry every part")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
