"""docs/docker.md shows the files the container tests use, not copies that
drift: the Synapse Dockerfile and the matrix-docker-ansible-deploy vars, and
every compose file it names exists and is run by tests/docker."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DOCS = (REPO / "docs" / "docker.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOCS, re.DOTALL)


def _without_comments(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return "\n".join(lines)


def test_the_synapse_dockerfile_block_is_the_file() -> None:
    (block,) = _blocks("dockerfile")
    dockerfile = (REPO / "docker" / "synapse" / "Dockerfile").read_text()
    assert _without_comments(block) == _without_comments(dockerfile)


def test_the_ansible_block_is_the_vars_file() -> None:
    blocks = [yaml.safe_load(b) for b in _blocks("yaml")]
    vars_file = yaml.safe_load(
        (REPO / "docker" / "matrix-docker-ansible-deploy" / "vars.yml").read_text()
    )
    assert vars_file in blocks


def test_every_compose_file_named_is_run_by_the_tests() -> None:
    named = set(re.findall(r"docker/([a-z0-9-]+)/compose\.yaml", DOCS))
    assert named == {"mesh", "ipv6-only", "workers"}
    tests = "".join(p.read_text() for p in (REPO / "tests" / "docker").glob("*.py"))
    harness = (REPO / "lab" / "docker" / "stacks.py").read_text()
    for stack in named:
        assert (REPO / "docker" / stack / "compose.yaml").is_file()
        assert f'"{stack}"' in tests + harness or f'"{stack}" / "compose.yaml"' in tests
