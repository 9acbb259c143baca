"""docs/synapse.md shows the very homeserver.yaml snippet the tests run with."""

from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_synapse_md_contains_the_tested_snippet() -> None:
    snippet = (DOCS / "synapse-homeserver.yaml").read_text()
    page = (DOCS / "synapse.md").read_text()
    assert f"```yaml\n{snippet}```" in page
