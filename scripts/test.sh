#!/usr/bin/env bash
# The project's test command. On a fresh Debian 12 machine, as root:
#
#   ./scripts/test.sh                        every tox env in tox.ini's env_list
#   ./scripts/test.sh -e lint                one env (arguments go to `tox run`)
#   ./scripts/test.sh -e py -- -k codec -x   arguments after -- go to pytest
#
# It installs the Debian packages the tests need (scripts/install-deps.sh),
# creates .venv with Debian's python3, installs tox there and runs it.
# Exit 0 only when every env passed; a pytest run that collects no test fails.
set -Eeuo pipefail
trap 'echo "test.sh: error: line $LINENO: \"$BASH_COMMAND\" failed" >&2' ERR

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
started=$SECONDS

bash scripts/install-deps.sh
bash scripts/make-venv.sh 'tox>=4.11'
# The module's Prosody 0.12 tests run against bookworm's own package, unpacked.
V6ALT_PROSODY012_ROOT=${V6ALT_PROSODY012_ROOT:-$(bash scripts/unpack-prosody012.sh)}
# Every test that skips for a missing part fails instead: here everything is
# installed, so a skip would report a real test as passing that never ran.
V6ALT_STRICT_SKIPS=${V6ALT_STRICT_SKIPS:-1}
export V6ALT_PROSODY012_ROOT V6ALT_STRICT_SKIPS

junit_dir=.tox/junit
rm -rf "$junit_dir"
rc=0
# stdin from /dev/null: tox fails when stdin is closed, as it may be in CI.
.venv/bin/tox run "$@" </dev/null || rc=$?
why="tox's summary above names the env that failed"

shopt -s nullglob
reports=("$junit_dir"/*.xml)
totals=""
if [[ ${#reports[@]} -gt 0 ]]; then
    # Totals over every pytest env of this run; a report without one passed
    # test (all skipped) fails the run too.
    totals=$(.venv/bin/python scripts/junit_totals.py "${reports[@]}") || {
        if [[ $rc -eq 0 ]]; then
            rc=1
            why="a pytest env passed no test (see junit_totals above)"
        fi
    }
fi

elapsed=$((SECONDS - started))
if [[ $rc -eq 0 ]]; then
    echo "v6alt test.sh: every tox env passed in ${elapsed} s"
    [[ -z "$totals" ]] || echo "$totals"
else
    [[ -z "$totals" ]] || echo "$totals"
    echo "v6alt test.sh: FAILED (exit $rc) after ${elapsed} s; $why"
fi
exit "$rc"
