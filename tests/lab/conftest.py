"""Fixtures for the lab tests: real namespaces and real Yggdrasil nodes (root only).

Every lab made here has its own run directory and namespace prefix (with the
test process id in it), so the tests never meet a lab someone brought up with
``v6alt lab up`` nor each other. A missing ``yggdrasil`` is a failure, not a
skip: CI installs it, and a lab test that silently does nothing proves nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.orphaned_labs import take_down_orphaned_labs
from v6alt.lab import Lab, LabEnvironmentError, LabHost
from v6alt.lab.netns import find_tool
from v6alt.lab.yggdrasil import find_yggdrasil

from .lab_support import IS_ROOT, lab_ids, namespaces_with


@pytest.fixture(scope="session")
def lab_tools() -> None:
    """Fail (not skip) with the install command when ``ip`` or ``yggdrasil`` is missing."""
    try:
        find_tool("ip", "iproute2", "apt-get install iproute2")
        find_yggdrasil()
    except LabEnvironmentError as exc:
        pytest.fail(f"lab tests cannot run: {exc}")
    if IS_ROOT:
        take_down_orphaned_labs(
            "v6alt-labtest-*-*", r"v6alt-labtest-(?P<host>[a-z])-(?P<pid>\d+)", "v6lab-{host}{pid}-"
        )


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
