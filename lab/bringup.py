"""The steps of ``lab up``, each recorded in the state file the moment it is done.

1. per host: a run directory and a namespace (loopback up);
2. per link: a veth pair with nodad ULA underlay addresses;
3. per host: a fresh Yggdrasil config and a node started in the namespace,
   then wait until it has its 200::/7 address on its TUN interface;
4. wait: every veth link is a Yggdrasil peering that is up;
5. wait: every host answers ICMPv6 echo from every other host over Yggdrasil
   (A reaches C in a chain only because Yggdrasil routes through B).
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from v6alt.codec import encode

from .errors import LabError, LabTimeoutError
from .interrupts import Interrupts
from .netns import add_address, add_netns, add_veth, interface_addresses, netns_exec_argv
from .netns import set_link_up as link_up
from .procs import process_start_time
from .state import HostRecord, LabState, LinkRecord
from .topology import LabPlan
from .yggdrasil import AdminClient, config_address, make_config, start_node

__all__ = ["BringUp"]

POLL_INTERVAL: Final = 0.1
LOG_TAIL_LINES: Final = 8
_DETACHED: list[subprocess.Popen[bytes]] = []


def _log_tail(record: HostRecord) -> str:
    if record.log is None:
        return ""
    try:
        lines = Path(record.log).read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    except OSError:
        return ""
    return "\n  ".join([f"last lines of {record.log}:", *lines]) if lines else ""


class BringUp:
    def __init__(
        self,
        plan: LabPlan,
        state: LabState,
        state_path: Path,
        guard: Interrupts,
        progress: Callable[[str], None],
    ) -> None:
        self.plan = plan
        self.state = state
        self.state_path = state_path
        self.guard = guard
        self.progress = progress

    def _save(self) -> None:
        self.state.save(self.state_path)

    def run(self, yggdrasil: str, deadline: float) -> None:
        self._make_hosts()
        self._make_links()
        self._start_nodes(yggdrasil, deadline)
        self._wait_peers(deadline)
        self._wait_reachable(deadline)
        with self.guard.critical():
            self.state.complete = True
            self._save()

    # -- 1. namespaces ------------------------------------------------------

    def _make_hosts(self) -> None:
        hosts_dir = Path(self.state.run_dir) / "hosts"
        if not hosts_dir.is_dir():
            with self.guard.critical():
                hosts_dir.mkdir(mode=0o700)
                self.state.dirs.append(str(hosts_dir))
                self._save()
        for host in self.plan.hosts:
            record = HostRecord(host=host.host, netns=host.netns, tun_ifname=host.tun_ifname)
            with self.guard.critical():
                self.state.hosts.append(record)
                host_dir = hosts_dir / host.host
                host_dir.mkdir(mode=0o700)  # exists -> error: not ours to reuse
                record.dir = str(host_dir)
                self._save()
            with self.guard.critical():
                record.netns_inode = add_netns(host.netns)
                self._save()
            link_up(host.netns, "lo")
            self.progress(f"{host.host}: namespace {host.netns} created")

    # -- 2. veth links ------------------------------------------------------

    def _make_links(self) -> None:
        for link in self.plan.links:
            left, right = self.state.host(link.left), self.state.host(link.right)
            record = LinkRecord(
                left=link.left,
                right=link.right,
                left_ifname=link.ifname_in(link.left),
                right_ifname=link.ifname_in(link.right),
                left_address=str(link.left_address),
                right_address=str(link.right_address),
            )
            with self.guard.critical():
                self.state.links.append(record)
                add_veth(left.netns, record.left_ifname, right.netns, record.right_ifname)
                record.created = True
                self._save()
            for netns, ifname, address in (
                (left.netns, record.left_ifname, link.left_address),
                (right.netns, record.right_ifname, link.right_address),
            ):
                add_address(netns, ifname, address)
                link_up(netns, ifname)
            self.progress(
                f"link {link.left}-{link.right}: veth up, underlay "
                f"{link.left_address.ip} <-> {link.right_address.ip}"
            )

    # -- 3. yggdrasil nodes ---------------------------------------------------

    def _start_nodes(self, yggdrasil: str, deadline: float) -> None:
        # Every link is dialled by its left host, so starting from the right end
        # means each dial finds its listener up instead of waiting out a retry.
        for host in reversed(self.plan.hosts):
            record = self.state.host(host.host)
            assert record.dir is not None
            host_dir = Path(record.dir)
            config = make_config(
                yggdrasil,
                listen=self.plan.listen_uris(host.host),
                peers=self.plan.peer_uris(host.host),
                admin_socket=host_dir / "admin.sock",
                ifname=host.tun_ifname,
            )
            config_path = host_dir / "yggdrasil.conf"
            with self.guard.critical():
                record.config = str(config_path)
                record.log = str(host_dir / "yggdrasil.log")
                record.admin_socket = str(host_dir / "admin.sock")
                fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as stream:
                    json.dump(config, stream, indent=2)
                self._save()
            address = config_address(yggdrasil, config_path)
            with self.guard.critical():
                record.ygg_address = str(address)
                proc = start_node(yggdrasil, host.netns, config_path, Path(record.log))
                record.pid = proc.pid
                record.pid_start = process_start_time(proc.pid)
                self._save()
            # The node outlives ``lab up``; ``down`` stops it by pid. Keeping the
            # Popen object referenced stops Python warning that it is still running.
            _DETACHED.append(proc)
            self.progress(
                f"{host.host}: yggdrasil started (pid {proc.pid}), address {address} "
                f"= {encode(address)}"
            )
            self._wait_addresses(deadline, [host.host])

    # -- 3-5. waiting for the mesh ----------------------------------------------

    def _check_alive(self, record: HostRecord) -> None:
        if record.pid is None or process_start_time(record.pid) != record.pid_start:
            with_log = _log_tail(record)
            raise LabError(
                f"{record.host}: yggdrasil exited" + (f"\n  {with_log}" if with_log else "")
            )

    def _timeout(self, step: str, hosts: list[str]) -> LabTimeoutError:
        tails = [t for h in hosts if (t := _log_tail(self.state.host(h)))]
        detail = "".join(f"\n  {t}" for t in tails)
        return LabTimeoutError(f"timed out waiting for {step} on {', '.join(hosts)}{detail}")

    def _wait_addresses(self, deadline: float, hosts: list[str]) -> None:
        """Wait until each node has its address on its TUN and answers on its admin socket.

        The TUN address is set after the node's listeners are up, so a node
        that passes is ready to be dialled.
        """
        pending = list(hosts)
        while pending:
            for host in list(pending):
                record = self.state.host(host)
                self._check_alive(record)
                assert record.tun_ifname is not None and record.admin_socket is not None
                on_tun = {i.ip for i in interface_addresses(record.netns, record.tun_ifname)}
                if record.ygg_address is None or not any(
                    str(a) == record.ygg_address for a in on_tun
                ):
                    continue
                try:
                    AdminClient(record.admin_socket).get_self()
                except LabError:
                    continue
                pending.remove(host)
                self.progress(f"{host}: {record.ygg_address} is up on {record.tun_ifname}")
            if pending and time.monotonic() > deadline:
                raise self._timeout("the Yggdrasil address", pending)
            if pending:
                time.sleep(POLL_INTERVAL)

    def _wait_peers(self, deadline: float) -> None:
        by_address = {r.ygg_address: r.host for r in self.state.hosts}
        pending = {(link.left, link.right) for link in self.plan.links}
        while pending:
            for left, right in sorted(pending):
                record = self.state.host(left)
                self._check_alive(record)
                assert record.admin_socket is not None
                try:
                    peers = AdminClient(record.admin_socket).get_peers()
                except LabError:
                    continue
                if any(p.get("up") and by_address.get(p.get("address")) == right for p in peers):
                    pending.discard((left, right))
                    self.progress(f"link {left}-{right}: Yggdrasil peering up")
            if pending and time.monotonic() > deadline:
                raise self._timeout("peerings", sorted({h for pair in pending for h in pair}))
            if pending:
                time.sleep(POLL_INTERVAL)

    def _wait_reachable(self, deadline: float) -> None:
        if len(self.state.hosts) < 2:
            return
        remaining = max(1.0, deadline - time.monotonic())
        probes: dict[str, subprocess.Popen[str]] = {}
        selector = selectors.DefaultSelector()
        by_address = {r.ygg_address: r.host for r in self.state.hosts}
        failed: list[str] = []
        try:
            for record in self.state.hosts:
                targets = [str(r.ygg_address) for r in self.state.hosts if r is not record]
                argv = netns_exec_argv(
                    record.netns,
                    [
                        sys.executable,
                        "-m",
                        "v6alt.lab.probe",
                        "--timeout",
                        f"{remaining:.1f}",
                        *targets,
                    ],
                )
                proc = subprocess.Popen(
                    argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                    stdin=subprocess.DEVNULL, start_new_session=True,
                )  # fmt: skip
                probes[record.host] = proc
                assert proc.stdout is not None
                selector.register(proc.stdout, selectors.EVENT_READ, record.host)
            open_streams = len(probes)
            while open_streams:
                for key, _ in selector.select():
                    source: str = key.data
                    line = key.fileobj.readline()  # type: ignore[union-attr]
                    if not line:
                        selector.unregister(key.fileobj)
                        open_streams -= 1
                        continue
                    result = json.loads(line)
                    target = by_address.get(result["address"], result["address"])
                    if result["ok"]:
                        ms = result["rtt"] * 1000
                        self.progress(
                            f"{source} -> {target}: reachable over Yggdrasil ({ms:.1f} ms)"
                        )
                    else:
                        failed.append(f"{source} -> {target}")
            for host, proc in probes.items():
                if proc.wait() not in (0, 1):
                    stderr = proc.stderr.read() if proc.stderr else ""
                    raise LabError(f"{host}: reachability probe failed: {stderr.strip()}")
        finally:
            selector.close()
            for proc in probes.values():
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                for stream in (proc.stdout, proc.stderr):
                    if stream is not None:
                        stream.close()
        if failed:
            raise LabTimeoutError(
                f"not reachable over Yggdrasil within {remaining:.0f} s: {', '.join(failed)}"
            )
