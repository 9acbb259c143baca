"""v6alt.hostinfo: parsing of /proc/net/if_inet6 and `ip -json route get`, and the judging."""

from __future__ import annotations

import json
import shutil
import subprocess
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from typing import Any

import pytest

from v6alt.hostinfo import (
    DEFAULT_PROBES,
    HostInfoError,
    LocalAddress,
    MeshKind,
    NoRouteError,
    Route,
    check_source,
    ip_route_get,
    mesh_kind,
    parse_if_inet6,
    parse_route_get,
    read_if_inet6,
    subnet_name_warning,
    survey,
)

# Captured from a namespace with a Yggdrasil node address, an address of its
# routed subnet, a global address and the usual link-local/loopback lines.
IF_INET6 = """\
0300abcd000000000000000000000001 03 40 00 82       v0
2a00109803a000000000000000000001 03 40 00 82       v0
02001234000000000000000000000001 03 07 00 82       v0
fe80000000000000b8eb74fffe08adee 03 40 20 c0       v0
00000000000000000000000000000001 01 80 10 80       lo
fd000000000000000000000000000002 04 40 00 82     eth0
"""
ROUTE_200 = (
    '[{"dst":"200::1","from":"::","dev":"v0","protocol":"kernel","prefsrc":"300:abcd::1",'
    '"metric":256,"flags":[],"pref":"medium"}]'
)
ROUTE_LOCAL = (
    '[{"type":"local","dst":"300:abcd::1","from":"::","dev":"lo","table":"local",'
    '"protocol":"kernel","prefsrc":"300:abcd::1","metric":0,"flags":[],"pref":"medium"}]'
)

YGG_NODE = IPv6Address("200:1234::1")
YGG_SUBNET = IPv6Address("300:abcd::1")
GLOBAL = IPv6Address("2a00:1098:3a0::1")


def route_json(destination: str, source: str | None, dev: str = "v0", **extra: Any) -> str:
    entry: dict[str, Any] = {"dst": destination, "from": "::", "dev": dev, **extra}
    if source is not None:
        entry["prefsrc"] = source
    return json.dumps([entry])


def fixed_routes(table: dict[str, str | None]) -> Any:
    """A route_get that answers from a dict (None: no route)."""

    def route_get(destination: IPv6Address) -> str:
        answer = table[str(destination)]
        if answer is None:
            raise NoRouteError("Network is unreachable")
        return answer

    return route_get


def local(address: str, interface: str = "v0", flags: int = 0x80) -> LocalAddress:
    return LocalAddress(IPv6Address(address), interface, 64, 0, flags)


# --- parse_if_inet6 --------------------------------------------------------------


def test_parse_if_inet6_reads_every_field() -> None:
    rows = parse_if_inet6(IF_INET6)
    assert [str(r.address) for r in rows] == [
        "300:abcd::1",
        "2a00:1098:3a0::1",
        "200:1234::1",
        "fe80::b8eb:74ff:fe08:adee",
        "::1",
        "fd00::2",
    ]
    node = rows[2]
    assert (node.interface, node.prefix_length, node.scope, node.flags) == ("v0", 7, 0, 0x82)
    assert node.flag_names == ("nodad", "permanent")
    assert node.kind is MeshKind.YGGDRASIL
    assert node.name == "aiaben-e.v6.alt"
    assert rows[3].scope == 0x20 and rows[3].flag_names == ("tentative", "permanent")
    assert rows[5].kind is None  # ULA is no mesh


def test_parse_if_inet6_skips_blank_lines_and_accepts_long_ifindex() -> None:
    rows = parse_if_inet6("\n02001234000000000000000000000001 1a3 07 00 80 tun0\n\n")
    assert len(rows) == 1 and rows[0].interface == "tun0"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0200123400000000000000000000000 03 07 00 82 v0", "expected 6 fields"),
        ("02001234000000000000000000000001 03 07 00 82", "expected 6 fields"),
        ("0200123400000000000000000000000g 03 07 00 82 v0", "not hex"),
        ("02001234000000000000000000000001 03 zz 00 82 v0", "not hex"),
        ("02001234000000000000000000000001 03 81 00 82 v0", "prefix length 129"),
    ],
)
def test_parse_if_inet6_rejects_malformed_lines(text: str, reason: str) -> None:
    with pytest.raises(HostInfoError, match=reason) as info:
        parse_if_inet6(IF_INET6 + text + "\n")
    assert "line 7" in str(info.value)


