"""`v6alt config check` and `config defaults`, in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_support import run

# --- config ---------------------------------------------------------------------------


def test_config_defaults_prints_the_default_yaml() -> None:
    from v6alt.config import DEFAULT_CONFIG_YAML

    result = run("config", "defaults")
    assert (result.code, result.out, result.err) == (0, DEFAULT_CONFIG_YAML, "")


def test_config_check_of_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "v6alt.yaml"
    path.write_text(run("config", "defaults").out)
    result = run("config", "check", str(path))
    assert (result.code, result.err) == (0, "")
    assert result.out.splitlines() == [
        f"{path}: valid; effective settings:",
        "  ranges.allow: 200::/7, 2000::/3",
        "  ranges.cjdns: false",
        "  ranges.unsafe_allow: (none)",
        "  ip_bound_trust: true",
        "  secure_ranges: (none)",
        "  pinning.default: enforce (outside the ranges below)",
        "  pinning by range (a secure range's pinning overrides):",
        "    200::/8 (yggdrasil node): off (addresses are keys)",
        "    300::/8 (yggdrasil subnet): enforce (addresses are not keys: pinning.default)",
        "    fc00::/8 (cjdns): off (addresses are keys)",
        "  pinning.file: (the server default)",
        "  synapse.inbound_ip_binding: log",
        "  synapse.recovery_probe_rate: 300 per second, each peer every 2 s "
        "(recovery_probe_interval)",
        "  sidecar.dns_listen: [::1]:5353",
        "  sidecar.lookup_listen: [::1]:5380",
        "  sidecar.forwarders: (none)",
        "  sidecar.limits: dns tcp 256 connections (64 per address), idle 10 s, query 5 s; "
        "lookup 64 connections, request 5 s and 8192 bytes; log 20 lines per minute",
    ]


FULL_CONFIG = """\
ranges:
  cjdns: true
ip_bound_trust: false
secure_ranges:
  - cidr: "200:1234::/32"
    tls: "off"
    trust_any_certificate: true
synapse:
  inbound_ip_binding: enforce
sidecar:
  dns_listen: "127.0.0.1:5353"
  forwarders: ["[2001:db8::53]:53"]
  limits:
    tcp_connections_per_address: 8
    tcp_query_timeout: 2.5
"""


def test_config_check_json(tmp_path: Path) -> None:
    path = tmp_path / "full.yaml"
    path.write_text(FULL_CONFIG)
    result = run("config", "check", "--json", str(path))
    assert result.code == 0
    assert json.loads(result.out) == {
        "file": str(path),
        "valid": True,
        "config": {
            "ranges": {"allow": ["200::/7", "2000::/3"], "cjdns": True, "unsafe_allow": []},
            "ip_bound_trust": False,
            "secure_ranges": [
                {"cidr": "200:1234::/32", "tls": "off", "trust_any_certificate": True}
            ],
            "pinning": {"default": "enforce", "file": None},
            "synapse": {
                "inbound_ip_binding": "enforce",
                "recovery_probe_rate": 300,
                "recovery_probe_interval": 2.0,
            },
            "sidecar": {
                "dns_listen": "127.0.0.1:5353",
                "lookup_listen": "[::1]:5380",
                "forwarders": ["[2001:db8::53]:53"],
                "limits": {
                    "tcp_connections": 256,
                    "tcp_connections_per_address": 8,
                    "tcp_idle_timeout": 10.0,
                    "tcp_query_timeout": 2.5,
                    "lookup_connections": 64,
                    "lookup_request_timeout": 5.0,
                    "lookup_request_bytes": 8192,
                    "log_lines_per_minute": 20,
                },
            },
        },
        "pinning_by_range": [
            {"cidr": "200::/8", "name": "yggdrasil node", "pinning": "off"},
            {"cidr": "300::/8", "name": "yggdrasil subnet", "pinning": "enforce"},
            {"cidr": "fc00::/8", "name": "cjdns", "pinning": "off"},
        ],
        "warnings": [],
    }
    text = run("config", "check", str(path)).out
    assert "  ranges.cjdns: true (fc00::/8 allowed)" in text
    assert "    200:1234::/32: tls off, trust_any_certificate true" in text


WEAK_CONFIG = """\
pinning:
  default: warn
