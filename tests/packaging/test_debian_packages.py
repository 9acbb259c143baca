"""The Debian packages of debian/, as scripts/build-debs.sh builds them from
this checkout's HEAD: lintian has no error or warning (the script fails
otherwise), and each package holds what it must: the v6alt command and
package without the lab, the sidecar's unit, user, conffile and state
directory, mod_v6alt where Debian's Prosody finds it.

One build for the module; the reproducibility of the .deb files is
tests/packaging/test_release.py (it builds a release commit twice)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import v6alt

REPO = Path(__file__).resolve().parents[2]
LUA = REPO / "prosody_bridge" / "lua"
BUILD_TOOLS = ("dpkg-buildpackage", "dh", "dh_python3", "lintian")

pytestmark = [
    pytest.mark.skipif(
        any(shutil.which(tool) is None for tool in BUILD_TOOLS),
        reason="Debian build tools missing (scripts/install-deps.sh packaging)",
    ),
    pytest.mark.skipif(not (REPO / ".git").exists(), reason="not a git checkout"),
]


@pytest.fixture(scope="module")
def debs() -> Iterator[dict[str, Path]]:
    """The .deb files of HEAD by package name."""
    out = Path(tempfile.mkdtemp(prefix="v6alt-debs-"))
    try:
        built = subprocess.run(
            ["bash", str(REPO / "scripts" / "build-debs.sh"), str(out)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert built.returncode == 0, built.stderr[-4000:]
        paths = [Path(line) for line in built.stdout.split()]
        yield {path.name.split("_")[0]: path for path in paths}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _files(deb: Path) -> set[str]:
    listing = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True
    ).stdout
    names = subprocess.run(["tar", "-t"], input=listing, capture_output=True, check=True).stdout
    return {"/" + name.removeprefix("./").rstrip("/") for name in names.decode().split()}


def _field(deb: Path, name: str) -> str:
    done = subprocess.run(
        ["dpkg-deb", "--field", str(deb), name], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def _control_file(deb: Path, name: str) -> str:
    done = subprocess.run(
        ["dpkg-deb", "--info", str(deb), name], capture_output=True, text=True, check=False
    )
    return done.stdout if done.returncode == 0 else ""


def _extract(deb: Path, into: Path) -> Path:
    subprocess.run(["dpkg-deb", "-x", str(deb), str(into)], check=True)
    return into


def test_the_three_packages_are_built_at_the_version(debs: dict[str, Path]) -> None:
    assert sorted(debs) == ["prosody-mod-v6alt", "python3-v6alt", "v6alt-sidecar"]
    for deb in debs.values():
        assert _field(deb, "Version") == v6alt.__version__
        assert _field(deb, "Architecture") == "all"


def test_python3_v6alt_holds_the_command_and_the_package_without_the_lab(
    debs: dict[str, Path],
) -> None:
    files = _files(debs["python3-v6alt"])
    site = "/usr/lib/python3/dist-packages"
    assert "/usr/bin/v6alt" in files
    for module in ("__init__.py", "cli.py", "synapse_module/__init__.py", "check/__init__.py"):
        assert f"{site}/v6alt/{module}" in files
    assert f"{site}/v6alt/prosody_bridge/sidecar.py" in files
    assert f"{site}/v6alt/prosody_bridge/units/v6alt-sidecar.service" in files
    assert not any(name.startswith(f"{site}/v6alt/lab") for name in files)
    depends = _field(debs["python3-v6alt"], "Depends")
    assert "python3-yaml" in depends
    assert "python3-cryptography" in _field(debs["python3-v6alt"], "Recommends")


def test_the_debian_command_runs_without_the_lab(debs: dict[str, Path], tmp_path: Path) -> None:
    root = _extract(debs["python3-v6alt"], tmp_path)
    env = {**os.environ, "PYTHONPATH": str(root / "usr/lib/python3/dist-packages")}
    done = subprocess.run(
        [
            "/usr/bin/python3",
            "-c",
            "import sys; from v6alt.cli import main; sys.exit(main())",
            "--help",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    assert re.search(r"^\s+encode\s", done.stdout, re.MULTILINE)
    assert not re.search(r"^\s+lab\s", done.stdout, re.MULTILINE)


def test_the_sidecar_package_holds_its_unit_user_conffile_and_state(
    debs: dict[str, Path], tmp_path: Path
) -> None:
    deb = debs["v6alt-sidecar"]
    files = _files(deb)
    units = {
        "/lib/systemd/system/v6alt-sidecar.service",
        "/usr/lib/systemd/system/v6alt-sidecar.service",
    }
    (unit_path,) = units & files
    assert "/etc/v6alt/sidecar.yaml" in files
    assert "/var/lib/v6alt" in files
    assert _control_file(deb, "conffiles").split() == ["/etc/v6alt/sidecar.yaml"]
    depends = _field(deb, "Depends")
    for needed in ("python3-twisted", "python3-prometheus-client", "adduser"):
        assert needed in depends
    assert f"python3-v6alt (= {v6alt.__version__})" in depends

    root = _extract(deb, tmp_path)
    unit = (root / unit_path.lstrip("/")).read_text()
    assert "ExecStart=/usr/bin/v6alt sidecar --config /etc/v6alt/sidecar.yaml\n" in unit
    assert "User=_v6alt\n" in unit
    assert "DynamicUser" not in unit
    assert "StateDirectory=v6alt\n" in unit
    defaults = subprocess.run(
        [sys.executable, "-m", "v6alt", "config", "defaults"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert (root / "etc/v6alt/sidecar.yaml").read_text() == defaults

    postinst = _control_file(deb, "postinst")
    assert "adduser --system" in postinst and "_v6alt" in postinst
    # debhelper's systemd snippets: enabled on install, restarted on upgrade.
    assert "deb-systemd-helper" in postinst and "v6alt-sidecar.service" in postinst


def test_prosody_finds_mod_v6alt_and_its_libraries(debs: dict[str, Path], tmp_path: Path) -> None:
    deb = debs["prosody-mod-v6alt"]
    assert _field(deb, "Depends").startswith("prosody (>= 0.12.3~)")
    modules = "/usr/lib/prosody/modules/mod_v6alt"
    shipped = {name for name in _files(deb) if name.startswith(modules + "/")}
    assert shipped == {f"{modules}/{lua.name}" for lua in LUA.glob("*.lua")}
    if shutil.which("lua5.4") is None or not Path("/usr/lib/prosody/loader.lua").exists():
        return
    # Debian's prosody sets CFG_PLUGINDIR to /usr/lib/prosody/modules/; its
    # loader resolves module:load("v6alt") and module:require("v6alt_compat")
    # from the package's files with no plugin_paths.
    root = _extract(deb, tmp_path)
    plugindir = root / "usr/lib/prosody/modules"
    probe = (
        f'CFG_PLUGINDIR = "{plugindir}/"\n'
        'package.path = "/usr/lib/prosody/?.lua;" .. package.path\n'
        'package.cpath = "/usr/lib/prosody/?.so;" .. package.cpath\n'
        'require "loader"\n'
        'local loader = require "prosody.util.pluginloader"\n'
        'local _, main = loader.load_resource("v6alt")\n'
        'local _, lib = loader.load_resource("v6alt", "v6alt_compat.lib.lua")\n'
        "print(main) print(lib)\n"
    )
    found = subprocess.run(["lua5.4", "-e", probe], capture_output=True, text=True, check=False)
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == [
        f"{plugindir}/mod_v6alt/mod_v6alt.lua",
        f"{plugindir}/mod_v6alt/v6alt_compat.lib.lua",
    ]


def test_debian_changelog_is_at_the_version() -> None:
    first = (REPO / "debian" / "changelog").read_text().splitlines()[0]
    assert first.startswith(f"v6alt ({v6alt.__version__}) ")
