"""scripts/release.sh end to end, in a temporary clone of this checkout with a
throw-away GnuPG key: the version is bumped in its one place (and what
follows it), the CHANGELOG's unreleased section becomes the release's, the
tag is signed (`git tag -v`), SHA256SUMS matches the artefacts, and a second
build of the release commit (scripts/build-release.sh) gives byte-identical
sdist, wheel and .deb files. And what it refuses: a bad version string, a
dirty tree, a failing lint."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import v6alt

REPO = Path(__file__).resolve().parents[2]
VERSION = "0.99.0"
TOOLS = ("dpkg-buildpackage", "lintian", "dch", "gpg", "luarocks", "ruff")
# The tools beside this interpreter (ruff, and python3 with build and twine) first.
PATH = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])

pytestmark = [
    pytest.mark.skipif(
        any(shutil.which(tool, path=PATH) is None for tool in TOOLS),
        reason="release tools missing (scripts/install-deps.sh packaging; ruff)",
    ),
    pytest.mark.skipif(not (REPO / ".git").exists(), reason="not a git checkout"),
]


@dataclass(frozen=True)
class Release:
    clone: Path
    out: Path
    env: dict[str, str]
    stdout: str


def _git(clone: Path, *args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["git", "-C", str(clone), *args], capture_output=True, text=True, check=True, env=env
    )
    return done.stdout


def _run(
    clone: Path, script: str, *args: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(clone / "scripts" / script), *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


@pytest.fixture(scope="module")
def release() -> Iterator[Release]:
    # Short paths: gpg-agent's socket lives in GNUPGHOME.
    work = Path(tempfile.mkdtemp(prefix="v6alt-rel-"))
    gnupg = work / "gnupg"
    gnupg.mkdir(mode=0o700)
    env = {**os.environ, "PATH": PATH, "GNUPGHOME": str(gnupg), "GIT_CONFIG_NOSYSTEM": "1"}
    try:
        subprocess.run(
            [
                "gpg",
                "--batch",
                "--passphrase",
                "",
                "--quick-gen-key",
                "v6alt release test <release@test.invalid>",
                "ed25519",
                "sign",
                "never",
            ],
            capture_output=True,
            check=True,
            env=env,
        )
        listing = subprocess.run(
            ["gpg", "--list-secret-keys", "--with-colons"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout
        fingerprint = next(
            line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
        )
        clone = work / "v6alt"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, env=env)
        for key, value in (
            ("user.name", "Release Test"),
            ("user.email", "release@test.invalid"),
            ("user.signingkey", fingerprint),
        ):
            _git(clone, "config", key, value, env=env)
        out = work / "out"
        done = _run(clone, "release.sh", VERSION, str(out), env=env)
        assert done.returncode == 0, done.stderr[-4000:]
        yield Release(clone, out, env, done.stdout)
    finally:
        subprocess.run(
            ["gpgconf", "--kill", "gpg-agent"],
            env={**os.environ, "GNUPGHOME": str(gnupg)},
            capture_output=True,
            check=False,
        )
        shutil.rmtree(work, ignore_errors=True)


def test_the_tag_is_signed_and_verifies(release: Release) -> None:
    verified = subprocess.run(
        ["git", "-C", str(release.clone), "tag", "-v", f"v{VERSION}"],
        capture_output=True,
        text=True,
        check=False,
        env=release.env,
    )
    assert verified.returncode == 0, verified.stderr
    assert "Good signature" in verified.stderr
    tagged = _git(release.clone, "rev-parse", f"v{VERSION}^{{commit}}", env=release.env)
    assert tagged == _git(release.clone, "rev-parse", "HEAD", env=release.env)


def test_the_version_changes_in_its_one_place(release: Release) -> None:
    changed = _git(release.clone, "show", "--name-status", "--format=%s", "HEAD", env=release.env)
    subject, *files = [line for line in changed.splitlines() if line]
    assert subject == f"Release {VERSION}"
    names = {line.split("\t")[-1] for line in files}
    assert names == {
        "CHANGELOG.md",
        "core/__init__.py",
        "debian/changelog",
        f"packaging/mod_v6alt-{VERSION}-1.rockspec",
    }
    init = _git(release.clone, "show", "HEAD:core/__init__.py", env=release.env)
    assert f'__version__ = "{VERSION}"' in init
    diff = _git(
        release.clone, "show", "--format=", "HEAD", "--", "core/__init__.py", env=release.env
    )
    assert [line for line in diff.splitlines() if line.startswith(("+_", "-_"))] == [
        f'-__version__ = "{v6alt.__version__}"',
        f'+__version__ = "{VERSION}"',
    ]
    changelog = (release.clone / "CHANGELOG.md").read_text()
    assert re.search(
        rf"^## \[Unreleased\]\n\n## \[{re.escape(VERSION)}\] - \d{{4}}-\d\d-\d\d\n",
        changelog,
        re.MULTILINE,
    )
    assert (release.clone / "debian" / "changelog").read_text().startswith(f"v6alt ({VERSION}) ")


def test_the_checksums_match_the_artefacts(release: Release) -> None:
    names = sorted(p.name for p in release.out.iterdir())
    assert names == sorted(
        [
            "SHA256SUMS",
            f"v6alt-{VERSION}.tar.gz",
            f"v6alt-{VERSION}-py3-none-any.whl",
            f"mod_v6alt-{VERSION}-1.all.rock",
            f"python3-v6alt_{VERSION}_all.deb",
            f"v6alt-sidecar_{VERSION}_all.deb",
            f"prosody-mod-v6alt_{VERSION}_all.deb",
        ]
    )
    listed = (release.out / "SHA256SUMS").read_text().split()[1::2]
    assert sorted(listed) == [name for name in names if name != "SHA256SUMS"]
    subprocess.run(["sha256sum", "--check", "--quiet", "SHA256SUMS"], cwd=release.out, check=True)


def test_a_second_build_of_the_commit_gives_the_same_bytes(release: Release) -> None:
    again = release.out.parent / "again"
    done = _run(release.clone, "build-release.sh", str(again), f"v{VERSION}", env=release.env)
    assert done.returncode == 0, done.stderr[-4000:]
    for name in (
        f"v6alt-{VERSION}.tar.gz",
        f"v6alt-{VERSION}-py3-none-any.whl",
        f"python3-v6alt_{VERSION}_all.deb",
        f"v6alt-sidecar_{VERSION}_all.deb",
        f"prosody-mod-v6alt_{VERSION}_all.deb",
    ):
        assert (again / name).read_bytes() == (release.out / name).read_bytes(), name


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "01.2.3", "1.2.3rc1", "1.2.3 "])
def test_a_bad_version_string_is_refused(release: Release, version: str) -> None:
    done = _run(release.clone, "release.sh", version, env=release.env)
    assert done.returncode != 0
    assert "is not X.Y.Z" in done.stderr


def test_a_dirty_tree_is_refused(release: Release) -> None:
    stray = release.clone / "stray.txt"
    stray.write_text("not committed\n")
    try:
        done = _run(release.clone, "release.sh", "1.0.0", env=release.env)
    finally:
        stray.unlink()
    assert done.returncode != 0
    assert "not clean" in done.stderr
    assert _git(release.clone, "tag", "--list", "v1.0.0", env=release.env) == ""


def test_a_failing_lint_is_refused(release: Release) -> None:
    head = _git(release.clone, "rev-parse", "HEAD", env=release.env)
    (release.clone / "lint_fails.py").write_text("import os\n")
    _git(release.clone, "add", "lint_fails.py", env=release.env)
    _git(release.clone, "commit", "-q", "-m", "unused import", env=release.env)
    done = _run(release.clone, "release.sh", "1.0.0", env=release.env)
    assert done.returncode != 0
    assert "lint fails" in done.stderr
    assert _git(release.clone, "tag", "--list", "v1.0.0", env=release.env) == ""
    assert _git(release.clone, "rev-parse", "HEAD~1", env=release.env) == head
