"""``sidecar.limits``: the schema, the connection slots and the refusal log's bound (in-process)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import yaml

from v6alt.config import DEFAULT_CONFIG_YAML, ConfigError, SidecarLimits, parse_config


def test_defaults() -> None:
    limits = parse_config(None).sidecar.limits
    assert limits == SidecarLimits()
    assert (limits.tcp_connections, limits.tcp_connections_per_address) == (256, 64)
    assert (limits.tcp_idle_timeout, limits.tcp_query_timeout) == (10.0, 5.0)
    assert (limits.lookup_connections, limits.lookup_request_timeout) == (64, 5.0)
    assert (limits.lookup_request_bytes, limits.log_lines_per_minute) == (8192, 20)
    assert yaml.safe_load(DEFAULT_CONFIG_YAML)["sidecar"]["limits"]["tcp_connections"] == 256


def test_values_and_round_trip() -> None:
    config = parse_config(
        {"sidecar": {"limits": {"tcp_connections": 10, "tcp_query_timeout": 0.5}}}
    )
    assert config.sidecar.limits.tcp_connections == 10
    assert config.sidecar.limits.tcp_query_timeout == 0.5
    assert config.sidecar.limits.tcp_idle_timeout == 10.0  # the others keep their defaults
    assert parse_config(config.to_dict()) == config


@pytest.mark.parametrize(
    ("limits", "path", "reason"),
    [
        ({"tcp_conections": 5}, "sidecar.limits.tcp_conections", "did you mean 'tcp_connections'"),
        ({"tcp_connections": 0}, "sidecar.limits.tcp_connections", "out of range 1-65,536"),
        ({"tcp_connections": True}, "sidecar.limits.tcp_connections", "expected a whole number"),
        ({"tcp_connections": 2.5}, "sidecar.limits.tcp_connections", "expected a whole number"),
        ({"tcp_connections": 10**40}, "sidecar.limits.tcp_connections", "the number is out"),
        ({"tcp_idle_timeout": "10s"}, "sidecar.limits.tcp_idle_timeout", "number of seconds"),
        ({"tcp_query_timeout": 0}, "sidecar.limits.tcp_query_timeout", "out of range 0.1-3600"),
        (
            {"lookup_request_timeout": float("nan")},
            "sidecar.limits.lookup_request_timeout",
            "out of range",
        ),
        ({"lookup_request_bytes": 100}, "sidecar.limits.lookup_request_bytes", "256-1,048,576"),
        ({"log_lines_per_minute": -1}, "sidecar.limits.log_lines_per_minute", "out of range"),
    ],
)
def test_errors_name_the_key(limits: dict[str, Any], path: str, reason: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config({"sidecar": {"limits": limits}})
    assert str(error.value).startswith(f"{path}: ")
    assert reason in str(error.value)


def test_limits_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match=r"^sidecar\.limits: expected a mapping"):
        parse_config({"sidecar": {"limits": [1, 2]}})


# --- the slots ---------------------------------------------------------------------

pytest.importorskip("twisted", reason="the sidecar needs v6alt[sidecar]")

from v6alt.prosody_bridge.dns_query_log import DnsQueryLog  # noqa: E402
from v6alt.prosody_bridge.slots import Slots  # noqa: E402


def test_slots_evict_the_connection_longest_without_progress() -> None:
    slots: Slots[str] = Slots(total=3, per_address=10)
    for conn, address in (("a", "x"), ("b", "y"), ("c", "z")):
        assert slots.admit(conn, address) == []
    slots.progress("a")  # a answered a query: b is now the oldest without progress
    assert slots.admit("d", "w") == [("b", "evicted")]
    assert len(slots) == 3
    slots.release("b")  # closing an evicted connection again changes nothing
    slots.release("c")
    assert slots.admit("e", "w") == []


def test_slots_per_address() -> None:
    slots: Slots[int] = Slots(total=100, per_address=2)
    assert slots.admit(1, "attacker") == []
    assert slots.admit(2, "attacker") == []
    assert slots.admit(3, "client") == []
    assert slots.admit(4, "attacker") == [(1, "per_address")]
    assert slots.admit(5, "client") == []
    assert len(slots) == 4


def test_slots_a_full_table_takes_both_limits() -> None:
    slots: Slots[int] = Slots(total=2, per_address=1)
    slots.admit(1, "a")
    slots.admit(2, "b")
    # b is at its own limit and the table is full: b's oldest goes, then nothing more.
    assert slots.admit(3, "b") == [(2, "per_address")]
    assert slots.admit(4, "c") == [(1, "evicted")]


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def refusal_log(limit: int) -> tuple[DnsQueryLog, Collect, list[float]]:
    now = [0.0]
    collect = Collect()
    logger = logging.getLogger(f"test.refusal_limits.{limit}")
    logger.propagate = False
    logger.handlers = [collect]
    return DnsQueryLog(logger, interval=60, clock=lambda: now[0], limit=limit), collect, now


def test_client_chosen_numbers_make_no_new_classes() -> None:
    log, collect, _now = refusal_log(limit=100)
    for qclass in range(2, 20_000):
        log.note(f"refused: class {qclass}", "[::1]:1")
        log.note(f"formerr: {qclass} questions; exactly one is supported", "[::1]:1")
    assert len(collect.lines) == 2


def test_all_classes_together_stay_within_the_limit() -> None:
    log, collect, now = refusal_log(limit=5)
    for i in range(600):  # 600 distinct classes
        log.note(f"nxdomain: rule-{chr(65 + i % 26)}{chr(65 + i // 26 % 26)}", "[::1]:1")
    assert len(collect.lines) == 5
    now[0] = 61.0
    log.note("refused: zone not served", "[::1]:2")
    assert collect.lines[5].startswith("595 more refused or malformed dns queries not logged")
    assert "sidecar.limits.log_lines_per_minute" in collect.lines[5]
    assert collect.lines[6].startswith("dns query refused: zone not served")
    assert len(collect.lines) == 7
