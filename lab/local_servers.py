"""A real sidecar and a real unbound on this machine's loopback, for tests and benchmarks.

Ports come from the range 15300-15399 and are probed by binding (UDP and TCP
on ::1) before use, so a busy port is skipped instead of assumed free.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "SIDECAR_READY",
    "Sidecar",
    "dig",
    "free_port",
    "running_sidecar",
    "running_unbound",
    "sidecar_command",
    "stop",
    "unbound_config",
    "unbound_server_lines",
]

PORT_RANGE = range(15300, 15400)
_claimed: set[int] = set()


def _port_free(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        for family, host in ((socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.1")):
            with socket.socket(family, kind) as sock:
                try:
                    sock.bind((host, port))
                except OSError:
                    return False
    return True


def free_port() -> int:
    """A port of 15300-15399 free for UDP and TCP on loopback, not handed out before."""
    start = (os.getpid() * 7) % len(PORT_RANGE)
    for _attempt in range(2):
        for i in range(len(PORT_RANGE)):
            port = PORT_RANGE[(start + i) % len(PORT_RANGE)]
            if port not in _claimed and _port_free(port):
                _claimed.add(port)
                return port
        # Every port was handed out once: those whose servers have stopped are
        # free again (the bind probe above tells).
        _claimed.clear()
    raise RuntimeError("no free port in 15300-15399")


#: What the sidecar logs once both its listeners are up.
SIDECAR_READY: Final = "v6alt sidecar ready"


def sidecar_command(
    config: Path | None = None,
    dns: str | None = None,
    lookup: str | None = None,
    workers: int | None = None,
) -> list[str]:
    """``v6alt sidecar`` in this interpreter, with the options given (``[host]:port``
    listeners). Every sidecar the lab, the tests and the benchmarks start runs this."""
    argv = [sys.executable, "-m", "v6alt", "sidecar"]
    options = {"--config": config, "--dns": dns, "--lookup": lookup, "--workers": workers}
    for option, value in options.items():
        if value is not None:
            argv += [option, str(value)]
    return argv


@dataclass
class Sidecar:
    process: subprocess.Popen[str]
    dns_port: int
    lookup_port: int
    log_path: Path
    config_path: Path

    def log(self) -> str:
        return self.log_path.read_text()

    @property
    def lookup_url(self) -> str:
        return f"http://[::1]:{self.lookup_port}"


def _wait_tcp(port: int, process: subprocess.Popen[str], log_path: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sidecar exited {process.returncode}: {log_path.read_text()}")
        try:
            with socket.create_connection(("::1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sidecar did not listen on {port}: {log_path.read_text()}")


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def running_sidecar(
    config_yaml: str = "", *, workers: int = 1, env: dict[str, str] | None = None
) -> Iterator[Sidecar]:
    """A sidecar process on ::1 with its own ports; config_yaml is the file's text."""
    with tempfile.TemporaryDirectory(prefix="v6alt-sidecar-") as tmp:
        config = Path(tmp, "sidecar.yaml")
        config.write_text(config_yaml or "{}\n")
        log_path = Path(tmp, "sidecar.log")
        dns_port, lookup_port = free_port(), free_port()
        command = sidecar_command(config, f"[::1]:{dns_port}", f"[::1]:{lookup_port}", workers)
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                env=None if env is None else {**os.environ, **env},
            )
        try:
            _wait_tcp(lookup_port, process, log_path)
            yield Sidecar(process, dns_port, lookup_port, log_path, config)
        finally:
            stop(process)


def dig(*args: str, server_port: int, server: str = "::1") -> str:
    """Run the real dig against a server; return its stdout."""
    command = ["dig", f"@{server}", "-p", str(server_port), "+time=2", "+tries=1", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    return result.stdout


def unbound_binary() -> str | None:
    return shutil.which("unbound") or (
        "/usr/sbin/unbound" if os.path.exists("/usr/sbin/unbound") else None
    )


def unbound_server_lines(
    directory: Path, port: int, *, logfile: str = "", verbosity: int = 0, threads: int = 1
) -> list[str]:
    """The ``server:`` clause every unbound of the lab starts from: on [::1]:``port``
    only, IPv6 only, in the foreground, files in ``directory``, no root setup, no DNSSEC
    trust anchor, plain iteration (callers add zones, forwarding and tuning)."""
    return [
        "server:",
        "    interface: ::1",
        f"    port: {port}",
        "    do-ip4: no",
        "    do-daemonize: no",
        '    chroot: ""',
        '    username: ""',
        f'    directory: "{directory}"',
        f'    pidfile: "{directory}/unbound.pid"',
        "    use-syslog: no",
        f'    logfile: "{logfile}"',
        f"    verbosity: {verbosity}",
        f"    num-threads: {threads}",
        "    access-control: ::1/128 allow",
        '    auto-trust-anchor-file: ""',
        '    module-config: "iterator"',
    ]


def unbound_config(
    directory: Path,
    port: int,
    *,
    forward_port: int | None = None,
    local_data: Sequence[str] = (),
    threads: int = 1,
) -> Path:
    """Write an unbound.conf for an instance on ::1 that needs no root setup."""
    lines = [
        *unbound_server_lines(directory, port, threads=threads),
        "    do-not-query-localhost: no",
        "    outgoing-range: 64",
        "    so-reuseport: yes",
    ]
    if local_data:
        lines.append('    local-zone: "v6.alt." static')
        lines += [f'    local-data: "{record}"' for record in local_data]
    if forward_port is not None:
        lines += [
            '    domain-insecure: "v6.alt."',
            '    local-zone: "v6.alt." nodefault',
            "forward-zone:",
            '    name: "v6.alt."',
            f"    forward-addr: ::1@{forward_port}",
        ]
    lines += ["remote-control:", "    control-enable: no"]
    path = directory / "unbound.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


@contextmanager
def running_unbound(
    config: Path, port: int, *, start_timeout: float = 15.0
) -> Iterator[subprocess.Popen[str]]:
    binary = unbound_binary()
    if binary is None:
        raise RuntimeError("unbound is not installed (apt-get install unbound)")
    checked = subprocess.run(
        ["unbound-checkconf", str(config)], capture_output=True, text=True, check=False
    )
    if checked.returncode != 0:
        raise RuntimeError(f"bad unbound config: {checked.stdout}{checked.stderr}")
    log_path = config.with_suffix(".log")
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [binary, "-d", "-c", str(config)], stdout=log, stderr=subprocess.STDOUT, text=True
        )
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"unbound exited: {log_path.read_text()}")
            try:
                with socket.create_connection(("::1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("unbound did not start") from None
                time.sleep(0.05)
        yield process
    finally:
        stop(process)
