"""Wiring of the sidecar: config, listeners, logging, signals.

``run()`` starts it in steps: load the config, bind the UDP sockets, fork
the workers (:mod:`.udp_workers`), start the listeners, link the workers'
counts, tell systemd it is ready, install the SIGHUP reload and freeze what
was built out of the garbage collector; then it blocks in the Twisted
reactor until SIGTERM/SIGINT. SIGHUP reloads the config file: the policy and
the forwarders change in place, the listen addresses only on a restart.

With ``workers > 1`` the UDP DNS socket is opened with SO_REUSEPORT in that
many processes (the kernel spreads queries over them); the first process also
serves DNS over TCP and the lookup service. Workers exit with their parent.
Each worker sends its counts to the first process once a second over a socket
pair made before it is forked (:mod:`.worker_metrics`), so ``/metrics``
covers every process.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass, replace
from ipaddress import ip_address
from typing import Any

from twisted.internet.error import CannotListenError
from twisted.logger import STDLibLogObserver, globalLogBeginner

from v6alt.config import Config, ConfigError, load_config
from v6alt.config_warnings import config_warnings
from v6alt.dns_wire import Responder
from v6alt.policy import Policy

from .dns_forwarder import UdpForwarder
from .dns_query_log import DnsQueryLog
from .dns_tcp import DnsTcpFactory
from .dns_udp import DnsUdpPort, DnsUdpProtocol
from .lookup_service import LookupResource, LookupSite, lookup_site
from .metrics import SidecarMetrics
from .pin_service import PinService, pin_file
from .udp_workers import (
    ProcessRole,
    WorkerStartFailed,
    fork_workers,
    reap_workers,
    signal_workers,
)
from .worker_metrics import SnapshotReader, SnapshotSender

__all__ = ["SidecarOptions", "run"]

log = logging.getLogger("v6alt.sidecar")


def _the_reactor() -> Any:
    # Imported (and so installed) only after the workers are forked: a forked
    # epoll reactor would share its kernel state with the parent.
    from twisted.internet import reactor

    return reactor


EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class SidecarOptions:
    config_path: str | None
    dns: tuple[str, int] | None = None  # overrides sidecar.dns_listen
    lookup: tuple[str, int] | None = None  # overrides sidecar.lookup_listen
    workers: int = 1


def _endpoint_text(endpoint: tuple[str, int]) -> str:
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_loopback(host: str) -> bool:
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _udp_socket(endpoint: tuple[str, int], reuse_port: bool) -> socket.socket:
    host, port = endpoint
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        sock.setsockopt(socket.SOL_SOCKET, option, 4 << 20)  # absorb bursts
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


class Sidecar:
    """The running listeners of one process, and the state a reload swaps."""

    def __init__(self, options: SidecarOptions, config: Config) -> None:
        self.options = options
        self.config = config
        self.refusals = DnsQueryLog(limit=config.sidecar.limits.log_lines_per_minute)
        self.metrics = SidecarMetrics()
        self.forwarder: UdpForwarder | None = None
        self.udp: DnsUdpProtocol | None = None
        self.tcp: DnsTcpFactory | None = None
        self.lookup: LookupResource | None = None
        self.site: LookupSite | None = None
        self._ports: list[Any] = []

    @property
    def dns_endpoint(self) -> tuple[str, int]:
        return self.config.sidecar.dns_listen

    @property
    def lookup_endpoint(self) -> tuple[str, int]:
        return self.config.sidecar.lookup_listen

    def _make_forwarder(self, config: Config) -> UdpForwarder | None:
        upstreams = config.sidecar.forwarders
        if not upstreams:
            return None
        return UdpForwarder(
            upstreams, _the_reactor(), note=self.refusals.note, metrics=self.metrics
        )

    def start(self, udp_socket: socket.socket, *, primary: bool) -> None:
        reactor = _the_reactor()
        policy = Policy(self.config)
        self.forwarder = self._make_forwarder(self.config)
        responder = Responder(policy, forwarding=self.forwarder is not None)
        self.udp = DnsUdpProtocol(responder, self.refusals, self.forwarder, metrics=self.metrics)
        cache = self.udp.cache
        self.metrics.cache_size = lambda: len(cache.data)
        self.metrics.cache_capacity = lambda: cache.entries
        self._ports.append(DnsUdpPort.adopt(reactor, udp_socket, self.udp))
        udp_socket.close()  # the reactor holds its own duplicate
        if not primary:
            return
        host, port = self.dns_endpoint
        limits = self.config.sidecar.limits
        self.tcp = DnsTcpFactory(responder, self.refusals, self.forwarder, self.metrics, limits)
        tcp = self.tcp
        self.metrics.tcp_open = lambda: tcp.connections
        self._ports.append(reactor.listenTCP(port, self.tcp, interface=host))
        site = lookup_site(policy, self.metrics, limits)
        self.site = site
        self.lookup = site.resource
        pins = PinService(pin_file(self.config))
        pins.prepare()
        self.lookup.pins = pins
        for warning in config_warnings(self.config):
            log.warning("config: %s (docs/security.md)", warning)
        lhost, lport = self.lookup_endpoint
        self._ports.append(reactor.listenTCP(lport, site, interface=lhost))

    def reload(self) -> None:
        path = self.options.config_path
        if path is None:
            log.info("SIGHUP: no config file given, nothing to reload")
            return
        try:
            config = load(self.options)  # the command-line overrides still apply
        except ConfigError as exc:
            log.error("reload of %s failed, keeping the running config: %s", path, exc)
            return
        if config.sidecar.dns_listen != self.config.sidecar.dns_listen or (
            config.sidecar.lookup_listen != self.config.sidecar.lookup_listen
        ):
            log.warning("listen addresses changed in %s: they apply on restart only", path)
        policy = Policy(config)
        if self.forwarder is not None:
            self.forwarder.stop()
        self.forwarder = self._make_forwarder(config)
        responder = Responder(policy, forwarding=self.forwarder is not None)
        if self.udp is not None:
            self.udp.responder = responder
            self.udp.forwarder = self.forwarder
            self.udp.cache.clear()
        limits = config.sidecar.limits
        self.refusals.limit = limits.log_lines_per_minute
        if self.tcp is not None:
            self.tcp.responder = responder
            self.tcp.forwarder = self.forwarder
            self.tcp.apply(limits)
        if self.lookup is not None:
            self.lookup.policy = policy
        if self.site is not None:
            self.site.apply(limits)
        self.config = config
        log.info("reloaded %s", path)


def _setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
    )
    # Twisted's own messages (listener start/stop, unhandled errors) go to the same place.
    observer: Any = STDLibLogObserver(name="twisted")
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def _notify_systemd(message: str) -> None:
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(message.encode(), path)
        except OSError as exc:
            log.warning("sd_notify to %s failed: %s", path, exc)


def load(options: SidecarOptions) -> Config:
    """The config in effect: the file (if any) with the command-line overrides."""
    config = load_config(options.config_path) if options.config_path else Config()
    sidecar = config.sidecar
    if options.dns is not None:
        sidecar = replace(sidecar, dns_listen=options.dns)
    if options.lookup is not None:
        sidecar = replace(sidecar, lookup_listen=options.lookup)
    return replace(config, sidecar=sidecar)


def run(options: SidecarOptions) -> int:
    """Start the sidecar and run until stopped; the exit code."""
    _setup_logging()
    try:
        config = load(options)
    except ConfigError as exc:
        print(f"v6alt: sidecar: config: {exc}", file=sys.stderr)  # one line, no traceback
        return EXIT_USAGE
    sidecar = Sidecar(options, config)
    _warn_unless_loopback(sidecar.lookup_endpoint)
    workers = max(1, options.workers)
    dns = sidecar.dns_endpoint
    try:
        udp_sockets = _bind_udp(dns, workers)
    except OSError as exc:
        print(f"v6alt: sidecar: cannot listen on {_endpoint_text(dns)}/udp: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        role = fork_workers(udp_sockets[0], udp_sockets[1:])
    except WorkerStartFailed as exc:
        print(f"v6alt: sidecar: {exc}", file=sys.stderr)
        signal_workers(exc.started, signal.SIGTERM)
        return EXIT_FAILED
    try:
        sidecar.start(role.udp_socket, primary=role.primary)
    except CannotListenError as exc:
        print(f"v6alt: sidecar: cannot listen: {exc}", file=sys.stderr)
        signal_workers(role.workers, signal.SIGTERM)
        return EXIT_FAILED
    _link_worker_metrics(sidecar, role)
    if role.primary:
        _announce_ready(sidecar, workers)
        _stop_workers_on_shutdown(role.workers)
    _reload_on_sighup(sidecar, role.workers)
    _freeze_startup_objects()
    _the_reactor().run()
    if role.primary:
        reap_workers(role.workers)
    return EXIT_OK


def _warn_unless_loopback(lookup: tuple[str, int]) -> None:
    if not _is_loopback(lookup[0]):
        log.warning(
            "lookup service on %s is not loopback: anyone there can query it",
            _endpoint_text(lookup),
        )


def _bind_udp(dns: tuple[str, int], workers: int) -> list[socket.socket]:
    """The DNS socket of each process: the primary's first, then one per extra worker."""
    udp_socket = _udp_socket(dns, reuse_port=workers > 1)
    return [udp_socket, *(_udp_socket(dns, reuse_port=True) for _ in range(workers - 1))]


