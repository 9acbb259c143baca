"""mod_v6alt's rock: the rockspec matches v6alt and the Lua files, and
`prosodyctl install` puts the rock built offline by scripts/build-rock.sh into
a Prosody 13 installer plugin directory where Prosody's loader finds the
module and its libraries. (That the installed module federates is
tests/docker/test_mesh.py: the Prosody image is built this way.)"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import v6alt

REPO = Path(__file__).resolve().parents[2]
LUA = REPO / "prosody_bridge" / "lua"


def _rockspec() -> Path:
    (spec,) = (REPO / "packaging").glob("mod_v6alt-*.rockspec")
    return spec


def test_rockspec_is_versioned_as_v6alt() -> None:
    spec = _rockspec()
    assert spec.name == f"mod_v6alt-{v6alt.__version__}-1.rockspec"
    assert f'version = "{v6alt.__version__}-1"' in spec.read_text()


def test_rockspec_ships_every_lua_file() -> None:
    text = _rockspec().read_text()
    shipped = set(re.findall(r'"prosody_bridge/lua/([^"]+)"', text))
    assert shipped == {p.name for p in LUA.glob("*.lua")}
    for library in LUA.glob("v6alt_*.lib.lua"):
        stem = library.name.removesuffix(".lib.lua")
        # module:require("x") from mod_v6alt finds <installer>/share/lua/5.4/mod_v6alt/x.lua
        assert f'["mod_v6alt.{stem}"] = "prosody_bridge/lua/{library.name}"' in text


@pytest.fixture
def prosody_readable_dir() -> Iterator[Path]:
    """A directory the prosody user can enter (pytest's tmp_path is closed to it)."""
    path = Path(tempfile.mkdtemp(prefix="v6alt-rock-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.integration
@pytest.mark.skipif(
    shutil.which("luarocks") is None or shutil.which("prosodyctl") is None,
    reason="luarocks or Prosody missing (scripts/install-deps.sh packaging prosody)",
)
def test_prosodyctl_installs_the_rock_offline(prosody_readable_dir: Path) -> None:
    tmp_path = prosody_readable_dir
    out = tmp_path / "dist"
    built = subprocess.run(
        [str(REPO / "scripts" / "build-rock.sh"), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    rock = Path(built.stdout.strip())
    assert rock.name == f"mod_v6alt-{v6alt.__version__}-1.all.rock"
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    config = tmp_path / "prosody.cfg.lua"
    config.write_text(
        f'data_path = "{tmp_path}"\ninstaller_plugin_path = "{plugins}"\n'
        f'pidfile = "{tmp_path}/prosody.pid"\n'
    )
    # prosodyctl runs luarocks as the prosody user when started as root.
    if os.geteuid() == 0:
        shutil.chown(plugins, "prosody", "prosody")
    # No network: luarocks installs the local rock; an unset proxy to nowhere
    # makes any download attempt fail instead of reaching out.
    env = {**os.environ, "http_proxy": "http://[::1]:9", "https_proxy": "http://[::1]:9"}
    subprocess.run(
        ["prosodyctl", "--config", str(config), "install", str(rock)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    installed = plugins / "share" / "lua" / "5.4"
    assert (installed / "mod_v6alt.lua").read_bytes() == (LUA / "mod_v6alt.lua").read_bytes()
    for library in LUA.glob("v6alt_*.lib.lua"):
        copy = installed / "mod_v6alt" / library.name.replace(".lib.lua", ".lua")
        assert copy.read_bytes() == library.read_bytes()
    # Prosody's own loader, as it runs for module:load("v6alt") and
    # module:require("v6alt_compat"), resolves both from the installer directory.
    probe = (
        f'CFG_PLUGINDIR = "{plugins}/"\n'
        'package.path = "/usr/lib/prosody/?.lua;" .. package.path\n'
        'package.cpath = "/usr/lib/prosody/?.so;" .. package.cpath\n'
        'require "loader"\n'
        'local loader = require "prosody.util.pluginloader"\n'
        'local _, main = loader.load_resource("v6alt")\n'
        'local _, lib = loader.load_resource("v6alt", "v6alt_compat.lua")\n'
        "print(main) print(lib)\n"
    )
    found = subprocess.run(["lua5.4", "-e", probe], capture_output=True, text=True, check=False)
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == [
        f"{plugins}/share/lua/5.4/mod_v6alt.lua",
        f"{plugins}/share/lua/5.4/mod_v6alt/v6alt_compat.lua",
    ]
