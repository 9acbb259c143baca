#!/usr/bin/env bash
# Cut a release (docs/releasing.md).
#
#   scripts/release.sh X.Y.Z [OUTDIR]
#
# On a clean tree whose lint passes: sets the version (v6alt.__version__, the
# rockspec's name and version, debian/changelog), turns CHANGELOG.md's
# [Unreleased] section into [X.Y.Z], commits "Release X.Y.Z", then builds from
# that commit (SOURCE_DATE_EPOCH = its time) into OUTDIR (default
# dist/X.Y.Z): sdist and wheel (twine check, scripts/check_dist.py, the sdist
# builds the same wheel), the rock, the Debian packages, and SHA256SUMS; last,
# the annotated tag vX.Y.Z signed with git's user.signingkey (git tag -s).
#
# Needs on PATH: python3 with build and twine (the dev virtualenv), ruff,
# luarocks, the Debian group `packaging` (scripts/install-deps.sh), gpg.
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
grep -q '^## \[Unreleased\]' CHANGELOG.md || die "CHANGELOG.md has no [Unreleased] section"
ruff check --extend-exclude "*.md" . >/dev/null && ruff format --check --extend-exclude "*.md" . >/dev/null ||
    die "lint fails (ruff check, ruff format --check)"

# The version, written once (core/__init__.py); what must follow it follows.
current=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' core/__init__.py)
[[ "$current" != "$version" ]] || die "the version is already $version"
sed -i "s/^__version__ = \".*\"$/__version__ = \"$version\"/" core/__init__.py
git mv "packaging/mod_v6alt-$current-1.rockspec" "packaging/mod_v6alt-$version-1.rockspec"
sed -i "s/^version = \"$current-1\"$/version = \"$version-1\"/" "packaging/mod_v6alt-$version-1.rockspec"
maintainer=$(sed -n 's/^Maintainer: \(.*\) <\(.*\)>$/\1\t\2/p' debian/control)
DEBFULLNAME=${maintainer%%$'\t'*} DEBEMAIL=${maintainer#*$'\t'} \
    dch --newversion "$version" --distribution unstable --force-distribution \
    "New release $version (CHANGELOG.md)." 2>/dev/null
today=$(date -u +%Y-%m-%d)
sed -i "0,/^## \[Unreleased\]$/s//## [Unreleased]\n\n## [$version] - $today/" CHANGELOG.md
git commit -q -m "Release $version" -- core/__init__.py packaging debian/changelog CHANGELOG.md

outdir=$(mkdir -p "${2:-$root/dist/$version}" && cd "${2:-$root/dist/$version}" && pwd)
[[ -z "$(ls -A "$outdir")" ]] || die "$outdir is not empty"
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct HEAD)
export SOURCE_DATE_EPOCH
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git archive HEAD | (mkdir "$work/src" && tar -x -C "$work/src")
python3 -m build --sdist --wheel --outdir "$outdir" "$work/src" >"$work/build.log" 2>&1 ||
    { cat "$work/build.log" >&2; die "python -m build failed"; }
python3 scripts/normalize_sdist.py "$outdir/v6alt-$version.tar.gz"
python3 scripts/check_dist.py "$outdir" >/dev/null || die "scripts/check_dist.py failed"
# The sdist builds the same wheel.
python3 -m build --wheel --outdir "$work/from-sdist" "$outdir/v6alt-$version.tar.gz" >"$work/build.log" 2>&1 ||
    { cat "$work/build.log" >&2; die "the sdist does not build"; }
cmp "$outdir/v6alt-$version-py3-none-any.whl" "$work/from-sdist/v6alt-$version-py3-none-any.whl" ||
    die "the sdist builds another wheel"
bash scripts/build-rock.sh "$outdir" >/dev/null
bash scripts/build-debs.sh "$work/debs" HEAD >/dev/null
mv "$work"/debs/*.deb "$outdir/"
(cd "$outdir" && sha256sum -- * >SHA256SUMS)

git tag -s -m "v6alt $version" "v$version"
echo "release: v$version tagged; artefacts in $outdir"