def test_address_flags_decide_source_usability() -> None:
    assert local("200::5", flags=0x80).usable_as_source
    assert local("200::5", flags=0x01).usable_as_source  # temporary: still picked
    assert local("200::5", flags=0x40).usable_as_source  # tentative: soon picked
    assert not local("200::5", flags=0x20).usable_as_source  # deprecated
    assert not local("200::5", flags=0x08).usable_as_source  # dadfailed
    assert local("200::5", flags=0xFF).flag_names == (
        "temporary",
        "nodad",
        "optimistic",
        "dadfailed",
        "homeaddress",
        "deprecated",
        "tentative",
        "permanent",
    )


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("200::", MeshKind.YGGDRASIL),
        ("3ff:ffff::1", MeshKind.YGGDRASIL),
        ("1ff:ffff::1", None),
        ("400::", None),
        ("fc00::1", MeshKind.CJDNS),
        ("fcff::1", MeshKind.CJDNS),
        ("fd00::1", None),
        ("2000::", MeshKind.GLOBAL),
        ("3fff:ffff::1", MeshKind.GLOBAL),
        ("4000::", None),
        ("fe80::1", None),
        ("::1", None),
    ],
)
def test_mesh_kind(address: str, kind: MeshKind | None) -> None:
    assert mesh_kind(IPv6Address(address)) is kind


# --- parse_route_get -------------------------------------------------------------


def test_parse_route_get_unicast_and_local() -> None:
    probe = IPv6Address("200::1")
    assert parse_route_get(ROUTE_200, probe) == Route(probe, YGG_SUBNET, "v0", "unicast")
    route = parse_route_get(ROUTE_LOCAL, YGG_SUBNET)
    assert (route.source, route.interface, route.type) == (YGG_SUBNET, "lo", "local")


def test_parse_route_get_without_prefsrc() -> None:
    route = parse_route_get(route_json("200::1", None), IPv6Address("200::1"))
    assert route.source is None and route.interface == "v0"


@pytest.mark.parametrize("route_type", ["unreachable", "blackhole", "prohibit", "throw"])
def test_parse_route_get_routes_without_way_out(route_type: str) -> None:
    with pytest.raises(NoRouteError, match=route_type):
        parse_route_get(route_json("200::1", None, type=route_type), IPv6Address("200::1"))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "not JSON"),
        ("Error: any valid prefix is expected", "not JSON"),
        ("{}", "expected a list"),
        ("[]", "expected a list"),
        ("[1]", "expected a list"),
        ('[{"type": 5}]', "'type' is not text"),
        ('[{"prefsrc": "10.0.0.1"}]', "prefsrc is not an IPv6 address"),
    ],
)
def test_parse_route_get_rejects_other_output(text: str, reason: str) -> None:
    with pytest.raises(HostInfoError, match=reason):
        parse_route_get(text, IPv6Address("200::1"))


# --- check_source ---------------------------------------------------------------

PROBE = DEFAULT_PROBES[MeshKind.YGGDRASIL]


def ygg_route(source: str | None) -> Route:
    return Route(PROBE, IPv6Address(source) if source else None, "tun0", "unicast")


def test_single_mesh_address_picked_is_fine() -> None:
    check = check_source(MeshKind.YGGDRASIL, PROBE, [local("200::5")], ygg_route("200::5"))
    assert check.warning is None
    assert check.source == IPv6Address("200::5")
    assert check.network == IPv6Network("200::/7")


def test_other_usable_address_in_range_warns_with_the_source_name() -> None:
    addresses = [local("200:1234::1"), local("300:abcd::1")]
    check = check_source(MeshKind.YGGDRASIL, PROBE, addresses, ygg_route("300:abcd::1"))
    assert check.warning is not None
    assert "the kernel picks 300:abcd::1 towards 200::/7" in check.warning
    assert "this host also has 200:1234::1" in check.warning
    assert check.warning.endswith("so your server name must be amakxti-e.v6.alt")


def test_deprecated_or_other_range_addresses_do_not_warn() -> None:
    addresses = [local("200::5"), local("200::6", flags=0x20), local("2a00::1")]
    check = check_source(MeshKind.YGGDRASIL, PROBE, addresses, ygg_route("200::5"))
    assert check.warning is None
    assert [str(a.address) for a in check.candidates] == ["200::5"]


def test_source_outside_the_range_warns() -> None:
    check = check_source(MeshKind.YGGDRASIL, PROBE, [local("200::5")], ygg_route("2a00::2"))
    assert check.warning is not None
    assert "picks 2a00::2, which is outside 200::/7 (this host has 200::5 there)" in check.warning


def test_source_outside_the_range_without_local_addresses_is_no_warning() -> None:
    check = check_source(MeshKind.YGGDRASIL, PROBE, [local("2a00::1")], ygg_route("2a00::2"))
    assert check.warning is None and check.candidates == ()


@pytest.mark.parametrize("candidates", [["200::5"], ["2a00::1"]])
def test_a_never_dial_source_always_warns_with_the_rule(candidates: list[str]) -> None:
    addresses = [local(a) for a in candidates]
    check = check_source(MeshKind.YGGDRASIL, PROBE, addresses, ygg_route("fd00::2"))
    assert check.never_dial == "never-dial: ULA (fd00::/8)"
    assert check.warning is not None
    assert "picks fd00::2 as source, an address peers never dial (never-dial: ULA" in check.warning


def test_no_route_is_no_warning_without_server_name() -> None:
    check = check_source(MeshKind.GLOBAL, IPv6Address("2000::1"), [local("2a00::1")], None, "x")
    assert check.warning is None and check.no_route_reason == "x" and check.source is None


def test_expected_address_decides_alone() -> None:
    addresses = [local("200:1234::1"), local("300:abcd::1")]
    right = check_source(
        MeshKind.YGGDRASIL, PROBE, addresses, ygg_route("300:abcd::1"), expected=YGG_SUBNET
    )
    assert right.warning is None
    wrong = check_source(
        MeshKind.YGGDRASIL, PROBE, addresses, ygg_route("300:abcd::1"), expected=YGG_NODE
    )
    assert wrong.warning is not None
    assert wrong.warning.endswith(
        "so your server name must be amakxti-e.v6.alt, not aiaben-e.v6.alt"
    )
    unreachable = check_source(MeshKind.YGGDRASIL, PROBE, addresses, None, "down", YGG_NODE)
    assert unreachable.warning is not None
    assert "no source address (down)" in unreachable.warning


# --- survey ---------------------------------------------------------------------


def test_survey_lists_mesh_addresses_in_range_order_and_warns() -> None:
    routes = fixed_routes({"200::1": ROUTE_200, "2000::1": None})
    report = survey(IF_INET6, routes)
    assert [str(a.address) for a in report.addresses] == [
        "200:1234::1",
        "300:abcd::1",
        "2a00:1098:3a0::1",
    ]
    assert [str(c.probe) for c in report.sources] == ["200::1", "2000::1"]
    assert report.sources[1].no_route_reason == "Network is unreachable"
    assert len(report.warnings) == 1 and "amakxti-e.v6.alt" in report.warnings[0]
    assert not report.ok


def test_survey_trust_warning_follows_the_own_address() -> None:
    routes = fixed_routes({"200::1": ROUTE_200, "2000::1": None})
    # Without a server name: the kernel's source towards 200::/7 (300:abcd::1).
    kernel = survey(IF_INET6, routes)
    assert kernel.own_address == YGG_SUBNET
    assert len(kernel.trust_warnings) == 1
    assert kernel.trust_warnings[0].startswith("the name of the kernel's source towards 200::/7")
    # A server name decides; it does not make the source check fail.
    named = survey(IF_INET6, routes, server_address=YGG_SUBNET)
    assert named.ok and named.own_address == YGG_SUBNET
    assert named.trust_warnings[0].startswith("your server name amakxti-e.v6.alt (300:abcd::1)")
    node = survey(IF_INET6, routes, server_address=YGG_NODE)
    assert node.trust_warnings == () and not node.ok


def test_subnet_name_warning_names_the_node_address() -> None:
    addresses = [local("200:1234::1", "tun0"), local("300:abcd::1", "eth1")]
    warning = subnet_name_warning(YGG_SUBNET, addresses, named=True)
    assert warning is not None
    assert "name it by this node's address 200:1234::1 (aiaben-e.v6.alt)" in warning
    assert warning.endswith("ip -6 route change 200::/7 dev tun0 src 200:1234::1")
    # A deprecated node address is never a source: it is not offered.
    stale = [local("200:1234::1", "tun0", flags=0xA0), local("300:abcd::1", "eth1")]
    assert "no Yggdrasil node address (200::/8)" in (
        subnet_name_warning(YGG_SUBNET, stale, named=True) or ""
    )
    for other in (YGG_NODE, GLOBAL, IPv6Address("fc00::1"), None):
        assert subnet_name_warning(other, addresses, named=True) is None


def test_survey_ok_with_one_address() -> None:
    text = "02001234000000000000000000000001 05 07 00 80 tun0\n"
    report = survey(
        text, fixed_routes({"200::1": route_json("200::1", "200:1234::1", "tun0"), "2000::1": None})
    )
    assert report.ok and report.warnings == ()


def test_survey_without_mesh_address_is_not_ok() -> None:
    text = "00000000000000000000000000000001 01 80 10 80 lo\n"
    report = survey(text, fixed_routes({"200::1": None, "2000::1": None}))
    assert report.addresses == () and not report.ok and report.warnings == ()


def test_survey_probes_cjdns_only_when_present() -> None:
    text = "fc001234000000000000000000000001 05 08 00 80 tun1\n"
    routes = fixed_routes(
        {"200::1": None, "2000::1": None, "fc00::1": route_json("fc00::1", "fc00:1234::1")}
    )
    report = survey(text, routes)
    assert [c.kind for c in report.sources] == [MeshKind.YGGDRASIL, MeshKind.CJDNS, MeshKind.GLOBAL]
    assert report.ok


def test_survey_explicit_probes_and_server_address() -> None:
    routes = fixed_routes({"300:1::9": ROUTE_200, "200::1": ROUTE_200})
    report = survey(IF_INET6, routes, [IPv6Address("300:1::9")], server_address=YGG_SUBNET)
    assert [str(c.probe) for c in report.sources] == ["300:1::9"]
    assert report.ok
    report = survey(IF_INET6, routes, [], server_address=YGG_NODE)
    assert [str(c.probe) for c in report.sources] == ["200::1"]
    assert not report.ok


def test_survey_server_address_not_on_host() -> None:
    routes = fixed_routes({"200::1": ROUTE_200, "2000::1": None})
    report = survey(IF_INET6, routes, server_address=IPv6Address("200::77"))
    assert report.warnings[0] == "ai-o4.v6.alt is 200::77, which is not a mesh address of this host"


@pytest.mark.parametrize("probe", ["fd00::1", "::1"])
def test_survey_rejects_probes_outside_mesh_ranges(probe: str) -> None:
    with pytest.raises(HostInfoError, match="none of the mesh ranges"):
        survey(IF_INET6, fixed_routes({}), [IPv6Address(probe)])
    with pytest.raises(HostInfoError, match="none of the mesh ranges"):
        survey(IF_INET6, fixed_routes({}), server_address=IPv6Address(probe))


# --- the thin I/O -------------------------------------------------------------


def test_read_if_inet6(tmp_path: Path) -> None:
    table = tmp_path / "if_inet6"
    table.write_text(IF_INET6)
    assert read_if_inet6(str(table)) == IF_INET6
    assert read_if_inet6(str(tmp_path / "missing")) == ""  # IPv6 disabled
    with pytest.raises(HostInfoError, match="cannot read"):
        read_if_inet6(str(tmp_path))


def fake_runner(returncode: int, stdout: str = "", stderr: str = "") -> Any:
    calls: list[list[str]] = []

    def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        return subprocess.CompletedProcess(command, returncode, stdout, stderr)

    run.calls = calls  # type: ignore[attr-defined]
    return run


def test_ip_route_get_runs_ip_and_returns_json() -> None:
    runner = fake_runner(0, ROUTE_200)
    assert ip_route_get(IPv6Address("200::1"), runner=runner) == ROUTE_200
    assert runner.calls == [["ip", "-6", "-json", "route", "get", "200::1"]]


def test_ip_route_get_no_route() -> None:
    runner = fake_runner(2, stderr="RTNETLINK answers: Network is unreachable\n")
    with pytest.raises(NoRouteError, match=r"^Network is unreachable$"):
        ip_route_get(IPv6Address("200::1"), runner=runner)
    with pytest.raises(NoRouteError, match="exit status 2"):
        ip_route_get(IPv6Address("200::1"), runner=fake_runner(2))


def test_ip_route_get_without_iproute2() -> None:
    with pytest.raises(HostInfoError, match="iproute2 is not installed"):
        ip_route_get(IPv6Address("200::1"), ip="/nonexistent/ip")


@pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 not installed")
def test_ip_route_get_against_the_real_kernel() -> None:
    # ::1 always has a route (the local table), whatever the host's network.
    route = parse_route_get(ip_route_get(IPv6Address("::1")), IPv6Address("::1"))
    assert route.type == "local" and route.interface == "lo"
