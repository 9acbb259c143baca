"""Servers on lab hosts: per host a ``v6alt sidecar`` and a Prosody 13 with mod_v6alt.

Each host serves the XMPP domain ``<label>.v6.alt`` (its own v6.alt name) and
a MUC component on ``groups.<label>.v6.alt``. Everything is recorded in the
lab's state file the moment it is made (a :class:`ServiceRecord` per
process, the site's directory as the sidecar record's ``tree``), so
``v6alt lab down`` stops the servers and removes their files like the rest::

    lab = Lab(); lab.up(nodes=2)
    a, b = start_xmpp(lab)                 # list[XmppSite], one per host
    alice = a.register("alice", "pw")      # "alice@<label-a>.v6.alt"
    lab.down()                             # stops Prosody and the sidecars too

Prosody will not run as root: it runs as the ``prosody`` user (``setpriv``
execs it, so the recorded pid is Prosody's own). For that user to reach its
files, the run directory and the host directories get mode 0711 (enter, not
list).
"""

from __future__ import annotations

import os
import pwd
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Final

from ..errors import LabEnvironmentError, LabError, LabNotUpError, LabTimeoutError
from ..host import LabHost
from ..lab import Lab
from ..local_servers import SIDECAR_READY, sidecar_command
from ..netns import find_tool, netns_exec_argv
from ..procs import process_start_time
from ..service_control import (
    ServiceSpawner,
    output_tail,
    service_spawner,
    stop_service_kinds,
)
from ..state import LabState, ServiceRecord
from ..teardown import TeardownReport, stop_services
from .files import DNS_LISTEN, LOOKUP_LISTEN, PROSODY_USER, SiteFiles, write_site_files

__all__ = [
    "SERVICES",
    "XMPP_KINDS",
    "XmppSite",
    "check_xmpp_tools",
    "start_xmpp",
    "stop_xmpp",
    "xmpp_sites",
]

SERVICES: Final = ("xmpp",)
XMPP_KINDS: Final = ("sidecar", "prosody")  # the ServiceRecord kinds start_xmpp makes
STARTUP_TIMEOUT: Final = 30.0
_READY_PROSODY: Final = "Activated service 's2s'"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class XmppSite:
    """The XMPP server of one lab host: domain, MUC domain and its files."""

    host: LabHost
    files: SiteFiles

    @property
    def domain(self) -> str:
        return self.files.domain

    @property
    def muc_domain(self) -> str:
        return f"groups.{self.domain}"

    def _as_prosody(self, command: Sequence[str]) -> list[str]:
        return netns_exec_argv(self.host.netns, [*_setpriv(), *command])

    def register(self, user: str, password: str) -> str:
        """Create an account with ``prosodyctl register``; returns the JID."""
        argv = self._as_prosody(
            ["prosodyctl", "--config", str(self.files.prosody_config), "register", user,
             self.domain, password]
        )  # fmt: skip
        proc = subprocess.run(
            argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60
        )
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise LabError(
                f"{self.host.host}: prosodyctl register {user}@{self.domain} failed: "
                + (detail[-1] if detail else f"exit {proc.returncode}")
            )
        return f"{user}@{self.domain}"

    def prosody_log(self) -> str:
        path = self.files.prosody_log
        return path.read_text(errors="replace") if path.exists() else ""


def _setpriv() -> list[str]:
    return ["setpriv", f"--reuid={PROSODY_USER}", f"--regid={PROSODY_USER}", "--init-groups"]


def check_xmpp_tools() -> None:
    """Prosody 13, openssl, setpriv, the prosody user and Twisted (for the sidecar)."""
    find_tool("prosody", "prosody", "apt-get install -t bookworm-backports prosody")
    find_tool("prosodyctl", "prosody", "apt-get install -t bookworm-backports prosody")
    find_tool("openssl", "openssl", "apt-get install openssl")
    find_tool("setpriv", "util-linux", "apt-get install util-linux")
    try:
        pwd.getpwnam(PROSODY_USER)
    except KeyError:
        raise LabEnvironmentError(
            f"there is no {PROSODY_USER!r} user; install the prosody package"
        ) from None
    if find_spec("twisted") is None:
        raise LabEnvironmentError(
            "the sidecar needs Twisted; install it with: pip install 'v6alt[sidecar]'"
        )


def _domain(host: LabHost) -> str:
    return host.name


