"""`pip install v6alt` without extras: what works, and what names its extra.

A venv with only the wheel and PyYAML, as a user gets from the base install:
`v6alt check` must not blame a healthy peer for the missing `cryptography`
(the `check` extra), and `v6alt sidecar` names the `sidecar` extra.
"""

from __future__ import annotations

import base64
import json
import subprocess
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from v6alt.check.canonical_json import signed_bytes, verify_self_signatures

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def base_python(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A venv with v6alt's wheel and its one dependency, PyYAML, and no extras."""
    root = tmp_path_factory.mktemp("base-install")
    venv.create(root / "venv", with_pip=True)
    python = root / "venv" / "bin" / "python"
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(root / "dist"), str(REPO)], check=True)
    (wheel,) = (root / "dist").glob("v6alt-*.whl")
    subprocess.run([*pip, "install", str(wheel)], check=True)
    missing = subprocess.run(
        [str(python), "-c", "import cryptography"], capture_output=True, check=False
    )
    assert missing.returncode != 0, "the base install pulled in cryptography"
    yield python


def _signed_key_document(server_name: str) -> dict[str, object]:
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    document: dict[str, object] = {
        "server_name": server_name,
        "valid_until_ts": 4_000_000_000_000,
        "verify_keys": {"ed25519:k": {"key": base64.b64encode(public).decode().rstrip("=")}},
    }
    signature = base64.b64encode(private.sign(signed_bytes(document))).decode().rstrip("=")
    document["signatures"] = {server_name: {"ed25519:k": signature}}
    return document


def test_a_valid_signature_is_valid_where_cryptography_is_installed() -> None:
    document = _signed_key_document("a.example")
    assert verify_self_signatures(document, "a.example") == {
        "ed25519:k": {"valid": True, "error": None}
    }


def test_base_install_names_the_check_extra_instead_of_failing_the_peer(
    base_python: Path,
) -> None:
    document = _signed_key_document("a.example")
    script = (
        "import json, sys\n"
        "from v6alt.check.canonical_json import verify_self_signatures\n"
        "print(json.dumps(verify_self_signatures(json.loads(sys.argv[1]), 'a.example')))\n"
    )
    done = subprocess.run(
        [str(base_python), "-c", script, json.dumps(document)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout)["ed25519:k"]
    assert result["valid"] is False and result["unchecked"] is True
    assert "pip install 'v6alt[check]'" in result["error"]
    assert "does not verify" not in result["error"]


def test_base_install_sidecar_names_its_extra(base_python: Path) -> None:
    done = subprocess.run(
        [str(base_python), "-m", "v6alt", "sidecar"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert "pip install 'v6alt[sidecar]'" in done.stderr


def test_base_install_prints_the_systemd_unit(base_python: Path) -> None:
    done = subprocess.run(
        [str(base_python), "-m", "v6alt", "sidecar", "--print-systemd-unit"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"ExecStart={base_python.parent / 'v6alt'} sidecar" in done.stdout


def test_base_install_codec_commands(base_python: Path) -> None:
    done = subprocess.run(
        [str(base_python), "-m", "v6alt", "encode", "2a00:1098:3a0::1"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "fiabbgadu-e.v6.alt"
