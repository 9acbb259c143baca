"""The sidecar's systemd unit, shipped in the wheel as a template.

``v6alt sidecar --print-systemd-unit`` renders it for the running install:
ExecStart is the ``v6alt`` beside this Python interpreter (``/opt/v6alt/bin/v6alt``
for a venv in /opt/v6alt), so the unit runs the install that printed it.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Final

__all__ = ["DEFAULT_CONFIG", "UNIT_NAME", "installed_v6alt", "render_unit", "unit_template"]

UNIT_NAME: Final = "v6alt-sidecar.service"
DEFAULT_CONFIG: Final = "/etc/v6alt/sidecar.yaml"


def unit_template() -> str:
    """The unit as shipped, with ``@V6ALT@`` and ``@CONFIG@`` to fill in."""
    units = resources.files(__package__).joinpath("units")
    return units.joinpath(UNIT_NAME).read_text(encoding="utf-8")


def installed_v6alt() -> Path:
    """The ``v6alt`` script of the running install: beside the interpreter (a
    venv's bin/), else the script this process was started as."""
    beside = Path(sys.executable).parent / "v6alt"
    if beside.is_file():
        return beside.absolute()
    return Path(sys.argv[0]).absolute()


def _exec_word(text: str) -> str:
    """One word of an ExecStart= line: specifiers and variables escaped,
    quoted when it holds blanks."""
    if not text.startswith("/"):
        raise ValueError(f"{text!r} is not an absolute path")
    if any(c in text for c in "\n\r\"'\\"):
        raise ValueError(f"{text!r} holds a quote, backslash or newline; systemd cannot run it")
    escaped = text.replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"' if any(c.isspace() for c in escaped) else escaped


def render_unit(v6alt: Path | str | None = None, config: str = DEFAULT_CONFIG) -> str:
    """The unit with ExecStart running ``v6alt`` (default: this install's) on ``config``.

    Raises ValueError for a path systemd could not take as one word.
    """
    executable = str(v6alt) if v6alt is not None else str(installed_v6alt())
    return (
        unit_template()
        .replace("@V6ALT@", _exec_word(executable))
        .replace("@CONFIG@", _exec_word(config))
    )
