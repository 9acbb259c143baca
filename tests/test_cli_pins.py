"""`v6alt pins list|show|forget`, in-process and as a process, with exit codes 0/1/2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_support import run
from v6alt.pin_store import PinStore
from v6alt.pins import Pin

NAME = "fiabbgadu-e.v6.alt:8448"
SPKI = "0123456789abcdef" * 4


@pytest.fixture
def pin_file(tmp_path: Path) -> Path:
    path = tmp_path / "pins.json"
    store = PinStore(path)
    store.update(
        NAME,
        lambda current: Pin(
            NAME,
            "matrix",
            "2a00:1098:3a0::1",
            SPKI,
            {"ed25519:a": "S0VZQQ"},
            1_700_000_000_000,
            1_700_000_000_000,
            ("1700000000000 tls pinned",),
        ),
    )
    store.update("other.v6.alt", lambda current: Pin("other.v6.alt", "xmpp", "2a00::2", "f" * 64))
    return path


def test_list(pin_file: Path) -> None:
    result = run("pins", "list", "--file", str(pin_file))
    assert (result.code, result.err) == (0, "")
    lines = result.out.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{NAME}\tmatrix\t[2a00:1098:3a0::1]")
    assert "keys ed25519:a" in lines[0] and "since 2023-11-14T22:13:20Z" in lines[0]
    document = json.loads(run("pins", "list", "--file", str(pin_file), "--json").out)
    assert [p["name"] for p in document["pins"]] == [NAME, "other.v6.alt"]
    assert document["pins"][0]["spki_sha256"] == SPKI


def test_list_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    result = run("pins", "list", "--file", str(tmp_path / "none.json"))
    assert (result.code, result.out) == (0, f"{tmp_path / 'none.json'}: no pins\n")


def test_show(pin_file: Path) -> None:
    result = run("pins", "show", NAME, "--file", str(pin_file))
    assert result.code == 0
    assert f"tls key (sha256 of SubjectPublicKeyInfo): {SPKI}" in result.out
    assert "  ed25519:a: S0VZQQ" in result.out
    document = json.loads(run("pins", "show", NAME.upper(), "--file", str(pin_file), "--json").out)
    assert document["pin"]["verify_keys"] == {"ed25519:a": "S0VZQQ"}


def test_show_unknown_exits_1(pin_file: Path) -> None:
    result = run("pins", "show", "nobody.v6.alt", "--file", str(pin_file))
    assert (result.code, result.out) == (1, "")
    assert result.err == f"v6alt: pins: nobody.v6.alt: no pin in {pin_file}\n"
    document = json.loads(run("pins", "show", "x.v6.alt", "--file", str(pin_file), "--json").out)
    assert document["pin"] is None


def test_forget(pin_file: Path) -> None:
    result = run("pins", "forget", NAME, "--file", str(pin_file))
    assert result.code == 0 and "pin removed" in result.out
    assert PinStore(pin_file).get(NAME) is None
    assert PinStore(pin_file).get("other.v6.alt") is not None
    again = run("pins", "forget", NAME, "--file", str(pin_file), "--json")
    assert again.code == 1 and json.loads(again.out)["forgotten"] is None


def test_config_names_the_file(pin_file: Path, tmp_path: Path) -> None:
    config = tmp_path / "v6alt.yaml"
    config.write_text(f"pinning:\n  file: {pin_file}\n")
    assert run("pins", "show", NAME, "--config", str(config)).code == 0
    config.write_text("pinning:\n  default: enforce\n")
    result = run("pins", "list", "--config", str(config))
    assert result.code == 2 and "pinning.file is not set" in result.err


@pytest.mark.parametrize(
    "argv",
    [
        ("pins", "list"),  # no file named
        ("pins", "list", "--file", "a", "--config", "b"),
        ("pins", "show", "--file", "a"),  # no NAME
        ("pins", "frobnicate", "--file", "a"),
    ],
)
def test_usage_errors_exit_2(argv: tuple[str, ...]) -> None:
    assert run(*argv).code == 2


@pytest.mark.parametrize("content", ["{broken", '{"format": 9}', '{"format": 1, "pins": []}'])
def test_broken_file_exits_2_with_one_line(tmp_path: Path, content: str) -> None:
    path = tmp_path / "pins.json"
    path.write_text(content)
    for command in (("list",), ("show", NAME), ("forget", NAME)):
        result = run("pins", *command, "--file", str(path))
        assert (result.code, result.out) == (2, "")
        assert result.err.startswith(f"v6alt: pins: {path}: ") and result.err.count("\n") == 1
    assert path.read_text() == content  # never rewritten


def test_as_a_process(pin_file: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "v6alt", "pins", "show", NAME, "--file", str(pin_file), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and json.loads(done.stdout)["pin"]["name"] == NAME
