"""The product's import graph keeps its one-way directions.

Every ``.py`` file of the product packages (core/, synapse_module/,
prosody_bridge/, check/) is parsed with :mod:`ast`; every import in it, at
the top or inside a function, relative ones resolved, and every
``importlib.import_module("...")`` with a literal name, is checked:

- no product module imports the lab (``v6alt.lab``), the tests or the
  benchmarks (by package name or by a helper's bare module name);
- the core imports none of the other parts, and nothing of the network or of
  Synapse (``socket``, ``twisted``, ``synapse``): it stays pure;
- synapse_module and prosody_bridge import only the core, themselves and
  third-party packages;
- check imports only the core, itself and third-party packages (not the
  Prosody bridge, not the Synapse module).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Source folder -> import package (pyproject.toml's package-dir).
PRODUCT = {
    "core": "v6alt",
    "synapse_module": "v6alt.synapse_module",
    "prosody_bridge": "v6alt.prosody_bridge",
    "check": "v6alt.check",
}
PARTS = {package: folder for folder, package in PRODUCT.items()}
LAB = "v6alt.lab"

# The parts each product part may import, besides itself and third-party code.
ALLOWED = {
    "core": set(),
    "synapse_module": {"core"},
    "prosody_bridge": {"core"},
    "check": {"core"},
}
# Third-party or standard modules the pure core must not import at all.
NOT_IN_CORE = ("socket", "twisted", "synapse")


class Import(NamedTuple):
    path: Path
    line: int
    name: str  # absolute dotted name (a module, or a name inside one)


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT)
    package = PRODUCT[relative.parts[0]]
    inner = list(relative.with_suffix("").parts[1:])
    if inner[-1] == "__init__":
        inner.pop()
    return ".".join([package, *inner])


def product_files() -> list[Path]:
    return sorted(path for folder in PRODUCT for path in (ROOT / folder).rglob("*.py"))


def imports_of(path: Path) -> Iterator[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base_parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            yield Import(path, node.lineno, base)
            # `from package import submodule` imports the submodule too.
            for alias in node.names:
                if alias.name != "*":
                    yield Import(path, node.lineno, f"{base}.{alias.name}")
        elif (
            isinstance(node, ast.Call)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id == "import_module")
            )
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield Import(path, node.lineno, node.args[0].value)


def part_of(name: str) -> str | None:
    """The product part (or "lab") a dotted name belongs to; None outside v6alt."""
    if name == LAB or name.startswith(LAB + "."):
        return "lab"
    for package, folder in PARTS.items():
        if package != "v6alt" and (name == package or name.startswith(package + ".")):
            return folder
    if name == "v6alt" or name.startswith("v6alt."):
        return "core"
    return None


def helper_names() -> set[str]:
    """Bare module names of the tests' and benchmarks' helpers (they put their folders on
    sys.path), standard-library names left out."""
    names = {"tests", "benchmarks", "conftest"}
    for folder in ("tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            names.add(path.stem)
            names.update(part for part in path.relative_to(ROOT / folder).parts[:-1])
    return names - set(sys.stdlib_module_names) - {"__init__"}


def violations() -> list[str]:
    """One line per offending import statement and reason."""
    helpers = helper_names()
    found: dict[tuple[str, str], str] = {}  # (file:line, reason) -> the shortest name
    for path in product_files():
        source_part = path.relative_to(ROOT).parts[0]
        for item in imports_of(path):
            top = item.name.partition(".")[0]
            target = part_of(item.name)
            if target == "lab":
                reason = "the lab"
            elif target is None and top in helpers:
                reason = "tests or benchmarks"
            elif (
                target is not None and target != source_part and target not in ALLOWED[source_part]
            ):
                reason = f"{source_part} must not import {target}"
            elif source_part == "core" and top in NOT_IN_CORE:
                reason = "the core stays pure"
            else:
                continue
            key = (f"{item.path.relative_to(ROOT)}:{item.line}", reason)
            if key not in found or len(item.name) < len(found[key]):
                found[key] = item.name
    return sorted(f"{where}: imports {name} ({reason})" for (where, reason), name in found.items())


def test_every_product_part_is_there() -> None:
    for folder in PRODUCT:
        assert (ROOT / folder / "__init__.py").is_file(), folder
    assert product_files()


def test_product_imports_go_one_way() -> None:
    found = violations()
    assert not found, "imports against the one-way directions:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("module", "statement", "expected"),
    [
        (
            "v6alt.prosody_bridge.sidecar",
            "from .dns_server import x",
            "v6alt.prosody_bridge.dns_server",
        ),
        ("v6alt.prosody_bridge.sidecar", "from .. import dns_wire", "v6alt.dns_wire"),
        ("v6alt.check.matrix", "from ..lab import mesh", "v6alt.lab"),
        ("v6alt.cli", "from .codec import encode", "v6alt.codec"),
    ],
)
def test_relative_imports_are_resolved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, statement: str, expected: str
) -> None:
    folder = {package: folder for folder, package in PRODUCT.items()}[module.rpartition(".")[0]]
    path = tmp_path / folder / (module.rpartition(".")[2] + ".py")
    path.parent.mkdir()
    path.write_text(statement + "\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert expected in {item.name for item in imports_of(path)}


def test_a_lab_import_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for folder in PRODUCT:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "vectors.py").write_text("")
    (tmp_path / "synapse_module" / "bad.py").write_text("def f():\n    from v6alt.lab import x\n")
    (tmp_path / "core" / "net.py").write_text("import socket\nfrom .check import y\n")
    (tmp_path / "check" / "hint.py").write_text(
        "import importlib\n"
        "import vectors\n"
        "importlib.import_module('v6alt.prosody_bridge.sidecar')\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = "\n".join(violations())
    assert "synapse_module/bad.py:2: imports v6alt.lab" in found
    assert "core/net.py:1: imports socket (the core stays pure)" in found
    assert "core/net.py:2: imports v6alt.check (core must not import check)" in found
    assert "check/hint.py:2: imports vectors (tests or benchmarks)" in found
    assert "check/hint.py:3: imports v6alt.prosody_bridge.sidecar" in found
