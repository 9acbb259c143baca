"""Stock Synapse on lab hosts: DNS names from the host's unbound, trust from the test CA.

The baseline of benchmarks/lab_invite.py must be what it claims: two
homeservers without the module that find each other through DNS (well-known,
SRV, AAAA) and verify each other's CA-signed certificates, with the lab's
resolv.conf seen by Synapse alone. Root; about 30 s. Lab run directory
``/run/v6alt-stockbench-test-<pid>``, namespaces ``v6k-t<pid>-*``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path

import pytest

from tests.orphaned_labs import take_down_orphaned_labs
from v6alt.lab import Lab
from v6alt.lab.matrix.mesh import LabSynapse
from v6alt.lab.matrix.stock import (
    DNS_KIND,
    STOCK_KIND,
    start_stock_homeservers,
    stop_lab_homeservers,
)
from v6alt.lab.netns import list_netns
from v6alt.lab.procs import process_start_time

pytestmark = pytest.mark.integration


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "openssl", "yggdrasil", "unbound", "getent"):
        if shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
            return f"{tool} not installed"
    if find_spec("synapse") is None:
        return "matrix-synapse is not installed in this interpreter"
    return None


@pytest.fixture
def stock_lab() -> Iterator[tuple[Lab, list[LabSynapse]]]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    take_down_orphaned_labs(
        "v6alt-stockbench-test-*", r"v6alt-stockbench-test-(?P<pid>\d+)", "v6k-t{pid}-"
    )
    pid = os.getpid()
    lab = Lab(run_dir=f"/run/v6alt-stockbench-test-{pid}", prefix=f"v6k-t{pid}-")
    try:
        hosts = lab.up(nodes=2)
        yield lab, start_stock_homeservers(lab, hosts, lambda line: None)
    finally:
        lab.down()
    assert not any(name.startswith(lab.prefix) for name in list_netns())
    assert not lab.run_dir.exists()


def test_stock_homeservers_federate_by_dns_name_and_test_ca(
    stock_lab: tuple[Lab, list[LabSynapse]],
) -> None:
    lab, (a, b) = stock_lab
    assert (a.server_name, b.server_name) == ("a.lab.example", "b.lab.example")
    machine_resolv_conf = Path("/etc/resolv.conf").read_text()

    alice, bob = a.register("alice", "pw-alice"), b.register("bob", "pw-bob")
    room = alice.create_room(invite=[bob.user_id])
    bob.join(room, timeout=120)
    alice.send_text(room, "a to b")
    bob.wait_text(room, "a to b", timeout=60)
    bob.send_text(room, "b to a")
    alice.wait_text(room, "b to a", timeout=60)

    # Found the stock way: a well-known request first (refused: nothing on 443), no module.
    log = b.log_text()
    assert "Fetching https://a.lab.example/.well-known/matrix/server" in log
    assert "v6alt.synapse_module" not in log
    # Each Synapse reads the lab's resolv.conf; the machine's own is untouched.
    for server in (a, b):
        seen = Path(f"/proc/{server.pid}/root/etc/resolv.conf").read_text()
        assert seen.splitlines()[0] == "nameserver ::1"
    assert Path("/etc/resolv.conf").read_text() == machine_resolv_conf

    state = lab.load_state()
    assert state is not None
    services = [s for s in state.services if s.kind in (STOCK_KIND, DNS_KIND)]
    assert sorted((s.host, s.kind) for s in services) == [
        ("a", STOCK_KIND), ("a", DNS_KIND), ("b", STOCK_KIND), ("b", DNS_KIND)
    ]  # fmt: skip
    stop_lab_homeservers(lab)
    for service in services:
        assert service.pid is not None and service.pid_start is not None and service.tree
        assert process_start_time(service.pid) != service.pid_start
        assert not Path(service.tree).exists()
    state = lab.load_state()
    assert state is not None and state.services == []
