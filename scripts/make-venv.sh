#!/usr/bin/env bash
# Create the project's virtual environment (.venv at the repository root, or
# $V6ALT_VENV) with the system's Debian python3, repair it when it is broken
# or was made by another interpreter, then pip-install the arguments into it:
#
#   scripts/make-venv.sh [PIP INSTALL ARGUMENTS...]     e.g. 'tox>=4.11' or .
#
# Quiet unless something fails (then it prints pip's output).
set -Eeuo pipefail
trap 'echo "make-venv.sh: error: line $LINENO: \"$BASH_COMMAND\" failed" >&2' ERR

root=$(cd "$(dirname "$0")/.." && pwd)
venv=${V6ALT_VENV:-$root/.venv}

die() {
    echo "make-venv: error: $*" >&2
    exit 1
}

# Debian's interpreter, even when another python3 (pyenv, conda) comes first on PATH.
if [[ -x /usr/bin/python3 ]]; then
    python=/usr/bin/python3
else
    python=$(command -v python3) || die "python3 not found; run scripts/install-deps.sh first"
fi

interpreter_id() {
    "$1" -c 'import sys; print(sys.base_prefix, sys.version)' 2>/dev/null
}

want=$(interpreter_id "$python") || die "$python does not run"
if [[ -x "$venv/bin/python" ]]; then
    have=$(interpreter_id "$venv/bin/python" || true)
    if [[ "$have" != "$want" ]] || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
        [[ -f "$venv/pyvenv.cfg" ]] || die "$venv exists but is not a virtual environment; move it away"
        echo "make-venv: $venv was made by another interpreter or is broken; recreating it"
        rm -rf "$venv"
    fi
fi
if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv" || die "'$python -m venv $venv' failed (is python3-venv installed?)"
    echo "make-venv: created $venv with $python ($("$python" -V 2>&1))"
fi

if [[ $# -gt 0 ]]; then
    log=$(mktemp /tmp/v6alt-pip.XXXXXX.log)
    if ! "$venv/bin/python" -m pip install "$@" >"$log" 2>&1; then
        cat "$log" >&2
        die "'pip install $*' into $venv failed (output above)"
    fi
    rm -f "$log"
fi
