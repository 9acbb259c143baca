"""Remove what a lab made, and only that: the inverse of bring-up, from the state file.

Each item is checked before it is touched: a process must still be the one
started (pid + start time + its config path in argv), a namespace must still
have the inode recorded when it was created. Anything that fails the check is
left alone and reported. Items already gone are fine (``down`` is idempotent).
An item of the lab's that cannot be removed does not stop the rest; the state
file then keeps what is left, and a :class:`LabError` says what.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from .errors import LabCommandError, LabError
from .netns import delete_link, delete_netns, link_exists, netns_inode
from .procs import process_start_time, stop_process
from .state import HostRecord, LabState, LinkRecord, ServiceRecord

__all__ = ["TeardownReport", "stop_services", "teardown"]

Progress = Callable[[str], None]


@dataclass
class TeardownReport:
    """What was removed and what was left alone (with the reason)."""

    stopped: list[str] = field(default_factory=list)
    deleted_links: list[str] = field(default_factory=list)
    deleted_netns: list[str] = field(default_factory=list)
    removed_files: list[str] = field(default_factory=list)
    left_alone: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # the lab's, but removing it failed

    @property
    def clean(self) -> bool:
        return not self.left_alone and not self.failed


def _owned_netns(record: HostRecord) -> bool:
    """True if the namespace is there and is the very one the lab created."""
    return record.netns_inode is not None and netns_inode(record.netns) == record.netns_inode


def _stop(record: HostRecord, report: TeardownReport, progress: Progress) -> None:
    if record.pid is None or record.pid_start is None or record.config is None:
        return
    if process_start_time(record.pid) != record.pid_start:
        return  # already exited
    if stop_process(record.pid, record.pid_start, record.config):
        report.stopped.append(f"{record.host}: yggdrasil pid {record.pid}")
        progress(f"{record.host}: stopped yggdrasil (pid {record.pid})")
    else:
        report.left_alone.append(
            f"pid {record.pid}: no longer the yggdrasil this lab started; not signalled"
        )


def _stop_service(
    service: ServiceRecord, run_dir: str, report: TeardownReport, progress: Progress
) -> bool:
    """Stop one service process and remove its tree; True once nothing of it is left."""
    label = f"{service.host}: {service.kind}"
    if service.pid is not None and service.pid_start is not None:
        if process_start_time(service.pid) == service.pid_start:
            if stop_process(service.pid, service.pid_start, service.marker):
                report.stopped.append(f"{label} pid {service.pid}")
                progress(f"{label}: stopped (pid {service.pid})")
            else:
                report.left_alone.append(
                    f"pid {service.pid}: no longer the {service.kind} this lab started; "
                    "not signalled"
                )
        service.pid = service.pid_start = None
    if service.tree is None:
        return True
    tree = Path(service.tree)
    # Only a real directory inside the lab's run directory is ever removed recursively.
    if tree.is_symlink() or Path(run_dir).absolute() not in tree.absolute().parents:
        report.left_alone.append(f"{tree}: not a directory inside {run_dir}; not removed")
    else:
        try:
            shutil.rmtree(tree)
            report.removed_files.append(f"{tree}/")
        except FileNotFoundError:
            pass
        except OSError as exc:
            report.failed.append(f"{tree}: {exc.strerror}")
            return False
    service.tree = None
    return True


def _stop_services(
    state: LabState,
    report: TeardownReport,
    progress: Progress,
    kinds: Collection[str] | None = None,
) -> None:
    """Servers first, in reverse order of start (Prosody before the sidecar it asks).

    ``kinds`` limits it to those services (``None``: all); the others stay recorded.
    """
    remaining = []
    for service in reversed(state.services):
        selected = kinds is None or service.kind in kinds
        if not selected or not _stop_service(service, state.run_dir, report, progress):
            remaining.append(service)
    state.services = remaining[::-1]


def stop_services(
    state: LabState, state_path: Path, progress: Progress, kinds: Collection[str] | None = None
) -> TeardownReport:
    """Stop the services (of ``kinds``, or all); the lab stays up, the state keeps the rest."""
    report = TeardownReport()
    _stop_services(state, report, progress, kinds)
    for item in report.left_alone:
        progress(f"left alone: {item}")
    state.save(state_path)
    if report.failed:
        raise LabError("could not remove: " + "; ".join(report.failed))
    return report


def _delete_link(
    link: LinkRecord, state: LabState, report: TeardownReport, progress: Progress
) -> bool:
    """Delete one veth pair; True once it is gone (deleted now, or already)."""
    name = f"{link.left}-{link.right}"
    ends = [
        (state.host(link.left), link.left_ifname),
        (state.host(link.right), link.right_ifname),
    ]
    # Deleting one end of a veth deletes the pair; use whichever end is in an owned netns.
    for record, ifname in ends:
        if not (_owned_netns(record) and link_exists(record.netns, ifname)):
            continue
        try:
            delete_link(record.netns, ifname)
        except LabCommandError as exc:
            # The kernel removes a veth whose peer's namespace went away on its
            # own, a moment later; only a pair that is still there is a failure.
            if any(_owned_netns(r) and link_exists(r.netns, i) for r, i in ends):
                report.failed.append(f"link {name}: {exc}")
                return False
            return True
        report.deleted_links.append(name)
        progress(f"link {name}: deleted")
        return True
    return True


def _delete_links(state: LabState, report: TeardownReport, progress: Progress) -> None:
    for link in state.links:
        if link.created and _delete_link(link, state, report, progress):
            link.created = False


def _delete_netns(record: HostRecord, report: TeardownReport, progress: Progress) -> None:
    if record.netns_inode is None:
        return
    current = netns_inode(record.netns)
    if current is None:
        record.netns_inode = None
        return
    if current != record.netns_inode:
        report.left_alone.append(
            f"namespace {record.netns}: replaced by one this lab did not create; not deleted"
        )
        return
    try:
        delete_netns(record.netns)
    except LabCommandError as exc:
        if netns_inode(record.netns) == record.netns_inode:
            report.failed.append(f"namespace {record.netns}: {exc}")
            return
    record.netns_inode = None
    report.deleted_netns.append(record.netns)
    progress(f"{record.host}: deleted namespace {record.netns}")


def _remove_files(record: HostRecord, report: TeardownReport) -> None:
    for attr in ("admin_socket", "config", "log"):
        path = getattr(record, attr)
        if path is None:
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            report.removed_files.append(path)
        setattr(record, attr, None)
    if record.dir is not None:
        _remove_dir(record.dir, report)
        record.dir = None


def _remove_dir(directory: str, report: TeardownReport) -> None:
    """Remove an (emptied) directory the lab made; one with foreign files stays."""
    try:
        Path(directory).rmdir()
        report.removed_files.append(directory + "/")
    except FileNotFoundError:
        pass
    except OSError as exc:
        report.left_alone.append(f"{directory}: {exc.strerror}; holds files the lab did not make")


def teardown(state: LabState, state_path: Path, progress: Progress) -> TeardownReport:
    """Undo ``state`` in reverse order of bring-up, then remove the state file.

    Items left alone are not the lab's any more (a recycled pid, a namespace
    someone re-created under the same name, files someone added to a host
    directory), so the state file goes anyway; ``report.left_alone`` says what
    was not touched and why.
    """
    report = TeardownReport()
    _stop_services(state, report, progress)
    for record in state.hosts:
        _stop(record, report, progress)
        record.pid = record.pid_start = None
    _delete_links(state, report, progress)
    for record in state.hosts:
        _delete_netns(record, report, progress)
        _remove_files(record, report)
    for directory in reversed(state.dirs):
        _remove_dir(directory, report)
    state.dirs.clear()
    for item in report.left_alone:
        progress(f"left alone: {item}")
    if report.failed:
        # Keep a state file listing exactly what is still there, so `down` can finish later.
        state.complete = False
        state.save(state_path)
        raise LabError(
            "could not remove: " + "; ".join(report.failed) + "; run `v6alt lab down` again"
        )
    with contextlib.suppress(FileNotFoundError):
        state_path.unlink()
    return report
