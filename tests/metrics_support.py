"""Reading what a metrics endpoint exports: the Prometheus text format and OpenMetrics.

A small parser of its own, so the same one reads Synapse's listener
(prometheus_client), Prosody's mod_http_openmetrics and the sidecar, and
so a test does not trust the library whose output it checks.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["Scrape", "fetch", "parse"]

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(?:\s+\S+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')
_SUFFIXES = ("_total", "_created", "_bucket", "_count", "_sum", "_info")

Labels = frozenset[tuple[str, str]]


def _labels(text: str | None) -> Labels:
    if not text:
        return frozenset()
    body = text[1:-1]
    pairs = []
    pos = 0
    while pos < len(body):
        match = _LABEL.match(body, pos)
        if match is None:
            raise ValueError(f"unreadable labels {text!r}")
        value = match.group(2).replace(r"\"", '"').replace(r"\n", "\n").replace("\\\\", "\\")
        pairs.append((match.group(1), value))
        pos = match.end()
    return frozenset(pairs)


@dataclass
class Scrape:
    """One scrape: samples by (name, labels); families named by ``# TYPE`` lines."""

    samples: dict[tuple[str, Labels], float] = field(default_factory=dict)
    families: dict[str, str] = field(default_factory=dict)  # name -> type

    def value(self, name: str, **labels: str) -> float:
        """The sum of every sample of ``name`` whose labels include ``labels`` (0 if none)."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and wanted <= ls)

    def has_family(self, name: str) -> bool:
        """Whether family ``name`` is declared (a counter's ``# TYPE`` line may
        name it with ``_total``, as prometheus_client's text format does)."""
        return name in self.families or f"{name}_total" in self.families

    def series(self, name: str) -> list[dict[str, str]]:
        return [dict(ls) for (n, ls) in self.samples if n == name]

    def names(self) -> set[str]:
        """Every name a query may use: sample names and family names."""
        return {n for n, _ in self.samples} | set(self.families)

    def label_values(self, name: str, label: str) -> set[str]:
        return {dict(ls)[label] for (n, ls) in self.samples if n == name and label in dict(ls)}


def parse(text: str) -> Scrape:
    scrape = Scrape()
    for line in text.splitlines():
        line = line.strip()
        if not line or line == "# EOF":
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                scrape.families[parts[2]] = parts[3]
            continue
        match = _SAMPLE.match(line)
        if match is None:
            raise ValueError(f"unreadable sample line {line!r}")
        scrape.samples[(match.group(1), _labels(match.group(2)))] = float(match.group(3))
    return scrape


def family_of(sample_name: str, families: Iterable[str]) -> str | None:
    """The family a sample belongs to (``x_total`` -> ``x``), if exported."""
    known = set(families)
    if sample_name in known:
        return sample_name
    for suffix in _SUFFIXES:
        if sample_name.endswith(suffix) and sample_name[: -len(suffix)] in known:
            return sample_name[: -len(suffix)]
    return None


def fetch(url: str, headers: Mapping[str, str] | None = None, timeout: float = 10.0) -> str:
    request = urllib.request.Request(url, headers=dict(headers or {}))
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body: bytes = response.read()
    return body.decode("utf-8")
