"""The pure parts of the lab: topology plan, state file, tool lookup (no root needed)."""

from __future__ import annotations

import json
from ipaddress import IPv6Interface, IPv6Network
from pathlib import Path

import pytest

from v6alt.lab import LabEnvironmentError, LabStateError, LabUsageError
from v6alt.lab.netns import find_tool
from v6alt.lab.state import HostRecord, LabState, LinkRecord, load_state
from v6alt.lab.topology import YGGDRASIL_PORT, plan_lab


def test_chain_links_neighbours_only() -> None:
    plan = plan_lab(3, "chain", "v6lab-")
    assert [h.netns for h in plan.hosts] == ["v6lab-a", "v6lab-b", "v6lab-c"]
    assert [(lk.left, lk.right) for lk in plan.links] == [("a", "b"), ("b", "c")]
    assert plan.neighbours("a") == ("b",)
    assert plan.neighbours("b") == ("a", "c")
    assert plan.neighbours("c") == ("b",)


def test_star_links_the_hub_to_every_host() -> None:
    plan = plan_lab(4, "star")
    assert [(lk.left, lk.right) for lk in plan.links] == [("a", "b"), ("a", "c"), ("a", "d")]
    assert plan.neighbours("c") == ("a",)


def test_underlay_is_one_ula_64_per_link() -> None:
    plan = plan_lab(3, "chain")
    first, second = plan.links
    assert first.network == IPv6Network("fd00:1ab:0:1::/64")
    assert second.network == IPv6Network("fd00:1ab:0:2::/64")
    assert first.address_of("a") == IPv6Interface("fd00:1ab:0:1::1/64")
    assert first.address_of("b") == IPv6Interface("fd00:1ab:0:1::2/64")
    assert first.ifname_in("a") == "v6lab-b" and first.ifname_in("b") == "v6lab-a"
    with pytest.raises(ValueError, match="not on link"):
        first.address_of("c")


def test_yggdrasil_listen_and_peers_follow_the_links() -> None:
    plan = plan_lab(3, "chain")
    port = YGGDRASIL_PORT
    assert plan.listen_uris("b") == [
        f"tcp://[fd00:1ab:0:1::2]:{port}",
        f"tcp://[fd00:1ab:0:2::1]:{port}",
    ]
    # Each link is dialled from one side only: a dials b, b dials c, c dials nobody.
    assert plan.peer_uris("a") == [f"tcp://[fd00:1ab:0:1::2]:{port}"]
    assert plan.peer_uris("b") == [f"tcp://[fd00:1ab:0:2::2]:{port}"]
    assert plan.peer_uris("c") == []


def test_interface_names_fit_linux_limit() -> None:
    plan = plan_lab(26, "star")
    for host in plan.hosts:
        assert len(host.tun_ifname) <= 15
        for link in plan.links_of(host.host):
            assert len(link.ifname_in(host.host)) <= 15


@pytest.mark.parametrize(
    ("nodes", "topology", "prefix", "message"),
    [
        (0, "chain", "v6lab-", "nodes: 0 is not a whole number"),
        (27, "chain", "v6lab-", "nodes: 27 is not a whole number"),
        (True, "chain", "v6lab-", "nodes: True is not a whole number"),
        (2, "ring", "v6lab-", "topology: 'ring' is not one of chain, star"),
        (2, "chain", "v6lab", "namespace prefix 'v6lab' is not valid"),
        (2, "chain", "V6-", "namespace prefix 'V6-' is not valid"),
        (2, "chain", "a/b-", "namespace prefix 'a/b-' is not valid"),
    ],
)
def test_bad_plans_are_refused(nodes: int, topology: str, prefix: str, message: str) -> None:
    with pytest.raises(LabUsageError, match=message) as info:
        plan_lab(nodes, topology, prefix)
    assert info.value.exit_code == 2


def _state() -> LabState:
    state = LabState(prefix="v6lab-", topology="chain", nodes=2, run_dir="/run/x", yggdrasil="y")
    state.hosts.append(HostRecord(host="a", netns="v6lab-a", netns_inode=12, pid=5, pid_start=9))
    state.links.append(LinkRecord("a", "b", "v6lab-b", "v6lab-a", "fd00::1/64", "fd00::2/64", True))
    state.dirs.append("/run/x/hosts")
    return state


def test_state_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = _state()
    state.save(path)
    assert load_state(path) == state
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert load_state(tmp_path / "missing.json") is None


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.update(version=99), "state version 99"),
        (lambda d: d["hosts"][0].update(pid="5"), "pid: '5' has the wrong type"),
        (lambda d: d["hosts"][0].update(netns_inode=True), "netns_inode: True has the wrong type"),
        (lambda d: d["links"][0].update(extra=1), "unknown keys"),
        (lambda d: d.pop("prefix"), "prefix"),
        (lambda d: d.update(hosts={}), "hosts: not a list"),
    ],
)
def test_damaged_state_is_an_error_naming_the_file(tmp_path: Path, mutate, reason: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "state.json"
    data = json.loads(_state().to_json())
    mutate(data)
    path.write_text(json.dumps(data))
    with pytest.raises(LabStateError, match=reason) as info:
        load_state(path)
    assert str(path) in str(info.value)


def test_state_that_is_not_json_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{not json")
    with pytest.raises(LabStateError, match="is damaged"):
        load_state(path)


def test_missing_tool_names_the_apt_command() -> None:
    with pytest.raises(LabEnvironmentError) as info:
        find_tool("v6alt-no-such-tool", "v6alt-pkg", "apt-get install v6alt-pkg")
    assert info.value.exit_code == 2
    assert "apt-get install v6alt-pkg" in str(info.value)
