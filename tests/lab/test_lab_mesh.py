"""Real labs: namespaces, veth links, Yggdrasil nodes, TCP across the mesh."""

from __future__ import annotations

import os
import signal
import subprocess
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

import pytest

from v6alt import decode, encode
from v6alt.lab import Lab, LabConflictError, LabHost, LabUsageError
from v6alt.lab.netns import interface_addresses, list_netns, netns_inode
from v6alt.lab.procs import process_start_time

from .lab_support import namespaces_with, needs_root, start_echo, stop, tcp_echo

pytestmark = [pytest.mark.integration, needs_root]

YGGDRASIL_RANGE = IPv6Network("200::/7")


def test_two_hosts_talk_tcp_over_yggdrasil(lab2: tuple[Lab, list[LabHost]]) -> None:
    _, (a, b) = lab2
    server = start_echo(b)
    try:
        reply = tcp_echo(a, b.ygg_address, "hello from a")
    finally:
        stop(server)
    source, _, payload = reply.partition(" ")
    assert payload == "hello from a"
    # The server saw a's Yggdrasil address: the connection ran over the mesh.
    assert IPv6Address(source) == a.ygg_address


def test_hosts_have_yggdrasil_addresses_and_names(lab2: tuple[Lab, list[LabHost]]) -> None:
    _, hosts = lab2
    assert [h.host for h in hosts] == ["a", "b"]
    assert len({h.ygg_address for h in hosts}) == 2
    for host in hosts:
        assert host.ygg_address in YGGDRASIL_RANGE
        on_tun = {i.ip for i in interface_addresses(host.netns, host.tun_ifname)}
        assert host.ygg_address in on_tun
        assert host.name == encode(host.ygg_address)
        assert decode(host.name) == host.ygg_address
        self_info = host.admin().get_self()
        assert IPv6Address(self_info["address"]) == host.ygg_address


def test_hosts_of_a_running_lab_match_up(lab2: tuple[Lab, list[LabHost]]) -> None:
    lab, hosts = lab2
    again = Lab(run_dir=lab.run_dir, prefix=lab.prefix).hosts()
    assert again == hosts
    assert lab.host("b") == hosts[1]
    assert lab.host(hosts[1].netns) == hosts[1]


def test_exec_runs_inside_the_namespace(lab2: tuple[Lab, list[LabHost]]) -> None:
    _, (a, b) = lab2
    out = a.exec(["ip", "-6", "-o", "address", "show", "dev", a.tun_ifname]).stdout
    assert str(a.ygg_address) in out
    assert str(b.ygg_address) not in out


def test_up_again_reuses_the_lab(lab2: tuple[Lab, list[LabHost]]) -> None:
    lab, hosts = lab2
    before = sorted(list_netns())
    again = lab.up(nodes=2)
    assert lab.was_already_up
    assert again == hosts  # same namespaces, addresses and pids: nothing was restarted
    assert sorted(list_netns()) == before


def test_up_with_other_settings_is_refused(lab2: tuple[Lab, list[LabHost]]) -> None:
    lab, hosts = lab2
    with pytest.raises(LabUsageError, match="already recorded"):
        lab.up(nodes=3)
    with pytest.raises(LabUsageError, match="already recorded"):
        lab.up(nodes=2, topology="star")
    assert lab.hosts() == hosts


def test_status_reports_every_host(lab2: tuple[Lab, list[LabHost]]) -> None:
    lab, hosts = lab2
    status = lab.status()
    assert status.up and status.healthy, status.problems
    assert (status.nodes, status.topology, status.prefix) == (2, "chain", lab.prefix)
    by_host = {h.host: h for h in status.hosts}
    for host in hosts:
        entry = by_host[host.host]
        assert entry.netns == host.netns and entry.netns_present and entry.running
        assert entry.ygg_address == str(host.ygg_address)
        assert entry.name == host.name
    assert by_host["a"].peers_up == ["b"] and by_host["b"].peers_up == ["a"]


def test_chain_routes_a_to_c_through_b(chain3: tuple[Lab, list[LabHost]]) -> None:
    lab, (a, _, c) = chain3
    status = {h.host: h for h in lab.status().hosts}
    assert status["a"].peers_up == ["b"]
    assert status["b"].peers_up == ["a", "c"]
    assert status["c"].peers_up == ["b"]
    # a and c share no link: a's Yggdrasil peers do not include c.
    assert c.ygg_address not in a.peers_up()
    assert a.neighbours == ("b",) and c.neighbours == ("b",)
    server = start_echo(c)
    try:
        reply = tcp_echo(a, c.ygg_address, "a to c")
    finally:
        stop(server)
    assert reply == f"{a.ygg_address} a to c"


