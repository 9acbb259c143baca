"""Fixtures for the lab tests: real namespaces and real Yggdrasil nodes (root only).

Every lab made here has its own run directory and namespace prefix (with the
test process id in it), so the tests never meet a lab someone brought up with
``v6alt lab up`` nor each other. A missing ``yggdrasil`` is a failure, not a
skip: CI installs it, and a lab test that silently does nothing proves nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab_support import IS_ROOT, lab_ids, namespaces_with

from v6alt.lab import Lab, LabEnvironmentError, LabHost
from v6alt.lab.netns import find_tool
from v6alt.lab.yggdrasil import find_yggdrasil


def _remove_stale_test_labs() -> None:
    """Take down labs of earlier test runs whose process died before its clean-up.

    Only labs with a state file are touched, through ``down``, which removes
    exactly what that state file records.
    """
    for run_dir in Path("/run").glob("v6alt-labtest-*-*"):
        match = re.fullmatch(r"v6alt-labtest-([a-z])-(\d+)", run_dir.name)
        if match is None or Path(f"/proc/{match[2]}").exists():
            continue
        Lab(run_dir=run_dir, prefix=f"v6lab-{match[1]}{match[2]}-").down()


@pytest.fixture(scope="session")
def lab_tools() -> None:
    """Fail (not skip) with the install command when ``ip`` or ``yggdrasil`` is missing."""
    try:
        find_tool("ip", "iproute2", "apt-get install iproute2")
        find_yggdrasil()
    except LabEnvironmentError as exc:
        pytest.fail(f"lab tests cannot run: {exc}")
    if IS_ROOT:
        _remove_stale_test_labs()


def _make_lab(tag: str, messages: list[str]) -> Lab:
    run_dir, prefix = lab_ids(tag)
    return Lab(run_dir=run_dir, prefix=prefix, progress=messages.append)


@pytest.fixture(scope="session")
def lab2(lab_tools: None) -> Iterator[tuple[Lab, list[LabHost]]]:
    """A two-host lab shared by the read-only tests."""
    if not IS_ROOT:
        pytest.skip("the lab needs root (network namespaces)")
    messages: list[str] = []
    lab = _make_lab("p", messages)
    hosts = lab.up(nodes=2)
    try:
        yield lab, hosts
    finally:
        report = lab.down()
        assert report.clean, report.left_alone


@pytest.fixture(scope="session")
def chain3(lab_tools: None) -> Iterator[tuple[Lab, list[LabHost]]]:
    """A three-host chain a-b-c: a and c are not peers."""
    if not IS_ROOT:
        pytest.skip("the lab needs root (network namespaces)")
    lab = _make_lab("c", [])
    hosts = lab.up(nodes=3, topology="chain")
    try:
        yield lab, hosts
    finally:
        report = lab.down()
        assert report.clean, report.left_alone


@pytest.fixture
def fresh_lab(lab_tools: None) -> Iterator[Lab]:
    """An unused lab identity for tests that bring a lab up and down themselves."""
    if not IS_ROOT:
        pytest.skip("the lab needs root (network namespaces)")
    lab = _make_lab("f", [])
    try:
        yield lab
    finally:
        lab.down()
        leftovers = namespaces_with(lab.prefix)
        assert not leftovers, f"namespaces left behind: {leftovers}"
