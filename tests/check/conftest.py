"""Fixtures for the ``v6alt check`` tests: namespaces (root), fake and real servers."""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .net import Pair


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "openssl"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    if importlib.util.find_spec("cryptography") is None:
        return "python package cryptography (v6alt[check]) not installed"
    if importlib.util.find_spec("twisted") is None:  # the sidecar the tests start
        return "python package twisted (v6alt[sidecar]) not installed"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = _missing()
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here) and "pair" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def pair() -> Iterator[Pair]:
    network = Pair()
    try:
        yield network
    finally:
        network.close()
