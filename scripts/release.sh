#!/usr/bin/env bash
# Cut a release (docs/releasing.md).
#
#   scripts/release.sh X.Y.Z [OUTDIR]
#
# On a clean tree whose lint passes: sets the version (v6alt.__version__, and
# what follows it: the rockspec's name and version, debian/changelog), turns
# CHANGELOG.md's [Unreleased] section into [X.Y.Z], commits "Release X.Y.Z",
# builds that commit into OUTDIR (default dist/X.Y.Z) with
# scripts/build-release.sh (sdist, wheel, rock, Debian packages, SHA256SUMS),
# then makes the annotated tag vX.Y.Z signed with git's user.signingkey
# (git tag -s). A failing build leaves the release commit and no tag.
#
# Needs on PATH: python3 with build and twine (the dev virtualenv), ruff,
# luarocks and the Debian group `packaging` (scripts/install-deps.sh), gpg.
set -Eeuo pipefail
die() { echo "release: error: $*" >&2; exit 1; }
[[ $# -ge 1 && $# -le 2 ]] || { echo "usage: release.sh X.Y.Z [OUTDIR]" >&2; exit 2; }
version=$1
[[ "$version" =~ ^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$ ]] ||
    die "version '$version' is not X.Y.Z (three numbers, no leading zeros)"
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[[ -z "$(git status --porcelain)" ]] || die "the working tree is not clean (git status)"
! git rev-parse -q --verify "refs/tags/v$version" >/dev/null || die "tag v$version exists"
grep -q '^## \[Unreleased\]$' CHANGELOG.md || die "CHANGELOG.md has no [Unreleased] section"
command -v ruff >/dev/null || die "ruff is not on PATH"
{ ruff check --extend-exclude "*.md" . && ruff format --check --extend-exclude "*.md" .; } \
    >/dev/null 2>&1 || die "lint fails (ruff check, ruff format --check)"

# The version, written once (core/__init__.py); what must follow it follows.
current=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' core/__init__.py)
[[ "$current" != "$version" ]] || die "the version is already $version"
sed -i "s/^__version__ = \".*\"$/__version__ = \"$version\"/" core/__init__.py
git mv "packaging/mod_v6alt-$current-1.rockspec" "packaging/mod_v6alt-$version-1.rockspec"
sed -i "s/^version = \"$current-1\"$/version = \"$version-1\"/" \
    "packaging/mod_v6alt-$version-1.rockspec"
maintainer=$(sed -n 's/^Maintainer: \(.*\) <\(.*\)>$/\1\t\2/p' debian/control)
DEBFULLNAME=${maintainer%%$'\t'*} DEBEMAIL=${maintainer#*$'\t'} \
    dch --newversion "$version" --distribution unstable --force-distribution \
    "New release $version (CHANGELOG.md)." 2>/dev/null
today=$(date -u +%Y-%m-%d)
sed -i "0,/^## \[Unreleased\]$/s//## [Unreleased]\n\n## [$version] - $today/" CHANGELOG.md
git commit -q -m "Release $version" -- core/__init__.py packaging debian/changelog CHANGELOG.md

outdir=${2:-$root/dist/$version}
bash scripts/build-release.sh "$outdir" HEAD
git tag -s -m "v6alt $version" "v$version"
echo "release: v$version tagged; artefacts in $(cd "$outdir" && pwd)"
