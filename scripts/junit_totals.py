"""Add up pytest's JUnit XML reports and print one line of totals.

    python scripts/junit_totals.py REPORT.xml...

Prints ``tests: N passed, N failed, N skipped`` (errors count as failed).
Exit 0 when no test failed and every report has at least one passed test;
1 when a test failed or a report passed none (a run that skipped everything
tested nothing); 2 when a report cannot be read.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass


@dataclass
class Totals:
    tests: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def passed(self) -> int:
        return self.tests - self.failed - self.skipped

    def add(self, other: Totals) -> None:
        self.tests += other.tests
        self.failed += other.failed
        self.skipped += other.skipped


def read_report(path: str) -> Totals:
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.iter("testsuite")
    totals = Totals()
    for suite in suites:
        totals.tests += int(suite.get("tests", "0"))
        totals.failed += int(suite.get("failures", "0")) + int(suite.get("errors", "0"))
        totals.skipped += int(suite.get("skipped", "0"))
    return totals


def main(paths: list[str]) -> int:
    if not paths:
        print("junit_totals: no report given", file=sys.stderr)
        return 2
    totals = Totals()
    nothing_passed: list[str] = []
    for path in paths:
        try:
            report = read_report(path)
        except (OSError, ET.ParseError, ValueError) as exc:
            print(f"junit_totals: cannot read {path}: {exc}", file=sys.stderr)
            return 2
        if report.passed <= 0:
            nothing_passed.append(path)
        totals.add(report)
    for path in nothing_passed:
        print(f"junit_totals: {path}: no test passed", file=sys.stderr)
    print(f"tests: {totals.passed} passed, {totals.failed} failed, {totals.skipped} skipped")
    return 0 if totals.failed == 0 and not nothing_passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
