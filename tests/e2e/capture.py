"""Packet captures in lab namespaces and the leak rules applied to them.

A capture runs ``tcpdump -i any`` (or ``dumpcap -i any -P``) inside one
namespace and writes a pcap file into the test's run directory.
:func:`read_pcap` parses the file with the standard library only (Linux
"cooked" link types), and :func:`find_leaks` lists every packet that breaks
the rules:

- DNS: a UDP or TCP packet on port 53 or 5353 is allowed only between
  ``::1`` and ``::1`` with one side on the sidecar's port 5353;
- addresses: every packet's source and destination must be loopback, a lab
  host's Yggdrasil address, a lab underlay address, link-local (``fe80::/10``)
  or link-scope multicast (``ff02::/16``, neighbour discovery and MLD; the
  unspecified source ``::`` only towards ``ff02::/16``, as DAD and MLD send
  while a link comes back up).
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, IPv6Network, ip_address, ip_network
from pathlib import Path

from v6alt.lab import LabHost

SNAPLEN = 200
DNS_PORTS = frozenset({53, 5353})
SIDECAR_DNS_PORT = 5353
LINK_SCOPE = (ip_network("fe80::/10"), ip_network("ff02::/16"))
LOOPBACK = (ip_network("::1/128"), ip_network("127.0.0.0/8"))
UNSPECIFIED = IPv6Address("::")
_EXTENSION_HEADERS = frozenset({0, 43, 60})  # hop-by-hop, routing, destination options
_FRAGMENT = 44


@dataclass(frozen=True)
class Packet:
    """What the leak rules look at: addresses, transport protocol and ports."""

    src: IPv4Address | IPv6Address
    dst: IPv4Address | IPv6Address
    protocol: int
    sport: int | None = None
    dport: int | None = None

    def __str__(self) -> str:
        ports = f" ports {self.sport}->{self.dport}" if self.sport is not None else ""
        return f"{self.src} -> {self.dst} proto {self.protocol}{ports}"


def _transport(protocol: int, payload: bytes) -> tuple[int | None, int | None]:
    if protocol in (6, 17) and len(payload) >= 4:
        sport, dport = struct.unpack("!HH", payload[:4])
        return sport, dport
    return None, None


def parse_ip(frame: bytes) -> Packet | None:
    """An IPv4 or IPv6 packet (starting at its IP header); None for anything else."""
    if not frame:
        return None
    version = frame[0] >> 4
    if version == 4 and len(frame) >= 20:
        header_len = (frame[0] & 0x0F) * 4
        protocol = frame[9]
        sport, dport = _transport(protocol, frame[header_len:])
        return Packet(IPv4Address(frame[12:16]), IPv4Address(frame[16:20]), protocol, sport, dport)
    if version == 6 and len(frame) >= 40:
        protocol, offset = frame[6], 40
        while protocol in _EXTENSION_HEADERS and len(frame) >= offset + 2:
            protocol, offset = frame[offset], offset + (frame[offset + 1] + 1) * 8
        if protocol == _FRAGMENT and len(frame) >= offset + 8:
            protocol, offset = frame[offset], offset + 8
        sport, dport = _transport(protocol, frame[offset:])
        return Packet(IPv6Address(frame[8:24]), IPv6Address(frame[24:40]), protocol, sport, dport)
    return None


# Linux cooked captures (what `tcpdump -i any` writes): header length, protocol offset.
_COOKED = {113: (16, 14), 276: (20, 0)}  # LINUX_SLL, LINUX_SLL2
_ETHERTYPES_IP = frozenset({0x0800, 0x86DD})


def read_pcap(path: Path) -> Iterator[Packet]:
    """The IP packets of a pcap file written by ``tcpdump -i any``."""
    data = path.read_bytes()
    if len(data) < 24:
        return
    magic = data[:4]
    order = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<"}.get(magic, ">")
    (linktype,) = struct.unpack(order + "I", data[20:24])
    if linktype not in _COOKED:
        raise ValueError(f"{path}: link type {linktype} is not a Linux cooked capture")
    header_len, proto_at = _COOKED[linktype]
    offset = 24
    while offset + 16 <= len(data):
        _, _, captured, _ = struct.unpack(order + "IIII", data[offset : offset + 16])
        frame = data[offset + 16 : offset + 16 + captured]
        offset += 16 + captured
        if len(frame) < header_len:
            continue
        (ethertype,) = struct.unpack("!H", frame[proto_at : proto_at + 2])
        if ethertype in _ETHERTYPES_IP:
            packet = parse_ip(frame[header_len:])
            if packet is not None:
                yield packet


def _inside(address: IPv4Address | IPv6Address, networks: Iterable[IPv6Network]) -> bool:
    return any(address in network for network in networks if network.version == address.version)


def find_leaks(packets: Iterable[Packet], allowed: Iterable[IPv6Address]) -> list[str]:
    """Every packet that breaks the DNS or the address rule, with the reason."""
    allowed_set = set(allowed)
    scopes = [n for n in (*LOOPBACK, *LINK_SCOPE) if isinstance(n, IPv6Network)]
    leaks = []
    for packet in packets:
        ports = {packet.sport, packet.dport}
        if packet.protocol in (6, 17) and ports & DNS_PORTS:
            local = packet.src == packet.dst == ip_address("::1")
            if not (local and SIDECAR_DNS_PORT in ports):
                leaks.append(f"DNS outside the local sidecar: {packet}")
                continue
        if packet.src == UNSPECIFIED and _inside(packet.dst, LINK_SCOPE[1:]):
            continue  # DAD and MLD while a link comes up, before it has an address
        for address in (packet.src, packet.dst):
            if address.version == 4:
                if not address.is_loopback:
                    leaks.append(f"IPv4 off loopback: {packet}")
                    break
            elif address not in allowed_set and not _inside(address, scopes):
                leaks.append(f"address {address} is neither a mesh peer nor underlay: {packet}")
                break
    return leaks


def capture_tool() -> str | None:
    """``tcpdump`` (Debian package tcpdump) or else ``dumpcap`` (package tshark).

    ``V6E_CAPTURE=dumpcap`` picks dumpcap even when tcpdump is there.
    """
    wanted = os.environ.get("V6E_CAPTURE")
    for tool in (wanted,) if wanted else ("tcpdump", "dumpcap"):
        if shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
            return tool
    return None


def _capture_argv(tool: str, path: Path) -> tuple[list[str], str]:
    """The command writing a classic pcap of every interface, and its "ready" line."""
    if tool == "tcpdump":
        argv = ["tcpdump", "-i", "any", "-n", "-U", "--immediate-mode", "-Z", "root", "-s",
                str(SNAPLEN), "-w"]  # fmt: skip
        return [*argv, str(path)], "listening on"
    return ["dumpcap", "-i", "any", "-P", "-q", "-s", str(SNAPLEN), "-w", str(path)], "Capturing on"


class Capture:
    """A capture of every interface inside one lab host, written to ``<directory>/<host>.pcap``."""

    def __init__(self, host: LabHost, directory: Path) -> None:
        self.host = host
        self.path = directory / f"{host.host}.pcap"
        self.log = directory / f"{host.host}.capture.log"
        tool = capture_tool()
        assert tool is not None, "neither tcpdump nor dumpcap is installed"
        argv, ready = _capture_argv(tool, self.path)
        with self.log.open("w") as log:
            self.process = host.popen(argv, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 20
        while ready not in self.log.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError(
                    f"{tool} in {host.netns} did not start: {self.log.read_text()}"
                )
            time.sleep(0.05)

    def _settle(self, quiet: float = 1.0, limit: float = 10.0) -> None:
        """Wait until the file has stopped growing: on a busy machine the capture lags,
        and what it has not written yet when it is stopped would be lost."""
        deadline = time.monotonic() + limit
        size, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            current = self.path.stat().st_size if self.path.exists() else 0
            if current != size:
                size, since = current, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.1)

    def stop(self) -> list[Packet]:
        """Stop the capture (it flushes on SIGINT) and return what it captured."""
        if self.process.poll() is None:
            self._settle()
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return list(read_pcap(self.path))
