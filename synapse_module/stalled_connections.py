"""TCP connections to a peer that wait on the kernel's retransmission timer.

After a link cut, a federation request sent during the cut sits on a
connection whose data (or SYN) the kernel resends with exponential backoff:
0.2 s doubling to 2 minutes for data, 1 s doubling for a SYN. When the
route is back, that connection stays silent until its next retransmission,
which after a long cut is up to two minutes away, and Synapse's request
timeout (60 s) may cut it first. So once a fresh probe connection to the
peer has succeeded, every connection of this process to the same address
and port that has had a retransmission timeout (Linux ``TCP_INFO``
``tcpi_retransmits`` > 0: unacknowledged data or SYN resent at least once)
is aborted; the request fails at once and Synapse retries it on a fresh
connection when the recovery wakes it.

A connection whose data is acknowledged has ``tcpi_retransmits`` 0 and is
left alone, so healthy pooled connections are kept.
"""

from __future__ import annotations

import logging
import socket
import struct
from ipaddress import IPv6Address, ip_address
from typing import Any, Final

logger = logging.getLogger("v6alt.synapse_module")

#: struct tcp_info (linux/tcp.h): u8 state, ca_state, retransmits, probes, backoff, ...
_TCP_INFO: Final = getattr(socket, "TCP_INFO", 11)
_TCP_INFO_SIZE: Final = 104
_RETRANSMITS_OFFSET: Final = 2
_STATE_SYN_SENT: Final = 2


def _peer_of(selectable: Any) -> tuple[str, int] | None:
    # twisted.internet.tcp.Client keeps the address it connects to as
    # realAddress (also while the connect is in progress, when getpeername fails).
    for name in ("realAddress", "addr"):
        value = getattr(selectable, name, None)
        if isinstance(value, tuple) and len(value) >= 2:
            return str(value[0]), int(value[1])
    return None


def retransmitting(sock: socket.socket) -> tuple[int, int] | None:
    """(TCP state, retransmission timeouts of the oldest unacknowledged data), or None."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _TCP_INFO_SIZE)
    except OSError:
        return None
    if len(info) <= _RETRANSMITS_OFFSET:
        return None
    state, retransmits = struct.unpack_from("B", info, 0)[0], info[_RETRANSMITS_OFFSET]
    return int(state), int(retransmits)


def stalled_transports(reactor: Any, address: IPv6Address, port: int) -> list[Any]:
    """The reactor's TCP transports to ``[address]:port`` in retransmission backoff."""
    found = []
    selectables = {*reactor.getReaders(), *reactor.getWriters()}
    for selectable in selectables:
        sock = getattr(selectable, "socket", None)
        if not isinstance(sock, socket.socket) or sock.family != socket.AF_INET6:
            continue
        if sock.type != socket.SOCK_STREAM:
            continue
        peer = _peer_of(selectable)
        if peer is None or peer[1] != port:
            continue
        try:
            if ip_address(peer[0].split("%", 1)[0]) != address:
                continue
        except ValueError:
            continue
        status = retransmitting(sock)
        if status is not None and status[1] > 0:
            found.append(selectable)
    return found


def abort_stalled(reactor: Any, address: IPv6Address, port: int) -> int:
    """Abort each stalled connection to ``[address]:port``; how many were aborted."""
    from twisted.internet import error

    aborted = 0
    for transport in stalled_transports(reactor, address, port):
        try:
            if getattr(transport, "connected", False):
                transport.abortConnection()
            else:
                transport.failIfNotConnected(error.ConnectError(string="stalled, aborted"))  # type: ignore[no-untyped-call]
        except Exception as e:  # a transport that closed meanwhile
            logger.debug(
                "v6alt: could not abort a stalled connection to [%s]:%d: %s", address, port, e
            )
            continue
        aborted += 1
    return aborted


__all__ = ["abort_stalled", "retransmitting", "stalled_transports"]
