"""``v6alt lab status`` shows the servers recorded on each host, checked live (no root needed).

The lab here is a state file written by the test: one host whose namespace
is a file in a stand-in ``/run/netns`` and whose "yggdrasil" and servers are
real processes with their config path in the command line, which is all the
status checks look at (pid, start time, marker). The endpoints are read from
config files rendered the way the lab's starters write them.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import v6alt.lab.netns as netns_module
from v6alt.cli import main
from v6alt.cli_common import Streams
from v6alt.lab.procs import process_start_time
from v6alt.lab.service_status import describe_endpoints
from v6alt.lab.state import HostRecord, LabState, ServiceRecord, load_state
from v6alt.lab.status import lab_status
from v6alt.lab.xmpp.files import DNS_LISTEN, LOOKUP_LISTEN, SiteFiles, render_prosody_config

ADDRESS = "200:c885:133b:b3e8:257b:3d0c:9b8b:766e"
NAME = "aiamrbithoz6qjl3hugjxc3wny.v6.alt"  # v6alt encode ADDRESS
PREFIX = "v6t-u-"


class FakeLab:
    """A one-host lab on disk: ``run_dir/state.json`` and the processes it records."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        host_dir = run_dir / "hosts" / "a"
        site, matrix = host_dir / "xmpp", host_dir / "matrix"
        for directory in (site, matrix):
            directory.mkdir(parents=True)
        self.site = SiteFiles(site, NAME)
        self.site.sidecar_config.write_text(
            f'sidecar:\n  dns_listen: "{DNS_LISTEN}"\n  lookup_listen: "{LOOKUP_LISTEN}"\n'
        )
        self.site.prosody_config.write_text(render_prosody_config(self.site))
        homeserver = matrix / "homeserver.yaml"
        homeserver.write_text(_homeserver_yaml(matrix / "client.sock"))
        ygg_config = host_dir / "yggdrasil.conf"
        ygg_config.write_text("{}")
        self.state = LabState(
            prefix=PREFIX, topology="chain", nodes=1, run_dir=str(run_dir),
            yggdrasil="/usr/sbin/yggdrasil", complete=True,
        )  # fmt: skip
        self.state.hosts = [
            HostRecord(host="a", netns=f"{PREFIX}a", dir=str(host_dir), config=str(ygg_config),
                       ygg_address=ADDRESS, tun_ifname="ygg-a")
        ]  # fmt: skip
        self.state.services = [
            ServiceRecord("a", "sidecar", str(self.site.sidecar_config), tree=str(site)),
            ServiceRecord("a", "prosody", str(self.site.prosody_config)),
            ServiceRecord("a", "synapse", str(homeserver), tree=str(matrix)),
        ]
        record = self.state.hosts[0]
        record.pid, record.pid_start = self.start("yggdrasil", str(ygg_config))
        for service in self.state.services:
            service.pid, service.pid_start = self.start(service.kind, service.marker)
        self.save()

    def start(self, key: str, marker: str) -> tuple[int, int | None]:
        proc = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(600)", marker],
            stdin=subprocess.DEVNULL,
        )
        self.procs[key] = proc
        return proc.pid, process_start_time(proc.pid)

    def kill(self, key: str) -> None:
        self.procs[key].kill()
        self.procs[key].wait()

    def service(self, kind: str) -> ServiceRecord:
        return next(s for s in self.state.services if s.kind == kind)

    def save(self) -> None:
        self.state.save(self.run_dir / "state.json")

    def close(self) -> None:
        for proc in self.procs.values():
            proc.kill()
            proc.wait()


def _homeserver_yaml(client_socket: Path) -> str:
    # The listeners of lab/matrix/files.py: federation on the mesh address, client on
    # a unix socket (the real file is checked on a real lab in tests/e2e).
    return (
        f"server_name: {NAME}\n"
        "listeners:\n"
        f"- port: 8448\n  bind_addresses: ['{ADDRESS}']\n  type: http\n  tls: true\n"
        "  resources: [{names: [federation]}]\n"
        f"- path: {client_socket}\n  type: http\n  resources: [{{names: [client]}}]\n"
    )


@pytest.fixture
def fake_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLab]:
    netns_dir = tmp_path / "netns"
    netns_dir.mkdir()
    (netns_dir / f"{PREFIX}a").touch()
    monkeypatch.setattr(netns_module, "NETNS_DIR", netns_dir)
    # `lab status` asks for root; nothing it does here needs it.
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    lab = FakeLab(tmp_path / "run")
    lab.state.hosts[0].netns_inode = (netns_dir / f"{PREFIX}a").stat().st_ino
    lab.save()
    try:
        yield lab
    finally:
        lab.close()