secure_ranges:
  - cidr: "2a00:1::/32"
    tls: "off"
    trust_any_certificate: true
  - cidr: "200::/7"
    trust_any_certificate: true
  - cidr: "2a00:2::/48"
    pinning: "off"
"""


def test_config_check_warns_about_trust_outside_the_meshes(tmp_path: Path) -> None:
    path = tmp_path / "weak.yaml"
    path.write_text(WEAK_CONFIG)
    result = run("config", "check", str(path))
    assert result.code == 0
    lines = result.err.splitlines()
    assert all(line.startswith(f"v6alt: config: {path}: warning: ") for line in lines)
    text = result.err
    assert "secure_ranges[0].trust_any_certificate: true covers 2a00:1::/32" in text
    assert "secure_ranges[0].tls: off covers public addresses" in text
    assert "secure_ranges[2].pinning: off covers 2a00:2::/48" in text
    assert "pinning.default: warn" in text
    # 200::/7 is crypto-addressed: trusting any certificate there is not warned about.
    assert "secure_ranges[1]" not in text
    assert len(lines) == 4
    document = json.loads(run("config", "check", "--json", str(path)).out)
    assert len(document["warnings"]) == 4


def test_config_check_of_the_defaults_warns_about_nothing(tmp_path: Path) -> None:
    path = tmp_path / "default.yaml"
    path.write_text("secure_ranges: [{cidr: '2a00::/16', tls: required}]\n")
    assert run("config", "check", str(path)).err == ""


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("ranges:\n  allow: ['200::/7', '200::/129']\n", "ranges.allow[1]: "),
        ("rangez: {}\n", "rangez"),
        ("synapse:\n  inbound_ip_binding: maybe\n", "synapse.inbound_ip_binding: "),
        ("ranges: [\n", "YAML error at line"),
        ("- 1\n", ""),
    ],
)
def test_config_check_invalid_exits_2_with_one_line(
    tmp_path: Path, content: str, reason: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    result = run("config", "check", str(path))
    assert (result.code, result.out) == (2, "")
    assert result.err.startswith(f"v6alt: config: {path}: {reason}")
    assert result.err.count("\n") == 1 and result.err.count(str(path)) == 1


def test_config_check_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("ranges:\n  allow: ['200::/7', '200::/129']\n")
    result = run("config", "check", "--json", str(path))
    assert result.code == 2
    document = json.loads(result.out)
    assert document["valid"] is False and document["file"] == str(path)
    assert document["error"]["path"] == ["ranges", "allow", 1]


@pytest.mark.parametrize("what", ["missing", "directory", "binary"])
def test_config_check_unreadable_file(tmp_path: Path, what: str) -> None:
    path = tmp_path / what
    if what == "directory":
        path.mkdir()
    elif what == "binary":
        path.write_bytes(b"\xff\xfe\x00")
    result = run("config", "check", str(path))
    assert result.code == 2
    assert result.err.startswith(f"v6alt: config: {path}: ")
    assert result.err.count(str(path)) == 1 and result.err.count("\n") == 1


def test_config_check_shows_the_pinning_of_300_subnets_following_the_default(
    tmp_path: Path,
) -> None:
    path = tmp_path / "warn.yaml"
    path.write_text("pinning:\n  default: warn\n")
    text = run("config", "check", str(path)).out
    assert "    300::/8 (yggdrasil subnet): warn (addresses are not keys: pinning.default)" in (
        text.splitlines()
    )
    document = json.loads(run("config", "check", "--json", str(path)).out)
    assert {r["cidr"]: r["pinning"] for r in document["pinning_by_range"]} == {
        "200::/8": "off",
        "300::/8": "warn",
        "fc00::/8": "off",
    }


def test_config_check_warns_about_pinning_off_in_a_300_subnet(tmp_path: Path) -> None:
    path = tmp_path / "subnet.yaml"
    path.write_text(
        'secure_ranges:\n  - cidr: "300:1234:5678:9abc::/64"\n    pinning: "off"\n'
        '  - cidr: "200:1::/32"\n    pinning: "off"\n'
    )
    result = run("config", "check", str(path))
    assert result.code == 0
    assert "secure_ranges[0].pinning: off covers 300:1234:5678:9abc::/64" in result.err
    # 200::/8 node addresses are keys: turning pinning off there is no weakening.
    assert "secure_ranges[1]" not in result.err
