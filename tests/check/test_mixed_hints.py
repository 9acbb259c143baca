"""Hints that point into docs/mixed.md name sections that exist there."""

from __future__ import annotations

import re
from pathlib import Path

from v6alt.check import hints, local_hints

MIXED = Path(__file__).resolve().parents[2] / "docs" / "mixed.md"


def _sections(text: str) -> list[str]:
    return re.findall(r'docs/mixed\.md, "([^"]+)"', text)


def test_delegation_hints_name_existing_sections() -> None:
    headings = re.findall(r"^## (.+)$", MIXED.read_text(), re.M)
    for how in ("well-known", "srv"):
        text = hints.delegated_to_v6alt("example.org", "aiamvog6wthgaq3cisjokoiewu.v6.alt", how)
        named = _sections(text)
        assert named == [
            "Delegating a DNS name to a v6.alt server",
            "Keeping a DNS name on the mesh",
        ]
        assert all(section in headings for section in named), (named, headings)


def test_local_hints_name_existing_sections() -> None:
    headings = re.findall(r"^## (.+)$", MIXED.read_text(), re.M)
    text = local_hints.dns_server_name("example.org")
    assert 'docs/mixed.md, "Keeping a DNS name on the mesh"' in text
    named = re.findall(r'"([^"]+)"', text)
    assert named == ["Keeping a DNS name on the mesh", "Delegating a DNS name to a v6.alt server"]
    assert all(section in headings for section in named)


def test_ca_hint_offers_the_mesh_recipe() -> None:
    headings = re.findall(r"^## (.+)$", MIXED.read_text(), re.M)
    named = _sections(hints.ca_certificate("example.org", "self-signed certificate"))
    assert named == ["Keeping a DNS name on the mesh"]
    assert named[0] in headings