def status_cli(lab: FakeLab, *extra: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    args = ["lab", "status", "--run-dir", str(lab.run_dir), "--prefix", PREFIX, *extra]
    code = main(args, streams=Streams(io.StringIO(), out, err))
    return code, out.getvalue(), err.getvalue()


def services_json(lab: FakeLab) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    code, out, _ = status_cli(lab, "--json")
    data = json.loads(out)
    (host,) = data["hosts"]
    return code, data, host["services"]


def test_every_service_is_shown_with_what_to_connect_to(fake_lab: FakeLab) -> None:
    code, data, services = services_json(fake_lab)
    assert code == 0, data["problems"]
    assert (data["healthy"], data["mesh_healthy"], data["problems"]) == (True, True, [])
    assert [(s["kind"], s["pid"], s["running"]) for s in services] == [
        (r.kind, r.pid, True) for r in fake_lab.state.services
    ]
    sidecar, prosody, synapse = services
    assert sidecar["endpoints"] == {"dns": "[::1]:5353", "lookup": "[::1]:5380"}
    assert prosody["endpoints"] == {
        "xmpp_domain": NAME, "muc_domain": f"groups.{NAME}", "c2s": f"[{ADDRESS}]:5222",
    }  # fmt: skip
    assert synapse["endpoints"] == {
        "server_name": NAME,
        "client_socket": str(fake_lab.run_dir / "hosts/a/matrix/client.sock"),
        "federation": f"[{ADDRESS}]:8448",
    }
    assert synapse["config"] == fake_lab.service("synapse").marker
    assert sidecar["tree"] == fake_lab.service("sidecar").tree and prosody["tree"] is None


def test_the_table_lists_the_services_per_host(fake_lab: FakeLab) -> None:
    code, out, err = status_cli(fake_lab)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("lab is up, healthy: 1 host, chain")
    header = lines.index(next(line for line in lines if line.startswith("HOST  SERVICE")))
    rows = [line.split(None, 4) for line in lines[header + 1 :]]
    assert [row[:4] for row in rows] == [
        ["a", s.kind, "running", str(s.pid)] for s in fake_lab.state.services
    ]
    assert rows[0][4] == "DNS [::1]:5353, lookup [::1]:5380"
    assert rows[1][4] == f"XMPP {NAME}, MUC groups.{NAME}, c2s port 5222"
    socket = fake_lab.run_dir / "hosts/a/matrix/client.sock"
    assert rows[2][4] == f"Matrix {NAME}, client API unix socket {socket}, federation port 8448"
    assert not any(line.startswith("problem:") for line in lines)


def test_a_killed_service_is_down_and_status_exits_1(fake_lab: FakeLab) -> None:
    fake_lab.kill("prosody")
    pid = fake_lab.service("prosody").pid
    code, data, services = services_json(fake_lab)
    assert code == 1
    assert (data["healthy"], data["mesh_healthy"]) == (False, True)
    assert [s["running"] for s in services] == [True, False, True]
    assert services[1]["pid"] == pid and services[1]["endpoints"]["xmpp_domain"] == NAME
    assert data["problems"] == [f"a: prosody (pid {pid}) is not running"]
    code, out, _ = status_cli(fake_lab)
    assert code == 1
    assert out.startswith("lab is up, NOT healthy: 1 host")
    assert ["a", "prosody", "DOWN", str(pid)] in [line.split()[:4] for line in out.splitlines()]
    assert out.endswith(f"problem: a: prosody (pid {pid}) is not running\n")


def test_a_recycled_pid_is_not_taken_for_the_service(fake_lab: FakeLab) -> None:
    # The pid runs, but not since the recorded start: another process got the pid.
    synapse = fake_lab.service("synapse")
    assert synapse.pid_start is not None
    synapse.pid_start -= 1
    fake_lab.save()
    code, data, services = services_json(fake_lab)
    assert code == 1 and not services[2]["running"]
    assert data["problems"] == [f"a: synapse (pid {synapse.pid}) is not running"]


def test_a_process_without_the_marker_is_not_the_service(fake_lab: FakeLab) -> None:
    sidecar = fake_lab.service("sidecar")
    sidecar.marker = str(fake_lab.run_dir / "another.yaml")
    fake_lab.save()
    _, data, services = services_json(fake_lab)
    assert not services[0]["running"] and services[0]["endpoints"] == {}
    assert data["problems"] == [f"a: sidecar (pid {sidecar.pid}) is not running"]


def test_a_service_recorded_but_never_started(fake_lab: FakeLab) -> None:
    fake_lab.state.services.append(ServiceRecord("a", "sidecar", "/nonexistent/sidecar.yaml"))
    fake_lab.save()
    code, data, services = services_json(fake_lab)
    assert code == 1
    assert services[-1] == {
        "kind": "sidecar", "pid": None, "running": False, "config": "/nonexistent/sidecar.yaml",
        "tree": None, "endpoints": {},
    }  # fmt: skip
    assert data["problems"] == ["a: sidecar was recorded but never started"]
    _, out, _ = status_cli(fake_lab)
    assert ["a", "sidecar", "DOWN", "-", "-"] in [line.split() for line in out.splitlines()]


def test_an_unknown_kind_is_shown_without_endpoints(fake_lab: FakeLab) -> None:
    marker = str(fake_lab.run_dir / "other.conf")
    pid, start = fake_lab.start("other", marker)
    fake_lab.state.services.append(ServiceRecord("a", "ejabberd", marker, pid=pid, pid_start=start))
    fake_lab.save()
    code, _, services = services_json(fake_lab)
    assert code == 0
    assert (services[-1]["kind"], services[-1]["running"], services[-1]["endpoints"]) == (
        "ejabberd", True, {},
    )  # fmt: skip


def test_a_variant_of_a_known_kind_is_read_like_it(fake_lab: FakeLab) -> None:
    synapse = fake_lab.service("synapse")
    synapse.kind = "synapse-stock"
    fake_lab.save()
    code, _, services = services_json(fake_lab)
    assert code == 0
    assert services[2]["kind"] == "synapse-stock"
    assert services[2]["endpoints"]["federation"] == f"[{ADDRESS}]:8448"


def test_a_config_replaced_by_a_symlink_or_fifo_is_not_read(fake_lab: FakeLab) -> None:
    # The XMPP site belongs to the prosody user: status (root) must not follow its links.
    config = fake_lab.site.prosody_config
    target = fake_lab.run_dir / "elsewhere.lua"
    config.rename(target)
    config.symlink_to(target)
    sidecar = fake_lab.site.sidecar_config
    sidecar.unlink()
    os.mkfifo(sidecar)  # opening it for reading would block
    code, _, services = services_json(fake_lab)
    assert code == 0  # the processes still run: only what they serve is not known
    assert services[0]["endpoints"] == services[1]["endpoints"] == {}
    assert services[2]["endpoints"]["server_name"] == NAME


def test_a_lab_without_services_shows_no_service_table(fake_lab: FakeLab) -> None:
    # A state file written before servers were recorded has no "services" key.
    data = json.loads((fake_lab.run_dir / "state.json").read_text())
    del data["services"]
    (fake_lab.run_dir / "state.json").write_text(json.dumps(data))
    state = load_state(fake_lab.run_dir / "state.json")
    assert state is not None and state.services == []
    code, out, _ = status_cli(fake_lab)
    assert code == 0
    assert "SERVICE" not in out
    assert lab_status(state, PREFIX, str(fake_lab.run_dir)).hosts[0].services == []


def test_a_dead_server_does_not_make_the_mesh_unhealthy(fake_lab: FakeLab) -> None:
    # `up` rebuilds a lab whose mesh is unhealthy; a dead server alone must not cause that.
    fake_lab.kill("synapse")
    fake_lab.kill("sidecar")
    status = lab_status(fake_lab.state, PREFIX, str(fake_lab.run_dir))
    assert status.mesh_healthy and not status.healthy
    assert [s.running for s in status.hosts[0].services] == [False, True, False]
    fake_lab.kill("yggdrasil")
    status = lab_status(fake_lab.state, PREFIX, str(fake_lab.run_dir))
    assert not status.mesh_healthy and not status.healthy


def test_service_on_a_host_the_lab_does_not_have(fake_lab: FakeLab) -> None:
    fake_lab.state.services.append(ServiceRecord("z", "prosody", "/x/prosody.cfg.lua"))
    status = lab_status(fake_lab.state, PREFIX, str(fake_lab.run_dir))
    assert not status.healthy and status.mesh_healthy
    assert status.problems == ["prosody is recorded for host 'z', not in the lab"]


def test_endpoints_are_described_in_a_fixed_order() -> None:
    assert describe_endpoints({}) == "-"
    assert describe_endpoints({"zeta": "1", "lookup": "[::1]:5380", "dns": "[::1]:5353"}) == (
        "DNS [::1]:5353, lookup [::1]:5380, zeta 1"
    )


def test_only_the_hosts_own_address_is_shortened_to_a_port() -> None:
    endpoints = {"c2s": f"[{ADDRESS}]:5222", "federation": "[200::1]:8448", "dns": "[::1]:53"}
    assert describe_endpoints(endpoints, ADDRESS) == (
        "c2s port 5222, federation [200::1]:8448, DNS [::1]:53"
    )
    assert describe_endpoints(endpoints) == (
        f"c2s [{ADDRESS}]:5222, federation [200::1]:8448, DNS [::1]:53"
    )
