"""Settings shared by every check command."""

from __future__ import annotations

from dataclasses import dataclass, field

from v6alt.policy import Policy

from .dns_client import DnsAnswer
from .report import Progress

__all__ = ["Options"]


@dataclass
class Options:
    timeout: float = 5.0  # seconds, per network step
    resolver: tuple[str, int] | None = None  # None: the first nameserver of /etc/resolv.conf
    policy: Policy = field(default_factory=Policy)
    cafile: str | None = None  # extra CA certificates trusted for CA verdicts
    progress: Progress = field(default_factory=lambda: Progress(None))
    # Answers already reported in this run, by (name, qtype); None: the lookup failed.
    dns_cache: dict[tuple[str, int], DnsAnswer | None] = field(default_factory=dict)
