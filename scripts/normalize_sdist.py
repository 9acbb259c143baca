"""Make an sdist reproducible: scripts/normalize_sdist.py SDIST.tar.gz.

setuptools writes the tar members in file-system order with the builder's
owner and the files it generates (PKG-INFO, *.egg-info) stamped with the build
time, and gzip stamps the archive with it too. This rewrites the archive in
place: members sorted by name, owner root, every time SOURCE_DATE_EPOCH, and
a gzip header without time or file name. Two builds of one commit then give
the same bytes.
"""

from __future__ import annotations

import gzip
import io
import os
import sys
import tarfile
from pathlib import Path


def normalize(sdist: Path, epoch: int) -> None:
    with tarfile.open(sdist, "r:gz") as source:
        members = [(m, source.extractfile(m) if m.isfile() else None) for m in source]
        contents = {m.name: f.read() if f is not None else None for m, f in members}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as target:
        for member, _ in sorted(members, key=lambda pair: pair[0].name):
            member.mtime = epoch
            member.uid = member.gid = 0
            member.uname = member.gname = "root"
            member.pax_headers = {}
            data = contents[member.name]
            target.addfile(member, io.BytesIO(data) if data is not None else None)
    with (
        sdist.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as packed,
    ):
        packed.write(buffer.getvalue())


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: normalize_sdist.py SDIST.tar.gz", file=sys.stderr)
        return 2
    normalize(Path(argv[1]), int(os.environ["SOURCE_DATE_EPOCH"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
