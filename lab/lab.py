"""The lab: N hosts in network namespaces, each running a real Yggdrasil node.

Python API (what the command line, the demo and the integration tests use)::

    from v6alt.lab import Lab

    lab = Lab()                              # /run/v6alt-lab, namespaces v6lab-a, v6lab-b, ...
    hosts = lab.up(nodes=3, topology="chain")
    a, c = hosts[0], hosts[2]
    print(c.name, c.ygg_address)             # v6.alt name and 200::/7 address
    a.exec(["python3", "-c", "..."])          # run inside a's namespace
    lab.down()

``up`` is idempotent (a healthy lab with the same settings is reused), cleans
up everything it made when it fails or is interrupted, and never touches a
namespace it did not create. ``with Lab(...) as lab:`` runs ``down`` on exit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from ipaddress import IPv6Address, IPv6Interface
from pathlib import Path
from types import TracebackType
from typing import Final

from .bringup import BringUp
from .errors import LabConflictError, LabEnvironmentError, LabError, LabNotUpError, LabUsageError
from .host import LabHost
from .interrupts import Interrupts
from .netns import add_address, find_tool, interface_addresses, netns_inode, set_link_up
from .state import MADE_MARKER, LabLock, LabState, load_state
from .status import LabStatus, lab_status
from .teardown import TeardownReport, teardown
from .topology import DEFAULT_PREFIX, LabPlan, check_prefix, count_hosts, plan_lab
from .yggdrasil import find_yggdrasil

__all__ = ["DEFAULT_RUN_DIR", "DEFAULT_TIMEOUT", "Lab"]

DEFAULT_RUN_DIR: Final = Path("/run/v6alt-lab")
DEFAULT_TIMEOUT: Final = 60.0
TUN_DEVICE: Final = Path("/dev/net/tun")

Progress = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


class Lab:
    """One lab, identified by its run directory (state file, configs, sockets, logs).

    ``prefix`` starts every namespace name (``<prefix>a``, ``<prefix>b``, ...);
    ``progress`` receives one human-readable line per step.
    """

    def __init__(
        self,
        run_dir: Path | str = DEFAULT_RUN_DIR,
        prefix: str = DEFAULT_PREFIX,
        progress: Progress | None = None,
    ) -> None:
        self.run_dir = Path(run_dir).absolute()
        self.prefix = check_prefix(prefix)
        self.progress: Progress = progress or _quiet
        #: True when the last :meth:`up` found the lab already up and changed nothing.
        self.was_already_up = False

    @property
    def state_path(self) -> Path:
        return self.run_dir / "state.json"

    def __repr__(self) -> str:
        return f"Lab(run_dir={str(self.run_dir)!r}, prefix={self.prefix!r})"

    # -- checks ---------------------------------------------------------

    @staticmethod
    def require_root() -> None:
        if os.geteuid() != 0:
            raise LabEnvironmentError(
                "the lab needs root (it creates network namespaces and TUN devices); "
                "run it as root, e.g. with sudo"
            )

    def _preflight(self) -> str:
        """Root, iproute2, yggdrasil >= 0.5 and a TUN device; return yggdrasil's path."""
        self.require_root()
        find_tool("ip", "iproute2", "apt-get install iproute2")
        yggdrasil = find_yggdrasil()
        if not TUN_DEVICE.exists():
            raise LabEnvironmentError(
                f"{TUN_DEVICE} is missing; load the tun module (modprobe tun) or, in a "
                "container, pass the device in (--device /dev/net/tun)"
            )
        return yggdrasil

    def load_state(self) -> LabState | None:
        """The recorded lab, or None when it is down."""
        return load_state(self.state_path)

    # -- up -------------------------------------------------------------

    def up(
        self, nodes: int = 2, topology: str = "chain", timeout: float = DEFAULT_TIMEOUT
    ) -> list[LabHost]:
        """Bring the lab up (or find it up) and return its hosts once all reach each other.

        Raises :class:`LabUsageError` if a lab with other settings is up,
        :class:`LabConflictError` if a namespace it would create already
        exists, :class:`LabTimeoutError` if the mesh does not converge within
        ``timeout`` seconds, :class:`LabEnvironmentError` if the machine
        cannot run a lab.
        """
        plan = plan_lab(nodes, topology, self.prefix)
        if timeout <= 0:
            raise LabUsageError(f"timeout: {timeout!r} is not a positive number of seconds")
        yggdrasil = self._preflight()
        self.was_already_up = False
        self._make_run_dir()
        with LabLock(self.run_dir) as lock, Interrupts() as guard:
            # Decided under the lock from the marker: of two concurrent `up`s,
            # the one that builds need not be the one that made the directory.
            made_run_dir = (self.run_dir / MADE_MARKER).exists()
            try:
                return self._up_locked(plan, yggdrasil, timeout, guard, made_run_dir)
            finally:
                if not self.state_path.exists() and made_run_dir:
                    lock.remove_run_dir()

    def _make_run_dir(self) -> None:
        """Create the run directory, marked as made by a lab, unless it exists.

        Built aside and renamed into place, so it never exists without its
        marker; the rename fails when a concurrent ``up`` was first.
        """
        if self.run_dir.exists():
            return
        self.run_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{self.run_dir.name}.", dir=self.run_dir.parent))
        (staging / MADE_MARKER).touch(mode=0o600)
        try:
            staging.rename(self.run_dir)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)

    def _up_locked(
        self, plan: LabPlan, yggdrasil: str, timeout: float, guard: Interrupts, made_run_dir: bool
    ) -> list[LabHost]:
        existing = self.load_state()
        if existing is not None:
            recorded = (existing.nodes, existing.topology, existing.prefix)
            if recorded != (len(plan.hosts), plan.topology, plan.prefix):
                raise LabUsageError(
                    f"a lab with {count_hosts(existing.nodes)} ({existing.topology}, namespaces "
                    f"{existing.prefix}*) is already recorded in {self.state_path}; run "
                    f"`v6alt lab down` before asking for {count_hosts(len(plan.hosts))} "
                    f"({plan.topology}, {plan.prefix}*)"
                )
            status = lab_status(existing, self.prefix, str(self.run_dir))
            # A dead server on a host is its starter's to restart; only the mesh counts here.
            if status.mesh_healthy:
                self.was_already_up = True
                self.progress(
                    f"lab is already up ({count_hosts(existing.nodes)}, {existing.topology}); "
                    "nothing to do"
                )
                return self._hosts_of(existing)
            self.progress(
                "a lab is recorded but not healthy ("
                + "; ".join(status.problems)
                + "): removing it and starting again"
            )
            made_run_dir = made_run_dir or existing.made_run_dir
            with guard.critical():
                teardown(existing, self.state_path, self.progress)
        for host in plan.hosts:
            if netns_inode(host.netns) is not None:
                raise LabConflictError(
                    f"namespace {host.netns} already exists and was not created by this lab "
                    f"(it is not in {self.state_path}); refusing to touch it. If it is a "
                    f"leftover, delete it yourself: ip netns delete {host.netns}"
                )
        state = LabState(
            prefix=self.prefix,
            topology=plan.topology,
            nodes=len(plan.hosts),
            run_dir=str(self.run_dir),
            yggdrasil=yggdrasil,
            made_run_dir=made_run_dir,
        )
        with guard.critical():
            state.save(self.state_path)
        started = time.monotonic()
        try:
            BringUp(plan, state, self.state_path, guard, self.progress).run(
                yggdrasil, started + timeout
            )
        except BaseException as exc:
            reason = str(exc) or type(exc).__name__
            if isinstance(exc, KeyboardInterrupt):
                reason = f"interrupted ({reason})" if str(exc) else "interrupted"
            first_line = reason.splitlines()[0]
            self.progress(f"bring-up failed: {first_line}; removing what was made")
            with contextlib.suppress(KeyboardInterrupt), guard.critical():
                try:
                    teardown(state, self.state_path, self.progress)
                except LabError as cleanup_error:  # the original error matters more
                    self.progress(f"clean-up incomplete: {cleanup_error}")
            raise
        self.progress(
            f"lab is up: {count_hosts(len(plan.hosts))} ({plan.topology}) "
            f"in {time.monotonic() - started:.1f} s"
        )
        return self._hosts_of(state)

    # -- running lab ------------------------------------------------------

    def _hosts_of(self, state: LabState) -> list[LabHost]:
        plan = plan_lab(state.nodes, state.topology, state.prefix)
        hosts: list[LabHost] = []
        for record in state.hosts:
            if (
                record.ygg_address is None
                or record.admin_socket is None
                or record.log is None
                or record.pid is None
                or record.tun_ifname is None
            ):
                raise LabNotUpError(f"host {record.host} of the lab is not fully up")
            underlay = {
                link.other(record.host): link.address_of(record.host)
                for link in plan.links_of(record.host)
            }
            hosts.append(
                LabHost(
                    host=record.host,
                    netns=record.netns,
                    ygg_address=IPv6Address(record.ygg_address),
                    tun_ifname=record.tun_ifname,
                    underlay=underlay,
                    admin_socket=Path(record.admin_socket),
                    log_path=Path(record.log),
                    pid=record.pid,
                )
            )
        return hosts

    def up_state(self) -> LabState:
        """The state of the lab that is up; :class:`LabNotUpError` when none is (complete)."""
        state = self.load_state()
        if state is None or not state.complete:
            raise LabNotUpError(f"no lab is up (no complete state in {self.state_path})")
        return state

    def hosts(self) -> list[LabHost]:
        """The hosts of the lab that is up (started by this process or an earlier one)."""
        return self._hosts_of(self.up_state())

    def host(self, name: str) -> LabHost:
        """One host by its short name (``a``) or its namespace (``v6lab-a``)."""
        for host in self.hosts():
            if name in (host.host, host.netns):
                return host
        raise LabUsageError(f"the lab has no host {name!r}")

    def status(self) -> LabStatus:
        """Each host's namespace, address, v6.alt name, peers and servers, checked live."""
        self.require_root()
        return lab_status(self.load_state(), self.prefix, str(self.run_dir))

    def set_link(self, left: str, right: str, up: bool) -> None:
        """Cut (``up=False``) or restore the underlay link between two hosts.

        Both veth ends go down or up; on restore the underlay addresses are put
        back if the kernel dropped them. The Yggdrasil nodes keep running and
        re-peer by themselves.
        """
        self.require_root()
        state = self.load_state()
        if state is None or not state.complete:
            raise LabNotUpError("no lab is up")
        for link in state.links:
            if {link.left, link.right} != {left, right}:
                continue
            ends = (
                (state.host(link.left).netns, link.left_ifname, link.left_address),
                (state.host(link.right).netns, link.right_ifname, link.right_address),
            )
            for netns, ifname, address in ends:
                set_link_up(netns, ifname, up)
                wanted = IPv6Interface(address)
                if up and wanted not in interface_addresses(netns, ifname):
                    add_address(netns, ifname, wanted)
            self.progress(f"link {link.left}-{link.right}: {'restored' if up else 'cut'}")
            return
        raise LabUsageError(f"the lab has no link between {left!r} and {right!r}")

    # -- down -------------------------------------------------------------

    def down(self) -> TeardownReport:
        """Stop the nodes and delete what the state file says the lab made.

        Idempotent: with no lab up it does nothing. Interrupts are held until
        it has finished, so it is never left half done by a Ctrl-C.
        """
        self.require_root()
        if not self.run_dir.is_dir():
            self.progress("lab is not up; nothing to do")
            return TeardownReport()
        with LabLock(self.run_dir) as lock, Interrupts() as guard, guard.critical():
            state = self.load_state()
            if state is None:
                self.progress("lab is not up; nothing to do")
                return TeardownReport()
            report = teardown(state, self.state_path, self.progress)
            if state.made_run_dir:
                lock.remove_run_dir()
            self.progress("lab is down" if report.clean else "lab is down, with items left alone")
            return report

    def __enter__(self) -> Lab:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.down()
        except LabError as error:
            if exc is None:
                raise
            self.progress(f"down after an error failed too: {error}")
