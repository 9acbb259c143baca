"""``check local`` on fixture host data: a server named in a routed 300::/8 subnet."""

from __future__ import annotations

import json
from ipaddress import IPv6Address

from v6alt.check.local import _source
from v6alt.check.report import Report, Status
from v6alt.names import ServerName, parse_matrix_server_name

IF_INET6 = """\
0300abcd000000000000000000000001 03 40 00 80     eth1
02001234000000000000000000000001 05 07 00 80     tun0
"""


def route_get(destination: IPv6Address) -> str:
    source = "300:abcd::1" if destination in (IPv6Address("200::1"),) else "2a00::1"
    return json.dumps([{"dst": str(destination), "dev": "tun0", "prefsrc": source}])


def source_checks(if_inet6: str, server: ServerName | None) -> Report:
    report = Report("local", "this host")
    _source(report, server, read_addresses=lambda: if_inet6, route_get=route_get)
    return report


def test_a_subnet_server_name_warns_naming_the_node_address() -> None:
    report = source_checks(IF_INET6, parse_matrix_server_name("amakxti-e.v6.alt"))
    trust = [c for c in report.checks if c.id == "source.trust"]
    assert len(trust) == 1
    assert trust[0].status is Status.WARN  # a warning, not a failure
    assert trust[0].summary == (
        "amakxti-e.v6.alt is 300:abcd::1, in a routed Yggdrasil subnet: peers pin its keys"
    )
    assert trust[0].hint is not None
    assert "name it by this node's address 200:1234::1 (aiaben-e.v6.alt)" in trust[0].hint
    assert "ip -6 route change 200::/7 dev tun0 src 200:1234::1" in trust[0].hint
    assert report.ok


def test_without_a_server_name_the_kernel_source_decides() -> None:
    report = source_checks(IF_INET6, None)
    trust = [c for c in report.checks if c.id == "source.trust"]
    assert [c.status for c in trust] == [Status.WARN]
    assert trust[0].hint is not None
    assert trust[0].hint.startswith("the name of the kernel's source towards 200::/7")


def test_a_node_address_server_name_has_no_trust_warning() -> None:
    node = "02001234000000000000000000000001 05 07 00 80     tun0\n"

    def node_route(destination: IPv6Address) -> str:
        return json.dumps([{"dst": str(destination), "dev": "tun0", "prefsrc": "200:1234::1"}])

    report = Report("local", "this host")
    _source(
        report,
        parse_matrix_server_name("aiaben-e.v6.alt"),
        read_addresses=lambda: node,
        route_get=node_route,
    )
    assert [c.id for c in report.checks if c.id == "source.trust"] == []
    assert report.ok