def test_chain_underlay_does_not_join_a_and_c(chain3: tuple[Lab, list[LabHost]]) -> None:
    _, (a, b, c) = chain3
    # a has a route to b's underlay (same link) but none to c's: only Yggdrasil joins them.
    c_underlay = c.underlay["b"].ip
    probe = a.exec(["ip", "-6", "route", "get", str(c_underlay)], check=False)
    assert probe.returncode != 0 or "unreachable" in probe.stdout
    assert a.exec(["ip", "-6", "route", "get", str(b.underlay["a"].ip)]).returncode == 0


def test_down_removes_everything_it_made(fresh_lab: Lab) -> None:
    hosts = fresh_lab.up(nodes=2)
    state = fresh_lab.load_state()
    assert state is not None and state.complete
    files = [Path(p) for r in state.hosts for p in (r.config, r.log, r.dir) if p is not None]
    assert all(f.exists() for f in files)
    pids = [h.pid for h in hosts]

    report = fresh_lab.down()

    assert report.clean, report.left_alone
    assert sorted(report.deleted_netns) == sorted(h.netns for h in hosts)
    assert not {h.netns for h in hosts} & list_netns()
    assert all(process_start_time(pid) is None for pid in pids)
    assert not any(f.exists() for f in files)
    assert not fresh_lab.state_path.exists()
    assert not fresh_lab.run_dir.exists()  # made by the lab, so removed with the lock file
    # The veths only ever existed inside the lab's namespaces, never in the root one.
    root_links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "v6lab-" not in root_links
    # down twice: nothing left to do, still fine.
    assert fresh_lab.down().clean


def test_refuses_a_namespace_it_did_not_create(fresh_lab: Lab) -> None:
    foreign = fresh_lab.prefix + "b"  # the name the lab wants for host b
    subprocess.run(["ip", "netns", "add", foreign], check=True)
    try:
        inode = netns_inode(foreign)
        with pytest.raises(LabConflictError, match=f"{foreign} already exists"):
            fresh_lab.up(nodes=2)
        assert netns_inode(foreign) == inode  # untouched
        assert namespaces_with(fresh_lab.prefix) == {foreign}  # and nothing else made
        assert not fresh_lab.run_dir.exists()
        fresh_lab.down()
        assert netns_inode(foreign) == inode  # down does not touch it either
    finally:
        subprocess.run(["ip", "netns", "delete", foreign], check=False)


def test_down_leaves_a_replaced_namespace_alone(fresh_lab: Lab) -> None:
    hosts = fresh_lab.up(nodes=2)
    b = hosts[1]
    # Someone deletes b's namespace and makes their own under the same name
    # (b's yggdrasil keeps running; down still stops it: pid and start time match).
    subprocess.run(["ip", "netns", "delete", b.netns], check=True)
    subprocess.run(["ip", "netns", "add", b.netns], check=True)
    foreign_inode = netns_inode(b.netns)
    try:
        report = fresh_lab.down()
        assert not report.clean
        assert any(b.netns in item for item in report.left_alone)
        assert netns_inode(b.netns) == foreign_inode
        assert netns_inode(hosts[0].netns) is None
        assert process_start_time(b.pid) is None
    finally:
        subprocess.run(["ip", "netns", "delete", b.netns], check=False)


def test_cut_link_stops_traffic_and_restore_brings_it_back(fresh_lab: Lab) -> None:
    a, b = fresh_lab.up(nodes=2)
    server = start_echo(b)
    try:
        assert tcp_echo(a, b.ygg_address, "before").endswith(" before")
        fresh_lab.set_link("a", "b", up=False)
        with pytest.raises(subprocess.CalledProcessError):
            tcp_echo(a, b.ygg_address, "during", timeout=3)
        fresh_lab.set_link("b", "a", up=True)
        underlay = {i.ip for i in interface_addresses(a.netns, "v6lab-b")}
        assert a.underlay["b"].ip in underlay
        assert tcp_echo(a, b.ygg_address, "after", timeout=60).endswith(" after")
    finally:
        stop(server)
    with pytest.raises(LabUsageError, match="no link between 'a' and 'c'"):
        fresh_lab.set_link("a", "c", up=False)


def test_up_rebuilds_a_lab_whose_node_died(fresh_lab: Lab) -> None:
    a, b = fresh_lab.up(nodes=2)
    os.kill(b.pid, signal.SIGKILL)
    while process_start_time(b.pid) is not None:
        os.waitpid(b.pid, os.WNOHANG)
    status = fresh_lab.status()
    assert status.up and not status.healthy
    assert f"b: yggdrasil (pid {b.pid}) is not running" in status.problems
    hosts = fresh_lab.up(nodes=2)
    assert not fresh_lab.was_already_up
    assert hosts[1].pid != b.pid
    assert process_start_time(a.pid) is None  # the old lab went as a whole
    assert fresh_lab.status().healthy
