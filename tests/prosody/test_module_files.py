"""The Lua module ships with the package and ``v6alt prosody-module-path`` finds it."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest

from v6alt.cli import main
from v6alt.cli_common import Streams
from v6alt.prosody_bridge import cli_prosody_module_path


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), streams=Streams(io.StringIO(), out, err))
    return code, out.getvalue(), err.getvalue()


def test_module_is_package_data() -> None:
    shipped = resources.files("v6alt.prosody_bridge") / "lua" / "mod_v6alt.lua"
    assert shipped.is_file()
    assert cli_prosody_module_path.module_directory() == Path(str(shipped)).parent


def test_prosody_module_path_prints_the_directory() -> None:
    code, out, err = run_cli("prosody-module-path")
    assert code == 0
    assert (Path(out.strip()) / "mod_v6alt.lua").is_file()
    # Silent unless the installed package is out of Prosody's reach.
    blocked = cli_prosody_module_path.unreachable_part(cli_prosody_module_path.module_directory())
    assert (err == "") is (blocked is None)


SHIPPED_LUA = (
    "mod_v6alt.lua",
    "v6alt_compat.lib.lua",
    "v6alt_dialback.lib.lua",
    "v6alt_internals.lib.lua",
    "v6alt_lookup_client.lib.lua",
    "v6alt_lookup_queue.lib.lua",
    "v6alt_metrics.lib.lua",
    "v6alt_pinning.lib.lua",
    "v6alt_probe_scheduler.lib.lua",
    "v6alt_resolver.lib.lua",
    "v6alt_s2s_recovery.lib.lua",
)


def shipped_copy(root: Path) -> Path:
    directory = root / "lua"
    directory.mkdir(parents=True)
    for name in SHIPPED_LUA:
        source = resources.files("v6alt.prosody_bridge") / "lua" / name
        (directory / name).write_bytes(source.read_bytes())
    return directory


@pytest.fixture
def private_copy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The module files installed under a directory closed to other users; returns it."""
    private = tmp_path / "private"
    directory = shipped_copy(private)
    private.chmod(0o700)
    monkeypatch.setattr(cli_prosody_module_path, "module_directory", lambda: directory)
    return private


def test_prosody_module_path_warns_when_prosody_cannot_read_it(private_copy: Path) -> None:
    private, directory = private_copy, private_copy / "lua"
    code, out, err = run_cli("prosody-module-path", "--json")
    assert code == 0
    assert json.loads(out)["readable_by_prosody"] is False
    blocked = cli_prosody_module_path.unreachable_part(directory)
    assert blocked is not None and private.is_relative_to(blocked)
    assert f"cannot read {directory}: {blocked} is closed to other users" in err
    assert "--install DIR" in err


def test_prosody_module_path_install_copies_the_module(private_copy: Path, tmp_path: Path) -> None:
    private = private_copy
    target = tmp_path / "prosody-modules"
    code, out, err = run_cli("prosody-module-path", "--install", str(target))
    assert (code, out.strip()) == (0, str(target))
    for name in SHIPPED_LUA:
        installed = target / name
        assert installed.read_bytes() == (private / "lua" / name).read_bytes()
        assert installed.stat().st_mode & 0o777 == 0o644
    assert cli_prosody_module_path.unreachable_part(target) is None or err != ""


def test_prosody_module_path_install_refuses_a_target_under_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, _, err = run_cli("prosody-module-path", "--install", str(blocker / "sub"))
    assert code == 2
    assert err == (
        f"v6alt: prosody-module-path: --install {str(blocker / 'sub')!r}: lies under {blocker}, "
        "which is a file, not a directory\n"
    )


def test_prosody_module_path_json() -> None:
    code, out, _ = run_cli("prosody-module-path", "--json")
    assert code == 0
    answer = json.loads(out)
    assert answer["present"] is True
    assert answer["module"] == "mod_v6alt.lua"
    assert Path(answer["path"]) == cli_prosody_module_path.module_directory()


def test_prosody_module_path_fails_when_the_file_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(cli_prosody_module_path, "module_directory", lambda: tmp_path)
    code, out, err = run_cli("prosody-module-path")
    assert code == 1
    assert out.strip() == str(tmp_path)
    assert err == f"v6alt: prosody-module-path: mod_v6alt.lua is missing from {tmp_path}\n"


def test_prosody_module_path_rejects_arguments() -> None:
    code, _, err = run_cli("prosody-module-path", "extra")
    assert code == 2
    assert "unrecognized arguments: extra" in err


# The repository's one luacheck configuration (tox's lint env uses it too).
LUACHECKRC = Path(__file__).resolve().parents[2] / ".luacheckrc"


@pytest.mark.skipif(shutil.which("luacheck") is None, reason="luacheck not installed (lua-check)")
def test_lua_module_passes_luacheck() -> None:
    files = sorted(str(path) for path in cli_prosody_module_path.module_directory().glob("*.lua"))
    assert len(files) == len(SHIPPED_LUA)
    assert LUACHECKRC.is_file()
    result = subprocess.run(
        ["luacheck", "--config", str(LUACHECKRC), "--formatter", "plain", *files],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout
