"""mypy --strict on the whole v6alt package, as it is imported.

The source folders are mapped to subpackages by pyproject.toml's
``package-dir`` (core/ is ``v6alt``, lab/ is ``v6alt.lab``, ...), which
mypy cannot follow; this builds the import tree from that mapping out of
symlinks in a temporary directory and checks it there. Needs mypy,
mypy-zope (Synapse's interfaces), Synapse, Twisted and the other packages
the code imports (tox env ``types``).

    python scripts/typecheck.py [MYPY ARGS...]      (Python 3.11 or newer: tomllib)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]


def build_tree(root: Path) -> None:
    """Symlink every source folder where its package would be installed."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping: dict[str, str] = setuptools["package-dir"]
    # Parents before children: a subpackage's link goes inside its parent's folder.
    for package in sorted(mapping, key=lambda name: name.count(".")):
        target = root.joinpath(*package.split("."))
        source = REPO / mapping[package]
        if "." not in package:
            target.mkdir(parents=True)
            for entry in source.iterdir():
                if entry.name != "__pycache__":
                    (target / entry.name).symlink_to(entry)
        else:
            target.symlink_to(source, target_is_directory=True)


def main(argv: list[str]) -> int:
    settings = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]
    with tempfile.TemporaryDirectory(prefix="v6alt-typecheck.") as tmp:
        root = Path(tmp)
        build_tree(root / "tree")
        # pyproject's [tool.mypy] plus the zope plugin, which only this check needs.
        config = root / "mypy.ini"
        lines = ["[mypy]", "plugins = mypy_zope:plugin"]
        lines += [f"{key} = {value}" for key, value in settings.items()]
        config.write_text("\n".join(lines) + "\n")
        command = [sys.executable, "-m", "mypy", "--config-file", str(config), "-p", "v6alt"]
        tree = str(root / "tree")
        return subprocess.run([*command, *argv], cwd=tree, env={"MYPYPATH": tree}).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
