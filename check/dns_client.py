"""A minimal DNS stub client over UDP (TCP when the answer is truncated).

Enough for a federation check: A, AAAA, SRV (and the CNAMEs in front of
them), asked of the system resolver from /etc/resolv.conf or a given
``host:port``. Parsing is pure and separate from the socket code.
"""

from __future__ import annotations

import secrets
import socket
import struct
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Final

from v6alt.dns_wire import build_query

__all__ = [
    "RCODE_NAMES",
    "TYPE_A",
    "TYPE_AAAA",
    "TYPE_CNAME",
    "TYPE_SRV",
    "DnsAnswer",
    "DnsError",
    "SrvRecord",
    "parse_response",
    "query",
    "system_resolver",
]

TYPE_A: Final = 1
TYPE_CNAME: Final = 5
TYPE_AAAA: Final = 28
TYPE_SRV: Final = 33
RCODE_NAMES: Final = {
    0: "NOERROR",
    1: "FORMERR",
    2: "SERVFAIL",
    3: "NXDOMAIN",
    4: "NOTIMP",
    5: "REFUSED",
}
_HEADER: Final = struct.Struct("!HHHHHH")
_RR: Final = struct.Struct("!HHIH")


class DnsError(Exception):
    """The lookup failed: timeout, unreachable resolver, malformed answer."""


@dataclass(frozen=True, order=True)
class SrvRecord:
    priority: int
    weight: int
    port: int
    target: str


@dataclass
class DnsAnswer:
    name: str
    qtype: int
    rcode: int
    addresses: list[IPv4Address | IPv6Address] = field(default_factory=list)
    srv: list[SrvRecord] = field(default_factory=list)
    cnames: list[str] = field(default_factory=list)

    @property
    def rcode_name(self) -> str:
        return RCODE_NAMES.get(self.rcode, f"RCODE{self.rcode}")


def _read_name(packet: bytes, pos: int) -> tuple[str, int]:
    labels: list[str] = []
    end: int | None = None
    jumps = 0
    while True:
        if pos >= len(packet):
            raise DnsError("answer truncated inside a name")
        length = packet[pos]
        if length & 0xC0 == 0xC0:
            if pos + 1 >= len(packet):
                raise DnsError("answer truncated inside a compression pointer")
            if end is None:
                end = pos + 2
            jumps += 1
            if jumps > 64:
                raise DnsError("compression pointer loop in answer")
            pos = ((length & 0x3F) << 8) | packet[pos + 1]
            continue
        if length & 0xC0:
            raise DnsError(f"unsupported label type 0x{length:02x}")
        pos += 1
        if length == 0:
            break
        labels.append(packet[pos : pos + length].decode("ascii", "replace"))
        pos += length
    return ".".join(labels), end if end is not None else pos


def parse_response(packet: bytes, ident: int, qtype: int, name: str) -> DnsAnswer:
    """Parse an answer to our query ``ident``; raises :class:`DnsError` on nonsense."""
    if len(packet) < _HEADER.size:
        raise DnsError(f"answer of {len(packet)} bytes is shorter than a DNS header")
    got_id, flags, qdcount, ancount, _ns, _ar = _HEADER.unpack_from(packet)
    if got_id != ident:
        raise DnsError(f"answer id {got_id} does not match query id {ident}")
    if not flags & 0x8000:
        raise DnsError("packet is not a response")
    answer = DnsAnswer(name, qtype, flags & 0x000F)
    pos = _HEADER.size
    for _ in range(qdcount):
        _name, pos = _read_name(packet, pos)
        pos += 4
    for _ in range(ancount):
        _owner, pos = _read_name(packet, pos)
        if pos + _RR.size > len(packet):
            raise DnsError("answer truncated inside a record")
        rtype, _rclass, _ttl, length = _RR.unpack_from(packet, pos)
        pos += _RR.size
        rdata = packet[pos : pos + length]
        if len(rdata) != length:
            raise DnsError("answer truncated inside record data")
        if rtype == TYPE_A and length == 4:
            answer.addresses.append(IPv4Address(rdata))
        elif rtype == TYPE_AAAA and length == 16:
            answer.addresses.append(IPv6Address(rdata))
        elif rtype == TYPE_CNAME:
            answer.cnames.append(_read_name(packet, pos)[0])
        elif rtype == TYPE_SRV and length >= 7:
            priority, weight, port = struct.unpack_from("!HHH", packet, pos)
            target = _read_name(packet, pos + 6)[0]
            answer.srv.append(SrvRecord(priority, weight, port, target))
        pos += length
    answer.srv.sort()
    return answer


def system_resolver(path: str = "/etc/resolv.conf") -> tuple[str, int]:
    """The first ``nameserver`` of resolv.conf (port 53); ``::1`` when there is none."""
    try:
        with open(path, encoding="utf-8", errors="replace") as conf:
            for line in conf:
                fields = line.split()
                if len(fields) >= 2 and fields[0] == "nameserver":
                    host = fields[1].split("%", 1)[0]
                    ip_address(host)  # skip garbage rather than dial it
                    return host, 53
    except (OSError, ValueError):
        pass
    return "::1", 53


def query(name: str, qtype: int, server: tuple[str, int], timeout: float) -> DnsAnswer:
    """Ask ``server`` one question; TCP is used when the UDP answer is truncated."""
    ident = secrets.randbelow(0x10000)
    packet = build_query(name, qtype, ident=ident, edns_payload=1232)
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.connect(server)
            sock.send(packet)
            while True:
                reply = sock.recv(65535)
                if len(reply) >= 2 and struct.unpack_from("!H", reply)[0] == ident:
                    break
        if len(reply) >= 4 and reply[2] & 0x02:  # TC: ask again over TCP
            reply = _query_tcp(packet, server, family, timeout)
    except TimeoutError:
        raise DnsError(
            f"no answer from {server[0]} port {server[1]} within {timeout:g} s"
        ) from None
    except OSError as exc:
        raise DnsError(f"resolver {server[0]} port {server[1]}: {exc.strerror or exc}") from None
    return parse_response(reply, ident, qtype, name)


def _query_tcp(packet: bytes, server: tuple[str, int], family: int, timeout: float) -> bytes:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(server)
        sock.sendall(struct.pack("!H", len(packet)) + packet)
        data = b""
        while len(data) < 2 or len(data) < 2 + struct.unpack_from("!H", data)[0]:
            chunk = sock.recv(65535)
            if not chunk:
                raise DnsError("resolver closed the TCP connection mid-answer")
            data += chunk
        return data[2 : 2 + struct.unpack_from("!H", data)[0]]
