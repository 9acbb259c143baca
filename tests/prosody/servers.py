"""Sidecars and Prosody servers for the Prosody tests, on the lab's :class:`FlatNet`.

A :class:`Mesh` is a flat link of hosts (a bridge in a hub namespace); every
:class:`Node` is a host with one address in ``200::/7`` (the Yggdrasil range,
so the default policy dials it). Each node runs its own sidecar (lookup
service on the namespace's loopback) and Prosody server, as a real deployment
would.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv6Address
from pathlib import Path
from string import Template
from typing import Any

from v6alt.lab.certificates import LabCa, make_lab_ca, self_signed_certificate
from v6alt.lab.local_servers import SIDECAR_READY, sidecar_command
from v6alt.lab.netns import FlatHost, FlatNet
from v6alt.lab.xmpp.files import instance_plumbing
from v6alt.prosody_bridge.cli_prosody_module_path import install_module

DOCS = Path(__file__).resolve().parents[2] / "docs" / "prosody.md"
PREFIX = "v6p-"
LOOKUP_PORT = 15480
DNS_PORT = 15453
LOOKUP_URL = f"http://[::1]:{LOOKUP_PORT}"
STARTUP_SECONDS = 20.0
_counter = itertools.count(os.getpid() % 1000)


def documented_block(name: str, language: str = "lua") -> str:
    """The ```LANGUAGE block between ``<!-- NAME: begin/end -->`` in docs/prosody.md."""
    pattern = rf"<!-- {name}: begin -->\s*```{language}\n(.*?)```\s*<!-- {name}: end -->"
    match = re.search(pattern, DOCS.read_text(), re.S)
    assert match, f"no {name} block in {DOCS}"
    return match.group(1)


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1
) -> None:
    """Poll ``predicate`` until true; fail the test naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Node:
    """One server's host on the link, the address it serves on, and its directory."""

    host: FlatHost
    address: IPv6Address
    run_dir: Path

    @property
    def namespace(self) -> str:
        return self.host.netns

    def argv(self, args: Sequence[str]) -> list[str]:
        return self.host.argv(args)

    def run(self, args: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.host.run(args, check=check)

    def open_stream(self, address: IPv6Address, sender: str, receiver: str) -> str:
        """What a server at ``address`` answers to a stream header sent from this node."""
        script = Path(__file__).with_name("raw_stream.py")
        return self.run([sys.executable, str(script), str(address), sender, receiver]).stdout

    def popen(self, args: Sequence[str], **kwargs: Any) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(args), text=True, **kwargs)


class Mesh(FlatNet):
    """The lab's flat link, plus a directory per node that Prosody's user can reach."""

    def __init__(self) -> None:
        super().__init__(f"{PREFIX}{next(_counter):03d}-")
        self.root = Path(tempfile.mkdtemp(prefix=PREFIX))
        # Prosody runs as the prosody user and must reach its files.
        os.chmod(self.root, 0o755)

    def add_node(self, name: str, address: str) -> Node:
        host = self.add_host(name, address)
        run_dir = self.root / name
        run_dir.mkdir(mode=0o755)
        shutil.chown(run_dir, "prosody", "prosody")
        return Node(host, IPv6Address(address), run_dir)

    def set_link(self, host: FlatHost | Node, up: bool) -> None:
        """Plug a node into the bridge or pull it out (its own link loses its carrier)."""
        super().set_link(host.host if isinstance(host, Node) else host, up)

    def close(self) -> None:
        super().close()
        if os.environ.get("V6P_KEEP") is None:
            shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def mesh() -> Iterator[Mesh]:
    lab = Mesh()
    try:
        yield lab
    finally:
        lab.close()


class Sidecar:
    """``python -m v6alt sidecar`` inside a node, from a YAML config written here."""

    def __init__(self, node: Node, config_yaml: str = "") -> None:
        self.node = node
        self.config = node.run_dir / "sidecar.yaml"
        self.config.write_text(config_yaml)
        self.log = node.run_dir / "sidecar.log"
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("a") as log:
            self.process = self.node.popen(
                sidecar_command(self.config, f"[::1]:{DNS_PORT}", f"[::1]:{LOOKUP_PORT}"),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"sidecar exited: {self.log.read_text()[offset:]}")
            return SIDECAR_READY in self.log.read_text()[offset:]

        wait_until(ready, STARTUP_SECONDS, f"the sidecar in {self.node.namespace}")

    def freeze(self, frozen: bool = True) -> None:
        """SIGSTOP (or SIGCONT): connections are still accepted but never answered."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP if frozen else signal.SIGCONT)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


def make_ca(directory: Path) -> LabCa:
    """A private CA, for a server that other servers trust the ordinary way."""
    return make_lab_ca(directory, "v6p test CA")


def make_certificate(
    directory: Path, domain: str, issuer: LabCa | None = None
) -> tuple[Path, Path]:
    """A certificate for ``domain`` and its subdomains (self-signed unless ``issuer``)."""
    cert, key = directory / f"{domain}.crt", directory / f"{domain}.key"
    issue = issuer.issue if issuer is not None else self_signed_certificate
    issue(domain, key, cert, subdomains=True)
    shutil.chown(key, "prosody", "prosody")
    os.chmod(key, 0o600)
    return cert, key


@dataclass(frozen=True)
class ProsodyRelease:
    """Which Prosody runs a server, and the documented lines only that release needs."""

    prosody: str = "prosody"
    prosodyctl: str = "prosodyctl"
    extra_template: str = ""

    @classmethod
    def unpacked(cls, root: Path, into: Path, extra_template: str) -> ProsodyRelease:
        """Launchers for a Debian package unpacked at ``root`` (``dpkg -x``)."""
        launchers = []
        for name in ("prosody", "prosodyctl"):
            text = (root / "usr" / "bin" / name).read_text()
            text = text.replace("'/usr/lib/prosody", f"'{root}/usr/lib/prosody")
            launcher = into / f"{name}-unpacked"
            launcher.write_text(text)
            launcher.chmod(0o755)
            launchers.append(str(launcher))
        return cls(launchers[0], launchers[1], extra_template)


INSTALLED = ProsodyRelease()


class ProsodyServer:
    """A Prosody process inside a node, configured from the documented snippets."""

    def __init__(
        self,
        node: Node,
        domain: str,
        template: str,
        issuer: LabCa | None = None,
        trusted: LabCa | None = None,
        release: ProsodyRelease = INSTALLED,
        settings: str = "",
        host_settings: str = "",
    ) -> None:
        self.node, self.domain, self.release = node, domain, release
        run_dir = node.run_dir
        (run_dir / "data").mkdir(exist_ok=True)
        shutil.chown(run_dir / "data", "prosody", "prosody")
        cert, key = make_certificate(run_dir, domain, issuer)
        # ``settings``: extra global options, before the first VirtualHost.
        body = Template(release.extra_template + settings + template).substitute(
            # A copy in the node's own directory: the installed package may sit
            # where Prosody's user cannot read (tox's work dir is 0700).
            plugin_path=install_module(run_dir / "plugins"),
            domain=domain,
            certificate=cert,
            key=key,
            lookup_url=LOOKUP_URL,
            dns_forward=f"::1@{DNS_PORT}",
        )
        if trusted is not None:
            # Test-only: this host also trusts a private CA (the default is the system store).
            body += (
                f'\nVirtualHost "{domain}"\n\tssl = {{ certificate = "{cert}"; key = "{key}"; '
                f'cafile = "{trusted.certificate}" }}\n'
            )
        if host_settings:
            body += f'\nVirtualHost "{domain}"\n{host_settings}\n'
        self.config = run_dir / "prosody.cfg.lua"
        # debug: a failing test's log then shows all the server did.
        self.config.write_text(instance_plumbing(run_dir, log_level="debug") + body)
        self.log_path = run_dir / "prosody.log"
        self.process: subprocess.Popen[str] | None = None

    def _as_prosody(self, *command: str) -> list[str]:
        return ["runuser", "-u", "prosody", "--", *command, "--config", str(self.config)]

    def register(self, user: str, password: str) -> str:
        self.node.run([*self._as_prosody(self.release.prosodyctl), "register", user, self.domain,
                       password])  # fmt: skip
        return f"{user}@{self.domain}"

    def start(self) -> None:
        with (self.node.run_dir / "prosody.out").open("a") as output:
            self.process = self.node.popen(
                [*self._as_prosody(self.release.prosody), "-F"],
                stdout=output,
                stderr=subprocess.STDOUT,
            )

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                output = (self.node.run_dir / "prosody.out").read_text(errors="replace")
                raise AssertionError(
                    f"prosody exited:\n{output[-2000:]}\nlog:\n{self.log_text()[-3000:]}"
                )
            return "Activated service 's2s'" in self.log_text()

        wait_until(ready, STARTUP_SECONDS, f"prosody for {self.domain}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def restart(self) -> None:
        """Start the stopped server again, same config and data; wait until it serves s2s."""
        offset = len(self.log_text())
        with (self.node.run_dir / "prosody.out").open("a") as output:
            self.process = self.node.popen(
                [*self._as_prosody(self.release.prosody), "-F"],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        wait_until(
            lambda: "Activated service 's2s'" in self.log_text()[offset:],
            STARTUP_SECONDS,
            f"prosody for {self.domain} to start again",
        )

    def terminate(self) -> None:
        """Ask the server to stop (SIGTERM) without waiting."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
