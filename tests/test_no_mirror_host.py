"""No file of the repository names a package mirror.

A user's own mirror is the one they expect every download to come from:
the Dockerfiles take the backports source from the base image's apt sources
(docker/apt-backports.sh), scripts/install-deps.sh from the machine's, and
the container tests' base image from the host's (lab/docker/images.py).
This scans every file git tracks or would (every file, when the tree is not a git
checkout) for the hosts of Debian's and Ubuntu's archives.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import pytest

from v6alt.lab.docker import images
from v6alt.lab.docker.engine import DockerError

REPO = Path(__file__).resolve().parents[1]

MIRROR_HOST: Final = re.compile(
    rb"\b(?:"
    rb"(?:deb|ftp|security|httpredir|archive|snapshot|cdn-fastly\.deb)(?:\.[a-z]{2})?\.debian\.org"
    rb"|(?:ftp\.[a-z]{2}\.|http\.)debian\.net"
    rb"|(?:[a-z]{2}\.)?(?:archive|security|ports)\.ubuntu\.com"
    rb")\b",
    re.IGNORECASE,
)
_NOT_SOURCES: Final = {".git", ".tox", "__pycache__", "build", "dist", ".mypy_cache"}


def repository_files() -> list[Path]:
    if (REPO / ".git").exists() and shutil.which("git"):
        listed = subprocess.run(
            [
                "git",
                "-C",
                str(REPO),
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ],
            capture_output=True,
            check=True,
        ).stdout
        return [REPO / name for name in listed.decode().split("\0") if name]
    return [
        path
        for path in REPO.rglob("*")
        if path.is_file()
        and not _NOT_SOURCES.intersection(path.relative_to(REPO).parts)
        and not any(part.endswith(".egg-info") for part in path.parts)
    ]


def test_the_pattern_finds_mirror_hosts() -> None:
    for host in ("deb", "ftp.de", "security", "ftp"):
        assert MIRROR_HOST.search(b"URIs: http://" + host.encode() + b".debian" + b".org/debian")
    assert MIRROR_HOST.search(b"deb http://de.archive.ubuntu" + b".com/ubuntu noble main")
    assert not MIRROR_HOST.search(b"https://www.debian" + b".org/releases/ and wiki")


def test_no_tracked_file_names_a_package_mirror() -> None:
    found = []
    for path in repository_files():
        if not path.is_file():
            continue  # deleted in the working tree, not yet committed
        for number, line in enumerate(path.read_bytes().splitlines(), 1):
            match = MIRROR_HOST.search(line)
            if match:
                found.append(f"{path.relative_to(REPO)}:{number}: {match.group().decode()}")
    assert not found, "package mirror hosts written in:\n" + "\n".join(found)


def test_the_base_image_mirror_is_the_hosts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    os_release = tmp_path / "os-release"
    os_release.write_text('PRETTY_NAME="Debian GNU/Linux 12"\nVERSION_CODENAME=bookworm\n')
    asked: list[Sequence[str]] = []

    def apt(argv: Sequence[str], **_: Any) -> str:
        asked.append(argv)
        return (
            "bookworm-security http://mirror.example/debian-security\n"
            "bookworm http://mirror.example/debian/\n"
            "bookworm-updates http://mirror.example/debian/\n"
        )

    monkeypatch.setattr(images, "run", apt)
    assert images.host_debian_mirror(os_release) == "http://mirror.example/debian"
    assert asked[0][:2] == ["apt-get", "indextargets"]

    monkeypatch.setattr(images, "run", lambda argv, **_: "trixie http://mirror.example/debian\n")
    with pytest.raises(DockerError, match="no entry for bookworm"):
        images.host_debian_mirror(os_release)
