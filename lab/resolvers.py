"""Host-wide resolvers that send ``v6.alt`` to the sidecar, run inside a test host.

The three recipes of docs/clients.md, each run from the recipe's own text
plus what a throw-away instance needs (its files in a directory of its own,
no system service touched):

- **systemd-resolved**: the binary of Debian's ``systemd-resolved`` package,
  unpacked (``dpkg-deb -x``, never installed: installing it would take over
  the machine's /etc/resolv.conf), started without systemd in the host's
  network namespace and a private mount namespace, where a tmpfs over
  ``/etc/systemd`` holds the recipe's drop-in as
  ``/etc/systemd/resolved.conf.d/v6alt.conf``, a tmpfs over ``/run/systemd``
  its runtime files, and copies of ``/etc/passwd`` and ``/etc/group`` name
  the ``systemd-resolve`` user it drops privileges to. It answers on its
  stub, ``127.0.0.53:53``.
- **unbound**: Debian's unbound on ``[::1]:53`` with DNSSEC validation on
  (the root's trust anchor), so the recipe's ``domain-insecure`` is needed.
- **dnsmasq**: ``dnsmasq-base``'s binary on ``[::1]:53``.

:func:`host_resolver` starts one and points the host's resolv.conf at it
(``ip netns exec`` bind-mounts ``/etc/netns/<ns>/resolv.conf`` over
``/etc/resolv.conf``), so every program started in the host from then on
resolves through it, as on a machine whose resolver was set up by the recipe.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .errors import LabEnvironmentError, LabError
from .local_servers import stop, unbound_server_lines
from .netns import FlatHost, find_tool

__all__ = [
    "KINDS",
    "RESOLVED_ROOT",
    "HostResolver",
    "host_resolver",
    "unpack_resolved",
]

KINDS: Final = ("systemd-resolved", "unbound", "dnsmasq")
#: Where :func:`unpack_resolved` puts Debian's systemd-resolved package (not installed),
#: one directory per version of the installed systemd.
RESOLVED_ROOT: Final = Path("/opt/v6alt-test/systemd-resolved")
#: The root zone's KSK-2017 and KSK-2024 (DS records), as Debian's unbound ships them.
ROOT_TRUST_ANCHORS: Final = (
    ". DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D",
    ". DS 38696 8 2 683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16",
)
START_TIMEOUT: Final = 20.0


@dataclass
class HostResolver:
    """A running host-wide resolver: its kind, process, the address it answers on."""

    kind: str
    process: subprocess.Popen[str]
    nameserver: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _installed_systemd() -> str | None:
    """The version of the installed systemd package (whose private library the
    resolved binary links to), or None."""
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "systemd"], capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    if done.returncode != 0 or not done.stdout.strip():
        return None
    return done.stdout.strip()


def _download_resolved(work: Path, version: str | None) -> list[Path]:
    """``apt-get download`` systemd-resolved into ``work``: the installed systemd's
    version when the archive still has it, else apt's candidate."""
    log = ""
    for wanted in ([f"systemd-resolved={version}"] if version else []) + ["systemd-resolved"]:
        done = subprocess.run(
            ["apt-get", "download", "-q", wanted],
            cwd=work, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        debs = sorted(work.glob("systemd-resolved_*.deb"))
        if done.returncode == 0 and debs:
            return debs
        log += f"{wanted}: {done.stdout}{done.stderr}"
    raise LabEnvironmentError(f"could not download Debian's systemd-resolved package:\n{log}")


def unpack_resolved(root: Path | None = None) -> Path:
    """Debian's systemd-resolved package extracted at ``root`` (downloaded once with
    ``apt-get download``, never installed); returns ``root``. By default one
    directory per version of the installed systemd, under :data:`RESOLVED_ROOT`."""
    version = _installed_systemd()
    if root is None:
        root = RESOLVED_ROOT / (version or "candidate").replace(":", "_")
    if _resolved_binary(root) is not None:
        return root
    work = root.parent / f".{root.name}.download"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    work.chmod(0o777)  # apt-get download runs as the _apt user when it can
    debs = _download_resolved(work, version)
    staging = Path(f"{root}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(staging)], check=True, timeout=120)
    shutil.rmtree(root, ignore_errors=True)
    staging.rename(root)
    shutil.rmtree(work, ignore_errors=True)
    if _resolved_binary(root) is None:
        raise LabEnvironmentError(f"no systemd-resolved binary in {debs[0].name}")
    return root


def _resolved_binary(root: Path) -> Path | None:
    for relative in ("lib/systemd/systemd-resolved", "usr/lib/systemd/systemd-resolved"):
        if (root / relative).is_file():
            return root / relative
    return None


def _free_id(path: str, start: int = 900) -> int:
    """An id of ``path`` (passwd or group) no entry uses, from ``start`` up."""
    taken = set()
    for line in Path(path).read_text().splitlines():
        fields = line.split(":")
        if len(fields) > 2 and fields[2].isdigit():
            taken.add(int(fields[2]))
    return next(i for i in range(start, 60000) if i not in taken)


_RESOLVED_SCRIPT: Final = """\
set -e
mount -t tmpfs -o mode=0755 tmpfs /run/systemd
mount -t tmpfs -o mode=0755 tmpfs /etc/systemd
mkdir /etc/systemd/resolved.conf.d
cp "$1/v6alt.conf" /etc/systemd/resolved.conf.d/v6alt.conf
mount --bind "$1/passwd" /etc/passwd
mount --bind "$1/group" /etc/group
exec "$2"
"""


def _start_resolved(host: FlatHost, directory: Path, recipe: str, log: Path) -> HostResolver:
    binary = _resolved_binary(unpack_resolved())
    assert binary is not None
    if not Path("/etc/systemd").is_dir():
        raise LabEnvironmentError("/etc/systemd is missing (apt-get install systemd)")
    (directory / "v6alt.conf").write_text(recipe)
    uid, gid = _free_id("/etc/passwd"), _free_id("/etc/group")
    passwd = Path("/etc/passwd").read_text().rstrip("\n")
    group = Path("/etc/group").read_text().rstrip("\n")
    (directory / "passwd").write_text(
        f"{passwd}\nsystemd-resolve:x:{uid}:{gid}:systemd Resolver:/:/usr/sbin/nologin\n"
    )
    (directory / "group").write_text(f"{group}\nsystemd-resolve:x:{gid}:\n")
    unshare = find_tool("unshare", "util-linux", "apt-get install util-linux")
    argv = [unshare, "--mount", "--propagation", "private", "bash", "-c", _RESOLVED_SCRIPT,
            "resolved", str(directory), str(binary)]  # fmt: skip
    process = _popen(host, argv, log, env={"SYSTEMD_LOG_LEVEL": "debug"})
    return HostResolver("systemd-resolved", process, "127.0.0.53", log)


def _start_unbound(host: FlatHost, directory: Path, recipe: str, log: Path) -> HostResolver:
    unbound = find_tool("unbound", "unbound", "apt-get install unbound")
    lines = [
        *unbound_server_lines(directory, 53, logfile=str(log), verbosity=1),
        # Validating, as Debian's unbound is (this later module-config wins):
        # without the recipe's domain-insecure the .alt names would fail (the
        # root proves .alt does not exist).
        '    module-config: "validator iterator"',
        *(f'    trust-anchor: "{anchor}"' for anchor in ROOT_TRUST_ANCHORS),
        "remote-control:",
        "    control-enable: no",
        "# The recipe (docs/clients.md):",
        recipe,
    ]
    config = directory / "unbound.conf"
    config.write_text("\n".join(lines) + "\n")
    checked = subprocess.run(
        [find_tool("unbound-checkconf", "unbound", "apt-get install unbound"), str(config)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if checked.returncode != 0:
        raise LabError(f"unbound-checkconf {config}: {checked.stdout}{checked.stderr}")
    process = _popen(host, [unbound, "-d", "-c", str(config)], directory / "unbound.out")
    return HostResolver("unbound", process, "::1", log)


def _start_dnsmasq(host: FlatHost, directory: Path, recipe: str, log: Path) -> HostResolver:
    dnsmasq = find_tool("dnsmasq", "dnsmasq-base", "apt-get install dnsmasq-base")
    lines = [
        "port=53",
        "listen-address=::1",
        "bind-interfaces",
        # The host's usual upstream servers would be read from resolv.conf; the
        # test host has none (resolv.conf points at this dnsmasq itself).
        "no-resolv",
        "no-hosts",
        f"pid-file={directory}/dnsmasq.pid",
        "log-queries",
        f"log-facility={log}",
        "# The recipe (docs/clients.md):",
        recipe,
    ]
    config = directory / "dnsmasq.conf"
    config.write_text("\n".join(lines) + "\n")
    checked = subprocess.run(
        [dnsmasq, "--test", f"--conf-file={config}"], capture_output=True, text=True, check=False
    )
    if checked.returncode != 0:
        raise LabError(f"dnsmasq --test {config}: {checked.stdout}{checked.stderr}")
    process = _popen(host, [dnsmasq, "-k", f"--conf-file={config}"], directory / "dnsmasq.out")
    return HostResolver("dnsmasq", process, "::1", log)


def _popen(
    host: FlatHost, argv: list[str], output: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    with output.open("a") as out:
        return host.popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )


def _wait_answering(host: FlatHost, resolver: HostResolver) -> None:
    """Until the resolver answers a query for the v6.alt SOA on port 53 (any answer)."""
    dig = find_tool("dig", "bind9-dnsutils", "apt-get install bind9-dnsutils")
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if resolver.process.poll() is not None:
            raise LabError(f"{resolver.kind} exited at start-up:\n{resolver.log_text()[-3000:]}")
        answer = host.run(
            [dig, f"@{resolver.nameserver}", "+time=1", "+tries=1", "v6.alt", "SOA"], check=False
        )
        if "status:" in answer.stdout:
            return
        if time.monotonic() > deadline:
            raise LabError(f"{resolver.kind} did not answer:\n{resolver.log_text()[-3000:]}")
        time.sleep(0.2)


_STARTERS: Final = {
    "systemd-resolved": _start_resolved,
    "unbound": _start_unbound,
    "dnsmasq": _start_dnsmasq,
}


@contextmanager
def host_resolver(
    kind: str, host: FlatHost, directory: Path, recipe: str
) -> Iterator[HostResolver]:
    """``kind`` (one of :data:`KINDS`) running in ``host`` from ``recipe`` (the
    config text of docs/clients.md), files in ``directory``; the host's
    resolv.conf names it until the block ends."""
    if kind not in _STARTERS:
        raise LabError(f"unknown resolver {kind!r}: one of {', '.join(KINDS)}")
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / f"{kind}.log"
    resolver = _STARTERS[kind](host, directory, recipe, log)
    try:
        _wait_answering(host, resolver)
        host.set_resolv_conf(f"# {kind} (docs/clients.md)\nnameserver {resolver.nameserver}\n")
        yield resolver
    finally:
        stop(resolver.process)
