"""UdpBatch: recvmmsg/sendmmsg over real loopback sockets, and its failure paths."""

from __future__ import annotations

import ctypes
import errno
import socket
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from v6alt.prosody_bridge.udp_batch import (
    BatchUnavailable,
    UdpBatch,
    libc_with_mmsg,
    open_batch,
    sockaddr_tuple,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")

SIZE = 8
DATAGRAM = 512


def bound(family: int = socket.AF_INET6) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def client(family: int = socket.AF_INET6) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
    sock.settimeout(5)
    return sock


@pytest.fixture
def server() -> Iterator[tuple[socket.socket, UdpBatch]]:
    sock = bound()
    batch = open_batch(sock, SIZE, DATAGRAM)
    assert batch is not None
    yield sock, batch
    sock.close()


def receive_all(batch: UdpBatch, expected: int) -> int:
    """recvmmsg until ``expected`` datagrams are in (they may arrive over a few ms)."""
    deadline = time.monotonic() + 5
    received = 0
    while received < expected and time.monotonic() < deadline:
        received = batch.receive()
        if not received:
            time.sleep(0.01)
    return received


def test_nothing_waiting_is_zero(server: tuple[socket.socket, UdpBatch]) -> None:
    assert server[1].receive() == 0


def test_datagrams_and_senders_of_a_batch(server: tuple[socket.socket, UdpBatch]) -> None:
    sock, batch = server
    one, two = client(), client()
    one.sendto(b"first", sock.getsockname())
    two.sendto(b"second", sock.getsockname())
    one.sendto(b"", sock.getsockname())
    assert receive_all(batch, 3) == 3
    assert [batch.datagram(slot) for slot in range(3)] == [b"first", b"second", b""]
    assert [batch.address(slot) for slot in range(3)] == [
        one.getsockname(),
        two.getsockname(),
        one.getsockname(),
    ]
    # Replies go to each slot's sender, from the server's own address.
    assert batch.reply(1, b"to two")
    assert batch.reply(0, b"to one")
    batch.flush()
    assert two.recvfrom(100) == (b"to two", sock.getsockname())
    assert one.recvfrom(100) == (b"to one", sock.getsockname())
    one.close()
    two.close()


def test_a_full_batch_leaves_the_rest_for_the_next(server: tuple[socket.socket, UdpBatch]) -> None:
    sock, batch = server
    sender = client()
    for number in range(SIZE + 3):
        sender.sendto(b"%d" % number, sock.getsockname())
    assert receive_all(batch, SIZE) == SIZE
    assert batch.datagram(SIZE - 1) == b"%d" % (SIZE - 1)
    assert receive_all(batch, 3) == 3
    assert [batch.datagram(slot) for slot in range(3)] == [b"8", b"9", b"10"]
    sender.close()


def test_a_datagram_longer_than_a_slot_is_cut(server: tuple[socket.socket, UdpBatch]) -> None:
    sock, batch = server
    sender = client()
    sender.sendto(bytes(range(256)) * 4, sock.getsockname())
    assert receive_all(batch, 1) == 1
    assert batch.datagram(0) == (bytes(range(256)) * 4)[:DATAGRAM]
    sender.close()


def test_reply_from_table(server: tuple[socket.socket, UdpBatch]) -> None:
    sock, batch = server
    one, two = client(), client()
    table = {b"known": (b"-answer", "a"), b"huge": (b"x" * DATAGRAM, "h")}
    one.sendto(b"\x12\x34known", sock.getsockname())
    two.sendto(b"\xab\xcdunknown", sock.getsockname())
    two.sendto(b"\xab\xcehuge", sock.getsockname())
    two.sendto(b"\x00\x01known", sock.getsockname())
    assert receive_all(batch, 4) == 4
    counted: defaultdict[str, int] = defaultdict(int)
    # A miss, and a hit too long for a slot, are left to the caller, in order.
    assert batch.reply_from_table(4, table.get, counted) == [1, 2]
    assert counted == {"a": 2}
    assert batch.queued == 2
    batch.flush()
    assert one.recv(100) == b"\x12\x34-answer"
    assert two.recv(100) == b"\x00\x01-answer"
    one.close()
    two.close()


def test_reply_longer_than_a_slot_is_refused(server: tuple[socket.socket, UdpBatch]) -> None:
    sock, batch = server
    sender = client()
    sender.sendto(b"q", sock.getsockname())
    assert receive_all(batch, 1) == 1
    assert not batch.reply(0, b"x" * (DATAGRAM + 1))
    assert batch.queued == 0
    assert batch.reply(0, b"x" * DATAGRAM)
    batch.flush()
    assert sender.recv(DATAGRAM * 2) == b"x" * DATAGRAM
    sender.close()


def test_ipv4() -> None:
    sock = bound(socket.AF_INET)
    batch = open_batch(sock, SIZE, DATAGRAM)
    assert batch is not None
    sender = client(socket.AF_INET)
    sender.sendto(b"v4", sock.getsockname())
    assert receive_all(batch, 1) == 1
    assert batch.address(0) == sender.getsockname()
    assert batch.reply(0, b"back")
    batch.flush()
    assert sender.recv(100) == b"back"
    sender.close()
    sock.close()


def test_sockaddr_tuple_of_odd_input() -> None:
    assert sockaddr_tuple(b"") is None
    assert sockaddr_tuple(socket.AF_INET6.to_bytes(2, sys.byteorder) + bytes(10)) is None
    assert sockaddr_tuple(socket.AF_UNIX.to_bytes(2, sys.byteorder) + bytes(30)) is None


class FailingLibc:
    """The C library, but the next calls of one function fail with ``codes``."""

    def __init__(self, function: str, codes: list[int]) -> None:
        self.real = libc_with_mmsg()
        self.function = function
        self.codes = codes

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.real, name)

        def call(*args: Any) -> int:
            if name == self.function and self.codes:
                ctypes.set_errno(self.codes.pop(0))
                return -1
            return int(real(*args))

        return call


def test_a_reply_that_cannot_be_sent_is_skipped() -> None:
    sock = bound()
    sender = client()
    libc = FailingLibc("sendmmsg", [errno.EAGAIN, errno.EINTR])
    batch = UdpBatch(libc, sock.fileno(), SIZE, DATAGRAM)
    for number in range(3):
        sender.sendto(b"%d" % number, sock.getsockname())
    assert receive_all(batch, 3) == 3
    for slot in range(3):
        assert batch.reply(slot, b"r%d" % slot)
    batch.flush()
    # The first failed (EAGAIN: dropped), the retry after EINTR sent the rest.
    assert batch.send_errors == 1
    assert [sender.recv(100) for _ in range(2)] == [b"r1", b"r2"]
    sender.close()
    sock.close()


@pytest.mark.parametrize("code", [errno.ENOSYS, errno.EPERM])
def test_a_refused_system_call_raises_batch_unavailable(code: int) -> None:
    sock = bound()
    batch = UdpBatch(FailingLibc("recvmmsg", [code]), sock.fileno(), SIZE, DATAGRAM)
    with pytest.raises(BatchUnavailable, match="recvmmsg"):
        batch.receive()
    sender = client()
    sender.sendto(b"q", sock.getsockname())
    batch = UdpBatch(FailingLibc("sendmmsg", [code]), sock.fileno(), SIZE, DATAGRAM)
    assert receive_all(batch, 1) == 1
    batch.reply(0, b"r")
    with pytest.raises(BatchUnavailable, match="sendmmsg"):
        batch.flush()
    sender.close()
    sock.close()
