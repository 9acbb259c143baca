"""Report building, its renderings, hint texts and the pure DNS answer parser."""

from __future__ import annotations

import io
from ipaddress import IPv4Address, IPv6Address

import pytest

from v6alt.check import hints, local_hints
from v6alt.check.dns_client import DnsError, SrvRecord, parse_response
from v6alt.check.policy_view import judge_address, synapse_blocklisted
from v6alt.check.report import SCHEMA, Report, Status, render_human, render_json
from v6alt.config import parse_config
from v6alt.policy import Policy

from .fake_dns import answer


def _report() -> Report:
    report = Report("matrix", "x.v6.alt")
    report.add_new("tcp", Status.PASS, "connected", target="[200::1]:8448", elapsed_ms=1.25)
    report.add_new("keys.server_name", Status.FAIL, "server_name is 'y'", "set it",
                   target="[200::1]:8448")  # fmt: skip
    report.add_new("sidecar.lookup", Status.WARN, "down", "start it")
    report.add_new("tls", Status.SKIP, "not checked", "never shown")
    return report


def test_human_output_one_line_per_check_and_a_hint_per_failure() -> None:
    out = io.StringIO()
    render_human(_report(), out)
    assert out.getvalue().splitlines() == [
        "v6alt check matrix x.v6.alt",
        "[ ok ] tcp [200::1]:8448: connected (1.2 ms)",
        "[FAIL] keys.server_name [200::1]:8448: server_name is 'y'",
        "       change: set it",
        "[warn] sidecar.lookup: down",
        "       change: start it",
        "[skip] tls: not checked",
        "result: 1 check(s) failed",
    ]


def test_json_report() -> None:
    report = _report()
    report.data["connections"] = {"[200::1]:8448": {}}
    data = render_json(report)
    assert data["schema"] == SCHEMA
    assert data["ok"] is False
    assert [c["status"] for c in data["checks"]] == ["pass", "fail", "warn", "skip"]
    assert data["checks"][0]["elapsed_ms"] == 1.2
    assert set(data["checks"][1]) == {"id", "target", "status", "summary", "hint", "elapsed_ms",
                                      "data"}  # fmt: skip
    assert data["connections"] == {"[200::1]:8448": {}}


def test_only_failures_fail_the_report() -> None:
    report = Report("local", "this host")
    report.add_new("a", Status.WARN, "w")
    report.add_new("b", Status.INFO, "i")
    report.add_new("c", Status.SKIP, "s")
    assert report.ok
    report.add_new("d", Status.FAIL, "f")
    assert not report.ok


def test_hint_texts() -> None:
    address = IPv6Address("200::1")
    assert 'bind_addresses: ["200::1"]' in hints.tcp_failed(address, 8448, "connection refused")
    assert "firewall" in hints.tcp_failed(address, 8448, "timed out")
    assert "s2s_interfaces" in hints.tcp_failed(address, 5269, "timed out", "xmpp")
    assert "ranges.unsafe_allow" in hints.never_dial("n", IPv6Address("::1"), "never-dial")
    assert "public address" in hints.never_dial("n", IPv4Address("10.0.0.1"), "never-dial")
    assert "ip_range_whitelist" in hints.synapse_blocklist(IPv6Address("fc00::1"), "fc00::/7")
    assert "set server_name: a.v6.alt" in hints.key_server_name("a.v6.alt", "b")
    assert "canonical spelling x.v6.alt" in hints.canonical_name("X.v6.alt", "x.v6.alt")
    assert "ai-e.v6.alt" in hints.certificate_other_address(
        IPv6Address("200::1"), "ai-i.v6.alt", IPv6Address("200::2")
    )
    assert "404" in hints.well_known_broken("n.example", "is not JSON")
    assert "VirtualHost" in hints.stream_refused("d.example", "host-unknown")
    assert "sidecar" in hints.stream_refused("d.example", "policy-violation")
    assert "--config /etc/v6alt.yaml" in local_hints.sidecar_down("/etc/v6alt.yaml", "[::1]:5380")
    assert "trusted_key_servers: []" in local_hints.key_servers()


def test_policy_view_adds_synapse_blocklist() -> None:
    cjdns = Policy(parse_config({"ranges": {"cjdns": True}}))
    verdict = judge_address(cjdns, IPv6Address("fc00::1"), None)
    assert verdict.allowed and verdict.synapse_blocklist == "fc00::/7"
    assert synapse_blocklisted(IPv6Address("200::1")) is None
    refused = judge_address(Policy(), IPv6Address("fd00::1"), None)
    assert not refused.allowed and "never-dial" in refused.rule


def _query(name: str, qtype: int, ident: int = 7) -> bytes:
    from v6alt.dns_wire import build_query as build

    return build(name, qtype, ident=ident)


def test_dns_answer_parsing() -> None:
    zone = {
        "h.test": {"AAAA": ["200::5", "200::6"]},
        "_s._tcp.h.test": {"SRV": [[20, 0, 8449, "b.test"], [10, 5, 8448, "a.test"]]},
    }
    aaaa = parse_response(answer(_query("h.test", 28), zone), 7, 28, "h.test")
    assert aaaa.rcode_name == "NOERROR"
    assert aaaa.addresses == [IPv6Address("200::5"), IPv6Address("200::6")]
    srv = parse_response(answer(_query("_s._tcp.h.test", 33), zone), 7, 33, "_s._tcp.h.test")
    assert srv.srv == [SrvRecord(10, 5, 8448, "a.test"), SrvRecord(20, 0, 8449, "b.test")]
    missing = parse_response(answer(_query("x.test", 28), zone), 7, 28, "x.test")
    assert missing.rcode_name == "NXDOMAIN" and missing.addresses == []


@pytest.mark.parametrize(
    ("packet", "error"),
    [
        (b"\x00\x07", "shorter than a DNS header"),
        (answer(_query("h.test", 28, ident=8), {}), "does not match query id 7"),
        (_query("h.test", 28), "not a response"),
    ],
)
def test_dns_answer_errors(packet: bytes, error: str) -> None:
    with pytest.raises(DnsError, match=error):
        parse_response(packet, 7, 28, "h.test")
