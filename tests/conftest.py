from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import pytest

STRICT_SKIPS = os.environ.get("V6ALT_STRICT_SKIPS", "") not in ("", "0")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """In a strict run (CI, where every part is installed) a skip is a failure.

    Integration tests skip when Prosody, Synapse, root and so on are missing,
    which is right on a developer's laptop and wrong where the suite claims
    that those tests ran.
    """
    outcome = yield
    report = outcome.get_result()
    if STRICT_SKIPS and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (
            f"skipped in a strict run (V6ALT_STRICT_SKIPS=1), so it counts as failed: {reason}"
        )
