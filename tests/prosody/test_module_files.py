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
from v6alt.prosody_bridge import module_path


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), streams=Streams(io.StringIO(), out, err))
    return code, out.getvalue(), err.getvalue()


def test_module_is_package_data() -> None:
    shipped = resources.files("v6alt.prosody_bridge") / "lua" / "mod_v6alt.lua"
    assert shipped.is_file()
    assert module_path.module_directory() == Path(str(shipped)).parent


def test_prosody_module_path_prints_the_directory() -> None:
    code, out, err = run_cli("prosody-module-path")
    assert (code, err) == (0, "")
    assert (Path(out.strip()) / "mod_v6alt.lua").is_file()


def test_prosody_module_path_json() -> None:
    code, out, _ = run_cli("prosody-module-path", "--json")
    assert code == 0
    answer = json.loads(out)
    assert answer["present"] is True
    assert answer["module"] == "mod_v6alt.lua"
    assert Path(answer["path"]) == module_path.module_directory()


def test_prosody_module_path_fails_when_the_file_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(module_path, "module_directory", lambda: tmp_path)
    code, out, err = run_cli("prosody-module-path")
    assert code == 1
    assert out.strip() == str(tmp_path)
    assert err == f"v6alt: prosody-module-path: mod_v6alt.lua is missing from {tmp_path}\n"


def test_prosody_module_path_rejects_arguments() -> None:
    code, _, err = run_cli("prosody-module-path", "extra")
    assert code == 2
    assert "unrecognized arguments: extra" in err


@pytest.mark.skipif(shutil.which("luacheck") is None, reason="luacheck not installed (lua-check)")
def test_lua_module_passes_luacheck() -> None:
    result = subprocess.run(
        ["luacheck", "--std", "lua54", "--globals", "module", "--no-max-line-length",
         "--formatter", "plain", str(module_path.module_directory() / "mod_v6alt.lua")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout
