"""`v6alt whoami`: on fixture host data in-process, and for real in a namespace."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from ipaddress import IPv6Address

import pytest

import v6alt
from tests.cli_support import run
from v6alt.cli_codec import register_decode, register_encode
from v6alt.cli_common import Registrar
from v6alt.cli_config import register_config
from v6alt.cli_whoami import register_whoami
from v6alt.hostinfo import HostInfoError, NoRouteError
from v6alt.lab.netns import FlatNet

# --- whoami (fixtures) -------------------------------------------------------------

IF_INET6 = """\
0300abcd000000000000000000000001 03 40 00 82       v0
2a00109803a000000000000000000001 03 40 00 81       v0
02001234000000000000000000000001 03 07 00 82       v0
fe80000000000000b8eb74fffe08adee 03 40 20 c0       v0
00000000000000000000000000000001 01 80 10 80       lo
"""


def route_to(source: str, dev: str = "v0") -> str:
    return json.dumps([{"dst": "x", "dev": dev, "prefsrc": source}])


def whoami_commands(if_inet6: str, routes: dict[str, str | None]) -> list[Registrar]:
    def route_get(destination: IPv6Address) -> str:
        answer = routes[str(destination)]
        if answer is None:
            raise NoRouteError("Network is unreachable")
        return answer

    whoami = functools.partial(
        register_whoami, read_addresses=lambda: if_inet6, route_get=route_get
    )
    return [register_encode, register_decode, whoami, register_config]


WARNING_CASE = whoami_commands(IF_INET6, {"200::1": route_to("300:abcd::1"), "2000::1": None})


def test_whoami_text_report_with_warning() -> None:
    result = run("whoami", commands=WARNING_CASE)
    assert (result.code, result.err) == (1, "")
    assert result.out.splitlines() == [
        "mesh addresses:",
        "  yggdrasil  200:1234::1       aiaben-e.v6.alt     v0",
        "  yggdrasil  300:abcd::1       amakxti-e.v6.alt    v0",
        "  global     2a00:1098:3a0::1  fiabbgadu-e.v6.alt  v0 [temporary]",
        "kernel source address:",
        "  towards 200::/7 (route to 200::1): 300:abcd::1  amakxti-e.v6.alt via v0",
        "  towards 2000::/3 (route to 2000::1): no route (Network is unreachable)",
        "warning: peers bind your name to the source address; the kernel picks 300:abcd::1 "
        "towards 200::/7 (this host also has 200:1234::1), so your server name must be "
        "amakxti-e.v6.alt",
        "warning: the name of the kernel's source towards 200::/7, amakxti-e.v6.alt "
        "(300:abcd::1), is in a routed Yggdrasil subnet (300::/8): any host on the subnet's "
        "LAN can take that address, so it proves no identity and peers pin this server's keys "
        "instead (docs/security.md); name it by this node's address 200:1234::1 "
        "(aiaben-e.v6.alt) instead, and make the kernel send from it: "
        "ip -6 route change 200::/7 dev v0 src 200:1234::1",
    ]


def test_whoami_json_report() -> None:
    result = run("whoami", "--json", commands=WARNING_CASE)
    assert result.code == 1
    report = json.loads(result.out)
    assert report["ok"] is False and report["server_name"] is None
    assert report["addresses"][0] == {
        "address": "200:1234::1",
        "name": "aiaben-e.v6.alt",
        "kind": "yggdrasil",
        "interface": "v0",
        "prefix_length": 7,
        "flags": ["nodad", "permanent"],
    }
    assert [s["source"] for s in report["sources"]] == ["300:abcd::1", None]
    assert report["sources"][0]["name"] == "amakxti-e.v6.alt"
    assert report["sources"][1]["no_route"] == "Network is unreachable"
    assert report["warnings"] == [report["sources"][0]["warning"]]
    assert len(report["trust_warnings"]) == 1
    assert "(300::/8)" in report["trust_warnings"][0]
    assert "200:1234::1 (aiaben-e.v6.alt)" in report["trust_warnings"][0]


def test_whoami_name_matching_the_kernel_source_passes() -> None:
    result = run("whoami", "--name", "amakxti-e.v6.alt", commands=WARNING_CASE)
    # No warning about the source; the one about a 300::/8 name does not fail the check.
    assert result.code == 0
    assert [line for line in result.out.splitlines() if "warning" in line] == [
        "warning: your server name amakxti-e.v6.alt (300:abcd::1) is in a routed Yggdrasil "
        "subnet (300::/8): any host on the subnet's LAN can take that address, so it proves "
        "no identity and peers pin this server's keys instead (docs/security.md); name it by "
        "this node's address 200:1234::1 (aiaben-e.v6.alt) instead, and make the kernel send "
        "from it: ip -6 route change 200::/7 dev v0 src 200:1234::1"
    ]
    document = json.loads(
        run("whoami", "--name", "amakxti-e.v6.alt", "--json", commands=WARNING_CASE).out
    )
    assert (document["ok"], document["warnings"]) == (True, [])
    assert len(document["trust_warnings"]) == 1
    wrong = run("whoami", "--name", "aiaben-e.v6.alt", commands=WARNING_CASE)
    assert wrong.code == 1
    assert wrong.out.splitlines()[-1].endswith(
        "so your server name must be amakxti-e.v6.alt, not aiaben-e.v6.alt"
    )


def test_whoami_subnet_name_without_a_node_address_warns_and_passes() -> None:
    commands = whoami_commands(
        "0300abcd000000000000000000000001 03 40 00 80 eth1\n",
        {"200::1": route_to("300:abcd::1", "eth1"), "2000::1": None},
    )
    result = run("whoami", "--name", "amakxti-e.v6.alt", commands=commands)
    assert (result.code, result.err) == (0, "")
    assert result.out.splitlines()[-1].endswith(
        "this host has no Yggdrasil node address (200::/8): run the server on the Yggdrasil "
        "node itself and name it by the node's address (yggdrasilctl getSelf)"
    )


def test_whoami_node_address_name_has_no_trust_warning() -> None:
    commands = whoami_commands(IF_INET6, {"200::1": route_to("200:1234::1"), "2000::1": None})
    result = run("whoami", "--name", "aiaben-e.v6.alt", "--json", commands=commands)
    assert result.code == 0
    assert json.loads(result.out)["trust_warnings"] == []


def test_whoami_single_address_is_ok() -> None:
    commands = whoami_commands(
        "02001234000000000000000000000001 05 07 00 80 tun0\n",
        {"200::1": route_to("200:1234::1", "tun0"), "2000::1": None},
    )
    result = run("whoami", commands=commands)
    assert (result.code, result.err) == (0, "")
    assert "  towards 200::/7 (route to 200::1): 200:1234::1  aiaben-e.v6.alt via tun0" in (
        result.out.splitlines()
    )


def test_whoami_without_mesh_address_fails_the_check() -> None:
    commands = whoami_commands("", {"200::1": route_to("fd00::2", "eth0"), "2000::1": None})
    result = run("whoami", commands=commands)
    assert result.code == 1
    assert (
        result.out.splitlines()[0] == "no mesh address (200::/7, fc00::/8, 2000::/3) on this host"
    )


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["--towards", "fd00::1"], "fd00::1 is in none of the mesh ranges"),
        (["--towards", "nope"], "not an IPv6 address: 'nope'"),
        (["--name", "EAAQ3O-E.v6.alt"], "not lowercase"),
        (["--name", "a-e.v6.alt"], "::1 is in none of the mesh ranges"),
    ],
)
def test_whoami_bad_arguments_exit_2(argv: list[str], reason: str) -> None:
    result = run("whoami", *argv, commands=WARNING_CASE)
    assert (result.code, result.out) == (2, "")
    assert result.err.startswith("v6alt: whoami: ") and reason in result.err
    assert result.err.count("\n") == 1


def test_whoami_unreadable_host_fails_the_check() -> None:
    def broken_route_get(destination: IPv6Address) -> str:
        raise HostInfoError("cannot run 'ip': iproute2 is not installed")

    whoami = functools.partial(
        register_whoami, read_addresses=lambda: IF_INET6, route_get=broken_route_get
    )
    result = run("whoami", commands=[whoami])
    assert (result.code, result.out) == (1, "")
    assert result.err == "v6alt: whoami: cannot run 'ip': iproute2 is not installed\n"
    garbled = functools.partial(register_whoami, read_addresses=lambda: "garbage\n")
    result = run("whoami", commands=[garbled])
    assert result.code == 1 and result.err.startswith("v6alt: whoami: if_inet6 line 1:")


# --- whoami for real, in a network namespace -------------------------------------------


def ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=30)


@pytest.fixture
def mesh_namespace() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root to create a network namespace")
    with FlatNet(f"v6cli-{os.getpid()}-") as net:
        # A Yggdrasil node address (its /7 brings the 200::/7 route); the test adds
        # an address of the node's routed 300::/8 subnet on the same host.
        yield net.add_host("a", "200:1234::1", prefixlen=7, ifname="mesh0").netns


def whoami_in(namespace: str, *argv: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["ip", "netns", "exec", namespace, sys.executable, "-m", "v6alt", "whoami", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in done.stderr
    return done


@pytest.mark.integration
def test_whoami_in_a_namespace(mesh_namespace: str) -> None:
    alone = whoami_in(mesh_namespace)
    assert (alone.returncode, alone.stderr) == (0, "")
    assert alone.stdout.splitlines() == [
        "mesh addresses:",
        "  yggdrasil  200:1234::1  aiaben-e.v6.alt  mesh0",
        "kernel source address:",
        "  towards 200::/7 (route to 200::1): 200:1234::1  aiaben-e.v6.alt via mesh0",
        "  towards 2000::/3 (route to 2000::1): no route (Network is unreachable)",
    ]
    ip("-n", mesh_namespace, "addr", "add", "300:abcd::1/64", "dev", "mesh0", "nodad")
    both = whoami_in(mesh_namespace, "--json")
    assert both.returncode == 1
    report = json.loads(both.stdout)
    assert [a["address"] for a in report["addresses"]] == ["200:1234::1", "300:abcd::1"]
    source = report["sources"][0]["source"]
    other = ({"200:1234::1", "300:abcd::1"} - {source}).pop()
    assert report["warnings"] == [
        f"peers bind your name to the source address; the kernel picks {source} towards "
        f"200::/7 (this host also has {other}), so your server name must be "
        f"{v6alt.encode(source)}"
    ]
    assert whoami_in(mesh_namespace, "--name", v6alt.encode(source)).returncode == 0
    assert whoami_in(mesh_namespace, "--name", v6alt.encode(other)).returncode == 1
