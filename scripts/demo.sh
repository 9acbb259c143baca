#!/usr/bin/env bash
# The project's main job: install v6alt on this machine and run its demo.
# On a fresh Debian 12 machine, as root: ./scripts/demo.sh
set -Eeuo pipefail
trap 'echo "demo.sh: error: line $LINENO: \"$BASH_COMMAND\" failed" >&2' ERR

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash scripts/install-deps.sh
bash scripts/make-venv.sh .

echo "v6alt demo is not available yet; showing the CLI"
echo
.venv/bin/v6alt --help
echo
echo "The CLI is installed at $root/.venv/bin/v6alt"
