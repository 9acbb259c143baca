"""Run pytest with the given arguments and treat "no tests collected" as a failure.

pytest exits with 5 when nothing was collected or everything was deselected:
for a test run that is a broken selection, not a success. Every other exit
code is passed through unchanged.

    python scripts/run_pytest.py [PYTEST ARGS...]
"""

from __future__ import annotations

import subprocess
import sys

PYTEST_NO_TESTS_COLLECTED = 5


def main(argv: list[str]) -> int:
    result = subprocess.run([sys.executable, "-m", "pytest", *argv], check=False)
    if result.returncode == PYTEST_NO_TESTS_COLLECTED:
        print(
            "run_pytest: pytest collected no tests (exit 5); counted as a failure",
            file=sys.stderr,
        )
        return 1
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
