#!/usr/bin/env bash
# Build the Debian packages (python3-v6alt, v6alt-sidecar, prosody-mod-v6alt)
# from debian/ and check them with lintian (docs/releasing.md).
#
#   scripts/build-debs.sh OUTDIR [COMMIT]
#
# Builds from a clean export of COMMIT (default HEAD: uncommitted changes are
# not in it) with SOURCE_DATE_EPOCH set to the commit's time, so two builds of
# one commit give byte-identical .deb files. Writes the .deb files, the
# .buildinfo and the .changes into OUTDIR and prints the .deb paths. Fails when
# debian/changelog's version is not v6alt.__version__ or when lintian reports
# an error or a warning. Needs the Debian group `packaging` of
# scripts/install-deps.sh (debhelper, dh-python, lintian, ...).
set -Eeuo pipefail
[[ $# -ge 1 && $# -le 2 ]] || { echo "usage: build-debs.sh OUTDIR [COMMIT]" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
outdir=$(mkdir -p "$1" && cd "$1" && pwd)
commit=$(git -C "$root" rev-parse --verify "${2:-HEAD}^{commit}")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# One fixed directory name: the build path ends up in no file, but keeping it
# the same rules that out.
src="$work/v6alt"
mkdir "$src"
git -C "$root" archive "$commit" | tar -x -C "$src"

SOURCE_DATE_EPOCH=$(git -C "$root" log -1 --format=%ct "$commit")
export SOURCE_DATE_EPOCH
# dpkg and debhelper take TZ and locale from the environment.
export TZ=UTC LC_ALL=C.UTF-8
# Debian's own Python and tools: a python3 earlier on PATH (a virtualenv,
# pyenv) would lack Debian's libraries and give other bytes.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
unset PYTHONPATH VIRTUAL_ENV

version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$src/core/__init__.py")
deb_version=$(cd "$src" && dpkg-parsechangelog -S Version)
[[ "$deb_version" == "$version" ]] ||
    { echo "build-debs: debian/changelog is at $deb_version, v6alt.__version__ is $version" >&2; exit 1; }

(cd "$src" && dpkg-buildpackage -b -us -uc --no-sign) >"$work/build.log" 2>&1 ||
    { cat "$work/build.log" >&2; echo "build-debs: dpkg-buildpackage failed" >&2; exit 1; }

changes="$work/v6alt_${version}_$(dpkg --print-architecture).changes"
# --fail-on error,warning: any error or warning fails the build; overrides
# (debian/*.lintian-overrides) carry a comment saying why.
lintian --fail-on error,warning --no-tag-display-limit "$changes" >"$work/lintian.log" 2>&1 ||
    { cat "$work/lintian.log" >&2; echo "build-debs: lintian failed" >&2; exit 1; }

shopt -s nullglob
for file in "$work"/*.deb "$work"/*.buildinfo "$work"/*.changes; do
    mv "$file" "$outdir/"
done
for deb in "$outdir"/*_"$version"_all.deb; do
    echo "$deb"
done
