#!/usr/bin/env bash
# Build mod_v6alt as a LuaRocks rock for `prosodyctl install` (docs/prosody.md).
#
#   scripts/build-rock.sh [OUTDIR]     writes OUTDIR/mod_v6alt-<version>-1.all.rock (default: dist)
#
# Needs luarocks and the Lua 5.4 headers (Debian: luarocks liblua5.4-dev,
# scripts/install-deps.sh packaging). Offline: the rock is packed from this
# checkout (luarocks make), nothing is downloaded.
set -Eeuo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
outdir=$(mkdir -p "${1:-$root/dist}" && cd "${1:-$root/dist}" && pwd)
shopt -s nullglob
specs=("$root"/packaging/mod_v6alt-*.rockspec)
[[ ${#specs[@]} -eq 1 ]] || { echo "build-rock: expected one packaging/mod_v6alt-*.rockspec" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# luarocks packs into the current directory and builds from it: build from a
# copy so the checkout stays untouched.
mkdir -p "$work/src/prosody_bridge"
cp -r "$root/prosody_bridge/lua" "$work/src/prosody_bridge/"
cp "$root/LICENSE" "$root/README.md" "$work/src/"
cd "$work/src"
luarocks --lua-version=5.4 --tree="$work/tree" make --pack-binary-rock "${specs[0]}" >"$work/log" 2>&1 ||
    { cat "$work/log" >&2; exit 1; }
rocks=(./mod_v6alt-*.all.rock)
[[ ${#rocks[@]} -eq 1 ]] || { cat "$work/log" >&2; echo "build-rock: no rock packed" >&2; exit 1; }
mv "${rocks[0]}" "$outdir/"
echo "$outdir/$(basename "${rocks[0]}")"
