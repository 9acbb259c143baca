"""Check results, the report that collects them, and its two renderings.

A report is a flat, ordered list of checks (what the human output prints,
one line each) plus the structured data the JSON output carries, laid out
after the Matrix federation tester's report (resolution, then one entry per
address connected to). The JSON schema is documented in docs/check.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final, TextIO

__all__ = [
    "SCHEMA",
    "CheckResult",
    "Progress",
    "Report",
    "Status",
    "render_human",
    "render_json",
    "timed",
]

SCHEMA: Final = "v6alt-check/1"


class Status(str, Enum):
    PASS = "pass"
    FAIL = "fail"  # something a peer will trip over: exit status 1
    WARN = "warn"  # works, but worth a look
    SKIP = "skip"  # could not be checked (an earlier step failed)
    INFO = "info"  # a fact, not a verdict


_MARKS: Final = {
    Status.PASS: "[ ok ]",
    Status.FAIL: "[FAIL]",
    Status.WARN: "[warn]",
    Status.SKIP: "[skip]",
    Status.INFO: "[info]",
}


@dataclass
class CheckResult:
    """One check: ``id`` is stable (``tcp``, ``tls.trust``, ...), ``target`` the
    address it ran against (``[200::1]:8448``) or empty for name-wide checks."""

    id: str
    status: Status
    summary: str
    hint: str | None = None
    target: str = ""
    elapsed_ms: float | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "target": self.target,
            "status": self.status.value,
            "summary": self.summary,
            "hint": self.hint,
            "elapsed_ms": None if self.elapsed_ms is None else round(self.elapsed_ms, 1),
            "data": self.data,
        }


class Progress:
    """One line on stderr per network step, so a slow step is visible as it happens."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream

    def say(self, text: str) -> None:
        if self._stream is not None:
            self._stream.write(f"v6alt check: {text}\n")
            self._stream.flush()


@dataclass
class Report:
    kind: str  # matrix | xmpp | local
    target: str
    checks: list[CheckResult] = field(default_factory=list)
    # Structured findings (resolution, connections) for --json; see docs/check.md.
    data: dict[str, Any] = field(default_factory=dict)

    def add(self, check: CheckResult) -> CheckResult:
        self.checks.append(check)
        return check

    def add_new(
        self,
        id: str,
        status: Status,
        summary: str,
        hint: str | None = None,
        *,
        target: str = "",
        elapsed_ms: float | None = None,
        **data: Any,
    ) -> CheckResult:
        return self.add(CheckResult(id, status, summary, hint, target, elapsed_ms, dict(data)))

    @property
    def ok(self) -> bool:
        return not any(c.status is Status.FAIL for c in self.checks)

    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status is Status.FAIL]

    def find(self, id: str, target: str | None = None) -> list[CheckResult]:
        return [c for c in self.checks if c.id == id and (target is None or c.target == target)]


@contextmanager
def timed() -> Iterator[list[float]]:
    """``with timed() as t: ...`` then ``t[0]`` is the elapsed milliseconds."""
    box = [0.0]
    start = time.monotonic()
    try:
        yield box
    finally:
        box[0] = (time.monotonic() - start) * 1000.0


def render_human(report: Report, stream: TextIO) -> None:
    """One line per check; under each failure (and warning) one line saying what to change."""
    stream.write(f"v6alt check {report.kind} {report.target}\n")
    for check in report.checks:
        where = f" {check.target}" if check.target else ""
        took = f" ({check.elapsed_ms:.1f} ms)" if check.elapsed_ms is not None else ""
        stream.write(f"{_MARKS[check.status]} {check.id}{where}: {check.summary}{took}\n")
        if check.hint and check.status in (Status.FAIL, Status.WARN):
            stream.write(f"       change: {check.hint}\n")
    failed = len(report.failures())
    verdict = "all checks passed" if failed == 0 else f"{failed} check(s) failed"
    stream.write(f"result: {verdict}\n")


def render_json(report: Report) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "kind": report.kind,
        "target": report.target,
        "ok": report.ok,
        "checks": [c.as_json() for c in report.checks],
        **report.data,
    }