def xmpp_sites(lab: Lab) -> list[XmppSite]:
    """The XMPP sites of a lab whose services are up (e.g. started by ``lab up --with xmpp``)."""
    state = lab.up_state()
    trees = {s.host: s.tree for s in state.services if s.kind == "sidecar" and s.tree}
    sites = []
    for host in lab.hosts():
        tree = trees.get(host.host)
        if tree is None:
            raise LabNotUpError(f"{host.host}: no XMPP server runs (start it with --with xmpp)")
        sites.append(XmppSite(host, SiteFiles(Path(tree), _domain(host))))
    return sites


def _running(state: LabState) -> bool:
    """Every host has its sidecar and Prosody, and all of them still run."""
    ours = [s for s in state.services if s.kind in XMPP_KINDS]
    wanted = {(h.host, k) for h in state.hosts for k in XMPP_KINDS}
    return {(s.host, s.kind) for s in ours} == wanted and all(s.running() for s in ours)


def start_xmpp(lab: Lab, timeout: float = STARTUP_TIMEOUT) -> list[XmppSite]:
    """Start a sidecar and a Prosody on every host of the lab that is up; wait until ready.

    Idempotent: when they all run already, nothing changes. When some are
    missing or dead, all of them are stopped and started again. On failure
    the ones started so far are stopped. The lab and other services (a
    homeserver) are left as they are.
    """
    lab.require_root()
    check_xmpp_tools()
    hosts = lab.hosts()
    with service_spawner(lab) as spawner:
        state, guard = spawner.state, spawner.guard
        if _running(state):
            lab.progress("XMPP servers already running; nothing to do")
            return xmpp_sites(lab)
        if any(s.kind in XMPP_KINDS for s in state.services):
            with guard.critical():
                stop_services(state, lab.state_path, lab.progress, XMPP_KINDS)
        _open_run_dirs(state)
        starter = _Starter(spawner)
        try:
            for host in hosts:
                starter.start_site(host, time.monotonic() + timeout)
        except BaseException as exc:
            lab.progress(f"XMPP start failed: {str(exc).splitlines()[0] if str(exc) else exc!r}")
            with guard.critical():
                stop_services(state, lab.state_path, lab.progress, XMPP_KINDS)
            raise
    return xmpp_sites(lab)


def stop_xmpp(lab: Lab) -> TeardownReport:
    """Stop the sidecars and Prosody servers and remove their files; the lab stays up."""
    return stop_service_kinds(lab, XMPP_KINDS)


def _open_run_dirs(state: LabState) -> None:
    """Let the prosody user enter (not list) the directories above its site trees."""
    run_dir = Path(state.run_dir)
    for directory in (run_dir, run_dir / "hosts", *(Path(h.dir) for h in state.hosts if h.dir)):
        os.chmod(directory, 0o711)


class _Starter:
    def __init__(self, spawner: ServiceSpawner) -> None:
        self.spawner, self.lab = spawner, spawner.lab

    def start_site(self, host: LabHost, deadline: float) -> None:
        files = SiteFiles(self.spawner.host_dir(host.host) / "xmpp", _domain(host))
        sidecar = self.spawner.record(
            host.host, "sidecar", str(files.sidecar_config), files.tree, tree_mode=0o755
        )
        write_site_files(files)
        self.spawner.spawn(
            sidecar,
            host,
            sidecar_command(files.sidecar_config, DNS_LISTEN, LOOKUP_LISTEN),
            files.sidecar_log,
        )
        self._wait(sidecar, files.sidecar_log, SIDECAR_READY, deadline)
        self.lab.progress(
            f"{host.host}: sidecar ready (pid {sidecar.pid}): DNS {DNS_LISTEN}, "
            f"lookup {LOOKUP_LISTEN}"
        )
        prosody = self.spawner.record(host.host, "prosody", str(files.prosody_config))
        self.spawner.spawn(
            prosody,
            host,
            [*_setpriv(), "prosody", "--config", str(files.prosody_config), "-F"],
            files.prosody_output,
        )
        self._wait(prosody, files.prosody_log, _READY_PROSODY, deadline, files.prosody_output)
        self.lab.progress(
            f"{host.host}: prosody ready (pid {prosody.pid}): XMPP domain {files.domain}, "
            f"MUC groups.{files.domain}"
        )

    def _wait(
        self,
        service: ServiceRecord,
        log: Path,
        ready: str,
        deadline: float,
        output: Path | None = None,
    ) -> None:
        def tail() -> str:
            return output_tail([output, log], lines=8)

        while True:
            if service.pid is None or process_start_time(service.pid) != service.pid_start:
                raise LabError(f"{service.host}: {service.kind} exited{tail()}")
            if log.exists() and ready in log.read_text(errors="replace"):
                return
            if time.monotonic() > deadline:
                raise LabTimeoutError(
                    f"timed out waiting for {service.kind} on {service.host}{tail()}"
                )
            time.sleep(0.1)
