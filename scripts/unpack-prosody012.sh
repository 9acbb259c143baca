#!/usr/bin/env bash
# Unpack Debian bookworm's own Prosody 0.12 beside the installed 13.x, for the
# tests of the module on 0.12 (tests/prosody/test_prosody012.py). Nothing is
# installed: the .deb is only extracted, and its Lua libraries are shared with
# the installed Prosody 13.
#
#   scripts/unpack-prosody012.sh [DIR]     default DIR: /opt/v6alt-test/prosody-0.12
#
# Prints the directory; the tests find it through V6ALT_PROSODY012_ROOT.
set -Eeuo pipefail
dir=${1:-/opt/v6alt-test/prosody-0.12}
if [[ -x "$dir/usr/bin/prosody" ]]; then
    echo "$dir"
    exit 0
fi
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
work=$(mktemp -d /tmp/v6alt-prosody012.XXXXXX)
trap 'rm -rf "$work"' EXIT
(
    cd "$work"
    # apt-get download runs as the _apt user when it can; let it write here.
    chmod 0777 "$work"
    apt-get download -q "prosody/$codename" >"$work/download.log" 2>&1 || {
        cat "$work/download.log" >&2
        echo "unpack-prosody012: could not download prosody/$codename" >&2
        exit 1
    }
)
deb=$(ls "$work"/prosody_0.12*.deb 2>/dev/null | head -n1)
[[ -n "$deb" ]] || { echo "unpack-prosody012: $codename's prosody is not 0.12" >&2; exit 1; }
mkdir -p "$dir.tmp"
dpkg -x "$deb" "$dir.tmp"
chmod -R a+rX "$dir.tmp"
rm -rf "$dir"
mv "$dir.tmp" "$dir"
echo "$dir"