def _link_worker_metrics(sidecar: Sidecar, role: ProcessRole) -> None:
    """A worker sends its counts to the primary; the primary reads every worker's."""
    if role.to_primary is not None:
        SnapshotSender(role.to_primary, sidecar.metrics, _the_reactor()).start()
    for worker, link in role.links.items():
        SnapshotReader(link, worker, sidecar.metrics, _the_reactor()).start()


def _announce_ready(sidecar: Sidecar, workers: int) -> None:
    """Log what listens where, and tell systemd (Type=notify) the sidecar is up."""
    forwarders = ", ".join(_endpoint_text(f) for f in sidecar.config.sidecar.forwarders) or "none"
    log.info(
        "v6alt sidecar ready: dns %s udp+tcp (%d udp worker%s), lookup http://%s, forwarders: %s",
        _endpoint_text(sidecar.dns_endpoint),
        workers,
        "s" if workers > 1 else "",
        _endpoint_text(sidecar.lookup_endpoint),
        forwarders,
    )
    _notify_systemd("READY=1")


def _stop_workers_on_shutdown(workers: list[int]) -> None:
    _the_reactor().addSystemEventTrigger(
        "before", "shutdown", signal_workers, workers, signal.SIGTERM
    )


def _reload_on_sighup(sidecar: Sidecar, workers: list[int]) -> None:
    """SIGHUP reloads the config here and in every worker (each answers from its
    own copy of the policy)."""
    reactor = _the_reactor()

    def _on_hup(_signum: int, _frame: object) -> None:
        signal_workers(workers, signal.SIGHUP)
        reactor.callFromThread(sidecar.reload)

    signal.signal(signal.SIGHUP, _on_hup)


def _freeze_startup_objects() -> None:
    # Everything built so far lives as long as the process: keep it out of
    # the collector's full passes, which otherwise stall answers for ms.
    gc.collect()
    gc.freeze()
