"""What the tests that run real Prosody servers need beyond root and their own tools."""

from __future__ import annotations

import importlib.util
import re
import subprocess

AS_PROSODY = ["setpriv", "--reuid=prosody", "--regid=prosody", "--init-groups"]


def missing_xmpp_parts() -> str | None:
    """Why Prosody 13 servers with slixmpp users cannot run here, or None."""
    about = subprocess.run(
        [*AS_PROSODY, "prosodyctl", "about"], capture_output=True, text=True
    ).stdout
    if not re.search(r"Prosody 13\.", about):
        return (
            f"needs Prosody 13 (found: {about.strip()[:40]!r}; "
            "apt-get install -t bookworm-backports prosody)"
        )
    for module in ("slixmpp", "twisted"):
        if importlib.util.find_spec(module) is None:
            return f"python package {module} not installed"
    return None
