"""Taking down labs that earlier test runs left behind when their process died."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from v6alt.lab import Lab


def take_down_orphaned_labs(glob: str, name: str, prefix: str) -> None:
    """Take down every lab under /run matching ``glob`` whose test process is gone.

    ``name`` is a regex for the run directory's name with a ``pid`` group (the
    test process that made it); ``prefix`` is the lab's namespace prefix as a
    format string over the regex's named groups. Only labs with a state file
    are touched, through ``down``, which removes exactly what it records; the
    tests' own packet captures beside it go too.
    """
    for run_dir in Path("/run").glob(glob):
        match = re.fullmatch(name, run_dir.name)
        if match is None or Path(f"/proc/{match['pid']}").exists():
            continue
        shutil.rmtree(run_dir / "captures", ignore_errors=True)
        Lab(run_dir=run_dir, prefix=prefix.format(**match.groupdict())).down()
