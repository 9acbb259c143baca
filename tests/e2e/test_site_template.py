"""The lab's Prosody configuration is the documented one (docs/prosody.md)."""

from __future__ import annotations

import re
from pathlib import Path

from v6alt.lab.xmpp.files import SiteFiles, render_prosody_config, site_template

DOCS = Path(__file__).resolve().parents[2] / "docs" / "prosody.md"


def documented_block() -> str:
    pattern = r"<!-- prosody-config: begin -->\s*```lua\n(.*?)```\s*<!-- prosody-config: end -->"
    match = re.search(pattern, DOCS.read_text(), re.S)
    assert match, f"no prosody-config block in {DOCS}"
    return match.group(1)


def test_lab_template_is_the_documented_block() -> None:
    assert site_template() == documented_block()


def test_rendered_config_fills_every_placeholder(tmp_path: Path) -> None:
    files = SiteFiles(tmp_path, "aiamvog6wthgaq3cisjokoiewu.v6.alt")
    config = render_prosody_config(files)
    assert "${" not in config
    assert 'VirtualHost "aiamvog6wthgaq3cisjokoiewu.v6.alt"' in config
    assert 'Component "groups.aiamvog6wthgaq3cisjokoiewu.v6.alt" "muc"' in config
    assert f'pidfile = "{tmp_path}/prosody.pid"' in config
    assert 'v6alt_lookup_url = "http://[::1]:5380"' in config
