"""The recovery's probe scheduler: rate bound, fair rotation, no starvation.

Pure bookkeeping with a fake clock (the scheduler takes the time as an
argument); no Synapse needed.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest

from v6alt.synapse_module.probe_scheduler import ProbeLimits, ProbeScheduler

TICK = 0.1


def _run(
    scheduler: ProbeScheduler,
    candidates: list[str],
    seconds: float,
    start: float = 0.0,
    connects: frozenset[str] = frozenset(),
    probe_time: float = 1.0,
) -> tuple[list[tuple[float, str]], float]:
    """Tick every 0.1 s for ``seconds``; a probe of a peer in ``connects`` ends at
    once, any other after ``probe_time`` s (a connect timeout). The probes started."""
    started: list[tuple[float, str]] = []
    ends: list[tuple[float, str]] = []
    now = start
    for _ in range(round(seconds / TICK)):
        for end in [e for e in ends if e[0] <= now]:
            scheduler.finished(end[1])
            ends.remove(end)
        for destination in scheduler.due(candidates, now):
            started.append((now, destination))
            ends.append((now if destination in connects else now + probe_time, destination))
        now = round(now + TICK, 6)
    return started, now


def test_each_peer_is_probed_every_period_when_the_rate_allows() -> None:
    peers = [f"p{i}" for i in range(20)]
    scheduler = ProbeScheduler(ProbeLimits(rate=300, period=2.0, timeout=1.0), now=0.0)
    started, _ = _run(scheduler, peers, 20.0)
    for peer in peers:
        times = [t for t, d in started if d == peer]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert times[0] == 0.0
        assert gaps and all(2.0 <= g <= 2.0 + TICK + 1e-9 for g in gaps), (peer, gaps)


def test_the_rate_bound_holds_over_every_window() -> None:
    limits = ProbeLimits(rate=50, period=2.0, timeout=2.0)
    scheduler = ProbeScheduler(limits, now=0.0)
    started, _ = _run(scheduler, [f"p{i}" for i in range(1000)], 30.0, probe_time=2.0)
    times = [t for t, _ in started]
    for window in (0.5, 1.0, 5.0, 30.0):
        for begin in [i * TICK for i in range(round((30.0 - window) / TICK))]:
            count = sum(1 for t in times if begin <= t < begin + window - 1e-9)
            assert count <= limits.bucket + limits.rate * window + 1e-9, (window, begin, count)
    # And it is used: close to the rate once the bucket's first burst is spent.
    assert len(times) >= limits.rate * 29


def test_with_more_peers_than_the_rate_allows_the_period_stretches_evenly() -> None:
    peers = [f"p{i}" for i in range(1000)]
    limits = ProbeLimits(rate=300, period=2.0, timeout=2.0)
    scheduler = ProbeScheduler(limits, now=0.0)
    started, _ = _run(scheduler, peers, 40.0, probe_time=2.0)
    cycle = limits.cycle(len(peers))
    assert cycle == pytest.approx(1000 / 300)
    per_peer = Counter(d for t, d in started if t >= 10.0)  # after the first burst
    # Every peer is probed, none more often than another beyond the window's edges.
    assert set(per_peer) == set(peers)
    assert max(per_peer.values()) - min(per_peer.values()) <= 2
    for peer in ("p0", "p499", "p999"):
        times = [t for t, d in started if d == peer and t >= 10.0]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(cycle - 1.0 <= g <= cycle + 1.0 for g in gaps), (peer, gaps)


def test_a_returning_peer_among_many_dead_ones_is_probed_within_one_cycle() -> None:
    """The dead ones never connect (each probe runs to its timeout); a peer that
    becomes a candidate late, beyond all of them, still gets its turn at once,
    and then once per cycle."""
    dead = [f"dead{i}" for i in range(900)]
    limits = ProbeLimits(rate=300, period=2.0, timeout=2.0)
    scheduler = ProbeScheduler(limits, now=0.0)
    _, now = _run(scheduler, dead, 10.0, probe_time=2.0)
    started, _ = _run(scheduler, [*dead, "back"], 10.0, start=now, probe_time=2.0)
    times = [t for t, d in started if d == "back"]
    assert times and times[0] - now <= 2 * TICK
    gaps = [b - a for a, b in itertools.pairwise(times)]
    cycle = limits.cycle(901)
    assert gaps and all(g <= cycle + 1.0 for g in gaps), gaps


def test_no_peer_is_probed_while_its_probe_is_open() -> None:
    scheduler = ProbeScheduler(ProbeLimits(rate=100, period=0.5, timeout=3.0), now=0.0)
    started, _ = _run(scheduler, ["slow"], 10.0, probe_time=3.0)
    times = [t for t, _ in started]
    assert all(b - a >= 3.0 - 1e-9 for a, b in itertools.pairwise(times)), times


def test_open_probes_stay_within_the_bound() -> None:
    limits = ProbeLimits(rate=200, period=1.0, timeout=2.0)
    scheduler = ProbeScheduler(limits, now=0.0)
    peak = 0
    ends: list[tuple[float, str]] = []
    now = 0.0
    peers = [f"p{i}" for i in range(2000)]
    for _ in range(200):
        for end in [e for e in ends if e[0] <= now]:
            scheduler.finished(end[1])
            ends.remove(end)
        for destination in scheduler.due(peers, now):
            ends.append((now + limits.timeout, destination))
        peak = max(peak, scheduler.open_probes)
        now = round(now + TICK, 6)
    assert peak <= limits.max_open()


def test_forgotten_peers_are_dropped_and_new_ones_go_first() -> None:
    scheduler = ProbeScheduler(ProbeLimits(rate=2, period=1.0, timeout=1.0, burst=2), now=0.0)
    assert scheduler.due(["a", "b", "c"], 0.0) == ["a", "b"]
    scheduler.finished("a")
    scheduler.finished("b")
    scheduler.forget_except(["b", "c"])
    # c was never probed: first; then b; a is forgotten (and new again if it returns).
    assert scheduler.due(["b", "c", "a"], 1.0) == ["c", "a"]


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"rate": 0}, "rate must be a positive number, not 0"),
        ({"period": -1.0}, "period must be a positive number, not -1.0"),
        ({"timeout": math.inf}, "timeout must be a positive number, not inf"),
        ({"burst": 0.5}, "burst must be at least 1, not 0.5"),
    ],
)
def test_bad_limits_are_refused(kwargs: dict[str, float], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        ProbeLimits(**kwargs)
