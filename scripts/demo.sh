#!/usr/bin/env bash
# The project's main job: install v6alt on this machine and run its demo.
# On a fresh Debian 12 machine, as root: ./scripts/demo.sh [--keep] [--json]
# (arguments go to `v6alt demo`; see `v6alt demo --help`).
set -Eeuo pipefail
trap 'echo "demo.sh: error: line $LINENO: \"$BASH_COMMAND\" failed" >&2' ERR

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# The demo's hosts run real Yggdrasil, Prosody 13 and Synapse.
bash scripts/install-deps.sh base mesh prosody
bash scripts/make-venv.sh '.[sidecar]' slixmpp 'matrix-synapse==1.163.*'

echo "v6alt is installed at $root/.venv/bin/v6alt; running: v6alt demo $*"
exec .venv/bin/v6alt demo "$@"
