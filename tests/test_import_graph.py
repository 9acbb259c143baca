"""The product's import graph keeps its one-way directions and has no cycle.

Every ``.py`` file of the product packages (core/, synapse_module/,
prosody_bridge/, check/, deploy/) is parsed with :mod:`ast`; every import in it, at
the top or inside a function, relative ones resolved, and every
``importlib.import_module("...")`` with a literal name, is checked:

- no product module imports the lab (``v6alt.lab``), the tests or the
  benchmarks (by package name or by a helper's bare module name);
- the core imports none of the other parts, and nothing of the network or of
  Synapse (``socket``, ``twisted``, ``synapse``): it stays pure;
- synapse_module and prosody_bridge import only the core, themselves and
  third-party packages;
- check imports only the core, itself and third-party packages (not the
  Prosody bridge, not the Synapse module); so does deploy.

And no product module imports itself back through other product modules,
whatever the parts involved (:func:`import_cycles`). Every import counts
there too: at the top, under ``if TYPE_CHECKING:`` and inside a function. A
deferred import only moves the cycle from import time to call time; the
modules still cannot be read, tested or moved one without the other, so the
shared piece goes into a module both can import. An edge goes to the module
an import names: ``from . import x`` to ``x`` when ``x`` is a module, to the
package's ``__init__`` when ``x`` is a name defined there. Importing ``a.b``
runs ``a/__init__.py`` first, but that is no edge: a package that imports
its own submodules is not a cycle.
"""

from __future__ import annotations

import ast
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
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
    "deploy": "v6alt.deploy",
}
PARTS = {package: folder for folder, package in PRODUCT.items()}
LAB = "v6alt.lab"

# The parts each product part may import, besides itself and third-party code.
ALLOWED = {
    "core": set(),
    "synapse_module": {"core"},
    "prosody_bridge": {"core"},
    "check": {"core"},
    "deploy": {"core"},
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


def from_base(node: ast.ImportFrom, path: Path) -> str:
    """The absolute name of the module a ``from ... import`` statement imports from."""
    if not node.level:
        return node.module or ""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    parts = package.split(".")
    base_parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*base_parts, *([node.module] if node.module else [])])


def import_module_literal(node: ast.Call) -> str | None:
    """The name in an ``importlib.import_module("...")`` call with a literal name."""
    func = node.func
    if not (
        (isinstance(func, ast.Attribute) and func.attr == "import_module")
        or (isinstance(func, ast.Name) and func.id == "import_module")
    ):
        return None
    if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
        return node.args[0].value
    return None


def imports_of(path: Path) -> Iterator[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = from_base(node, path)
            yield Import(path, node.lineno, base)
            # `from package import submodule` imports the submodule too.
            for alias in node.names:
                if alias.name != "*":
                    yield Import(path, node.lineno, f"{base}.{alias.name}")
        elif isinstance(node, ast.Call) and (literal := import_module_literal(node)) is not None:
            yield Import(path, node.lineno, literal)


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


# module -> {product module it imports: "file:line" of its first import there}
Graph = dict[str, dict[str, str]]


def import_graph() -> Graph:
    """The product's modules and the product modules each imports (every
    import: see the module docstring)."""
    modules = {module_name(path): path for path in product_files()}

    def owner(name: str) -> str | None:  # the module a dotted name is in
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: Graph = {}
    for source, path in modules.items():
        lines: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = from_base(node, path)
                names = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            elif (
                isinstance(node, ast.Call) and (literal := import_module_literal(node)) is not None
            ):
                names = [literal]
            else:
                continue
            for name in names:
                target = owner(name)
                if target is not None and target != source:
                    lines[target] = min(lines.get(target, node.lineno), node.lineno)
        where = path.relative_to(ROOT)
        graph[source] = {target: f"{where}:{line}" for target, line in sorted(lines.items())}
    return graph


def import_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's
    algorithm): each holds at least one cycle. Sorted, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph.get(module, ()):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(found)


def one_cycle(graph: Graph, component: list[str]) -> str:
    """A shortest cycle through the component's first module, with the import
    that makes each step: ``a -> b (a.py:3) -> a (b.py:7)``."""
    start = component[0]
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        if start in graph[module]:
            path = [module]
            while path[-1] != start:
                path.append(came_from[path[-1]])
            path.reverse()
            steps = zip(path, [*path[1:], start], strict=True)
            return start + "".join(f" -> {b} ({graph[a][b]})" for a, b in steps)
        for target in graph[module]:
            if target in component and target not in came_from and target != start:
                came_from[target] = module
                queue.append(target)
    raise AssertionError(f"no cycle through {start}")


def test_every_product_part_is_there() -> None:
    for folder in PRODUCT:
        assert (ROOT / folder / "__init__.py").is_file(), folder
    assert product_files()


def test_product_imports_go_one_way() -> None:
    found = violations()
    assert not found, "imports against the one-way directions:\n" + "\n".join(found)


def test_the_product_has_no_import_cycle() -> None:
    graph = import_graph()
    cycles = [one_cycle(graph, component) for component in import_cycles(graph)]
    assert not cycles, "import cycles (move the shared piece into its own module):\n" + (
        "\n".join(cycles)
    )


@pytest.mark.parametrize(
    ("module", "statement", "expected"),
    [
        (
            "v6alt.prosody_bridge.sidecar",
            "from .dns_tcp import x",
            "v6alt.prosody_bridge.dns_tcp",
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


def test_the_cycle_finder_finds_every_cycle() -> None:
    graph = {
        "a": {"b"},
        "b": {"c"},
        "c": {"a", "d"},  # a -> b -> c -> a
        "d": {"e"},
        "e": {"d", "f"},  # d <-> e, reached from the first cycle
        "f": set(),
        "g": {"a", "f"},  # imports a cycle, is in none
    }
    assert import_cycles(graph) == [["a", "b", "c"], ["d", "e"]]
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a", "c"}}) == []


def test_an_import_cycle_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for folder in PRODUCT:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    bridge = tmp_path / "prosody_bridge"
    # One way at the top under TYPE_CHECKING, back inside a function: still a cycle.
    (bridge / "tcp.py").write_text(
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from .log import Log\n"
    )
    (bridge / "log.py").write_text("def make():\n    from . import tcp\n")
    # A package's __init__ importing its own submodules, which import each other
    # one way, is no cycle.
    (tmp_path / "core" / "__init__.py").write_text("from .codec import encode\n")
    (tmp_path / "core" / "codec.py").write_text("from . import errors\n")
    (tmp_path / "core" / "errors.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    graph = import_graph()
    assert graph["v6alt"] == {"v6alt.codec": "core/__init__.py:1"}
    assert graph["v6alt.codec"] == {"v6alt.errors": "core/codec.py:1"}
    assert [one_cycle(graph, component) for component in import_cycles(graph)] == [
        "v6alt.prosody_bridge.log -> v6alt.prosody_bridge.tcp (prosody_bridge/log.py:2)"
        " -> v6alt.prosody_bridge.log (prosody_bridge/tcp.py:4)"
    ]
