#!/usr/bin/env bash
# Build a commit's release artefacts (docs/releasing.md; scripts/release.sh
# runs it on the release commit).
#
#   scripts/build-release.sh OUTDIR [COMMIT]
#
# From a clean export of COMMIT (default HEAD) with SOURCE_DATE_EPOCH = the
# commit's time, into OUTDIR (new or empty): the sdist and the wheel
# (twine check and scripts/check_dist.py; the sdist builds the same wheel),
# mod_v6alt's rock, the Debian packages (scripts/build-debs.sh, lintian), and
# SHA256SUMS over them. Two runs on one commit give byte-identical sdist,
# wheel and .deb files.
set -Eeuo pipefail
die() { echo "build-release: error: $*" >&2; exit 1; }
[[ $# -ge 1 && $# -le 2 ]] || { echo "usage: build-release.sh OUTDIR [COMMIT]" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
commit=$(git -C "$root" rev-parse --verify "${2:-HEAD}^{commit}")
outdir=$(mkdir -p "$1" && cd "$1" && pwd)
[[ -z "$(ls -A "$outdir")" ]] || die "$outdir is not empty"
SOURCE_DATE_EPOCH=$(git -C "$root" log -1 --format=%ct "$commit")
export SOURCE_DATE_EPOCH TZ=UTC
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/src"
git -C "$root" archive "$commit" | tar -x -C "$work/src"
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$work/src/core/__init__.py")

python3 -m build --sdist --wheel --outdir "$outdir" "$work/src" >"$work/build.log" 2>&1 ||
    { cat "$work/build.log" >&2; die "python -m build failed"; }
python3 "$work/src/scripts/normalize_sdist.py" "$outdir/v6alt-$version.tar.gz"
python3 "$work/src/scripts/check_dist.py" "$outdir" >"$work/check.log" 2>&1 ||
    { cat "$work/check.log" >&2; die "scripts/check_dist.py failed"; }
python3 -m build --wheel --outdir "$work/from-sdist" "$outdir/v6alt-$version.tar.gz" \
    >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; die "the sdist does not build"; }
cmp "$outdir/v6alt-$version-py3-none-any.whl" "$work/from-sdist/v6alt-$version-py3-none-any.whl" ||
    die "the sdist builds another wheel"

bash "$work/src/scripts/build-rock.sh" "$outdir" >/dev/null
bash "$root/scripts/build-debs.sh" "$work/debs" "$commit" >/dev/null
mv "$work"/debs/*.deb "$outdir/"
(cd "$outdir" && sha256sum -- * >"$work/SHA256SUMS" && mv "$work/SHA256SUMS" .)
ls "$outdir"/*
