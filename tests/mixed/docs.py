"""The config blocks of docs/mixed.md, as the tests load them."""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

import yaml

from v6alt.lab.mixed import ZoneRecords

MIXED = Path(__file__).resolve().parents[2] / "docs" / "mixed.md"


def block(name: str, **values: object) -> str:
    """The fenced block between ``<!-- NAME: begin/end -->``, ``${...}`` filled in
    (every placeholder must be given)."""
    marker = re.escape(name)
    pattern = rf"<!-- {marker}: begin -->\s*```[a-z]*\n(.*?)```\s*<!-- {marker}: end -->"
    match = re.search(pattern, MIXED.read_text(), re.S)
    assert match, f"no {name} block in {MIXED}"
    return Template(match.group(1)).substitute({k: str(v) for k, v in values.items()})


def yaml_block(name: str, **values: object) -> dict[str, object]:
    data = yaml.safe_load(block(name, **values))
    assert isinstance(data, dict), name
    return data


def zone(name: str, **values: object) -> ZoneRecords:
    """The ``local-data`` records of an unbound block (its ``local-zone`` is the lab's)."""
    text = block(name, **values)
    assert 'local-zone: "mixed.example." static' in text
    return ZoneRecords(re.findall(r'^local-data: "([^"]+)"$', text, re.M))


def table(heading: str) -> dict[str, list[str]]:
    """The table under docs/mixed.md's ``### heading``: the first cell's `name` -> the
    other cells."""
    text = MIXED.read_text()
    start = text.index(f"\n### {heading}\n")
    end = text.find("\n#", start + 1)
    section = text[start : end if end != -1 else len(text)]
    rows = re.findall(r"^\| `([^`]+)`[^|]*\|(.*)\|$", section, re.M)
    return {name: [cell.strip() for cell in cells.split("|")] for name, cells in rows}
