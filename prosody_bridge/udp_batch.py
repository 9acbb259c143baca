"""Many UDP datagrams per system call: Linux ``recvmmsg`` and ``sendmmsg`` through ctypes.

Python's socket module makes one system call per datagram and converts every
peer address to and from a ``(host, port, ...)`` tuple (a ``getaddrinfo`` call
on each ``sendto``). On the DNS reply-cache path that is most of the cost of
a query. Here a batch of datagrams is read with one ``recvmmsg`` into fixed
buffers, and the replies go out with one ``sendmmsg`` to the peer addresses
exactly as the kernel gave them (raw ``sockaddr`` bytes, never converted);
only a datagram that leaves the fast paths gets its address as a tuple.

:func:`open_batch` returns ``None`` where this is not available (not Linux, no
``recvmmsg`` in the C library): the caller keeps its one-by-one loop.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import socket
import sys
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["BatchUnavailable", "UdpBatch", "libc_with_mmsg", "open_batch", "sockaddr_tuple"]

MSG_DONTWAIT = 0x40
NAME_SIZE = 128  # sizeof(struct sockaddr_storage)


class _Iovec(ctypes.Structure):
    _fields_ = (("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t))


class _Msghdr(ctypes.Structure):
    _fields_ = (
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_Iovec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    )


class _Mmsghdr(ctypes.Structure):
    _fields_ = (("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint32))


_MMSG = ctypes.sizeof(_Mmsghdr)
_NAMELEN = _Msghdr.msg_namelen.offset
_MSGLEN = _Mmsghdr.msg_len.offset
_IOVLEN = _Iovec.iov_len.offset
_IOV = ctypes.sizeof(_Iovec)
# The arrays are read and written as 4- and 8-byte words (memoryview casts):
# a slot's fields are at slot * <words per struct> + <field's word>.
_MMSG_WORDS, _MSGLEN_AT, _NAMELEN_AT = _MMSG // 4, _MSGLEN // 4, _NAMELEN // 4
_MMSG_QWORDS, _IOV_QWORDS, _IOVLEN_AT = _MMSG // 8, _IOV // 8, _IOVLEN // 8
# errno values that mean the system call itself is not allowed or not there.
_REFUSED = frozenset((errno.ENOSYS, errno.EPERM, errno.EACCES))

K = TypeVar("K")


class BatchUnavailable(OSError):
    """recvmmsg or sendmmsg is refused by the system: read one datagram at a time."""


def libc_with_mmsg() -> Any | None:
    """The C library with recvmmsg and sendmmsg declared, or None (not Linux, too old)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        recvmmsg, sendmmsg = libc.recvmmsg, libc.sendmmsg
    except (OSError, AttributeError):
        return None
    recvmmsg.argtypes = (
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_void_p,
    )
    recvmmsg.restype = ctypes.c_int
    sendmmsg.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int)
    sendmmsg.restype = ctypes.c_int
    return libc


def sockaddr_tuple(name: bytes) -> tuple[Any, ...] | None:
    """A raw ``sockaddr_in6``/``sockaddr_in`` as the tuple ``socket.recvfrom`` gives."""
    family = int.from_bytes(name[:2], sys.byteorder)
    port = int.from_bytes(name[2:4], "big")
    if family == socket.AF_INET6 and len(name) >= 28:
        host = socket.inet_ntop(socket.AF_INET6, name[8:24])
        flowinfo = int.from_bytes(name[4:8], "big")
        return host, port, flowinfo, int.from_bytes(name[24:28], sys.byteorder)
    if family == socket.AF_INET and len(name) >= 8:
        return socket.inet_ntop(socket.AF_INET, name[4:8]), port
    return None


class UdpBatch:
    """Fixed buffers for ``size`` datagrams of at most ``datagram`` bytes each way.

    :meth:`receive` fills slots 0..n-1 (their bytes: :meth:`datagram`, their
    sender: :meth:`address`); a reply to slot ``i`` is queued with :meth:`reply`
    (or :meth:`reply_from_table` for a whole batch) and the queued replies leave
    with :meth:`flush`, which must come before the next :meth:`receive`.
    """

    def __init__(self, libc: Any, fileno: int, size: int, datagram: int) -> None:
        self._libc = libc
        self.fileno = fileno
        self.size = size
        self.datagram_size = datagram
        self._in_data = ctypes.create_string_buffer(size * datagram)
        self._out_data = ctypes.create_string_buffer(size * datagram)
        self._names = ctypes.create_string_buffer(size * NAME_SIZE)
        self._in_iov = (_Iovec * size)()
        self._out_iov = (_Iovec * size)()
        self._in_msgs = (_Mmsghdr * size)()
        self._out_msgs = (_Mmsghdr * size)()
        in_data, out_data = ctypes.addressof(self._in_data), ctypes.addressof(self._out_data)
        names = ctypes.addressof(self._names)
        self._name_addresses = [names + i * NAME_SIZE for i in range(size)]
        for i in range(size):
            self._in_iov[i].iov_base = in_data + i * datagram
            self._in_iov[i].iov_len = datagram
            self._out_iov[i].iov_base = out_data + i * datagram
            header = self._in_msgs[i].msg_hdr
            header.msg_name = self._name_addresses[i]
            header.msg_namelen = NAME_SIZE
            header.msg_iov = ctypes.pointer(self._in_iov[i])
            header.msg_iovlen = 1
            header = self._out_msgs[i].msg_hdr
            header.msg_iov = ctypes.pointer(self._out_iov[i])
            header.msg_iovlen = 1
        # The kernel writes msg_namelen and msg_len of each slot it fills:
        # one memmove of this copy makes the array ready for the next call.
        self._pristine = bytes(memoryview(self._in_msgs).cast("B"))
        self._in_msgs_address = ctypes.addressof(self._in_msgs)
        self._out_msgs_address = ctypes.addressof(self._out_msgs)
        self._in_view = memoryview(self._in_data).cast("B")
        self._out_view = memoryview(self._out_data).cast("B")
        self._in_words = memoryview(self._in_msgs).cast("B").cast("I")
        self._out_words = memoryview(self._out_msgs).cast("B").cast("I")
        self._out_msg_q = memoryview(self._out_msgs).cast("B").cast("Q")
        self._out_iov_q = memoryview(self._out_iov).cast("B").cast("Q")
        self._names_view = memoryview(self._names).cast("B")
        self.queued = 0
        self.send_errors = 0

    def receive(self) -> int:
        """Read up to ``size`` waiting datagrams without blocking; how many (0: none).

        :class:`BatchUnavailable` when the system refuses the call itself (a
        seccomp filter, an emulated kernel without it).
        """
        ctypes.memmove(self._in_msgs_address, self._pristine, len(self._pristine))
        while True:
            count: int = self._libc.recvmmsg(
                self.fileno, self._in_msgs_address, self.size, MSG_DONTWAIT, None
            )
            if count >= 0:
                return count
            code = ctypes.get_errno()
            if code == errno.EINTR:
                continue
            if code in _REFUSED:
                raise BatchUnavailable(f"recvmmsg: {os.strerror(code)}")
            # EAGAIN: nothing waiting; ECONNREFUSED and the like (an ICMP
            # error queued on the socket) are consumed by this call.
            return 0

    def reply_from_table(
        self, received: int, get: Callable[[bytes], tuple[bytes, K] | None], counted: dict[K, int]
    ) -> list[int]:
        """For each of the ``received`` datagrams, ``get(datagram without its 2-byte
        ID)``; a hit ``(body, key)`` queues the datagram's ID + ``body`` to its
        sender and counts ``counted[key] += 1``. The slots that missed, in order.

        One loop over fixed buffers, no call per datagram but ``get``: this is
        the reply cache's path, the one every repeated query takes.
        """
        missed: list[int] = []
        step = self.datagram_size
        in_view, out_view = self._in_view, self._out_view
        in_words, out_words = self._in_words, self._out_words
        out_msg_q, out_iov_q = self._out_msg_q, self._out_iov_q
        name_addresses = self._name_addresses
        index = self.queued
        for slot in range(received):
            start = slot * step
            length = in_words[slot * _MMSG_WORDS + _MSGLEN_AT]
            hit = get(bytes(in_view[start + 2 : start + length]))
            if hit is None:
                missed.append(slot)
                continue
            body, key = hit
            size = 2 + len(body)
            if size > step:
                missed.append(slot)
                continue
            out = index * step
            out_view[out : out + 2] = in_view[start : start + 2]
            out_view[out + 2 : out + size] = body
            out_msg_q[index * _MMSG_QWORDS] = name_addresses[slot]
            out_words[index * _MMSG_WORDS + _NAMELEN_AT] = in_words[
                slot * _MMSG_WORDS + _NAMELEN_AT
            ]
            out_iov_q[index * _IOV_QWORDS + _IOVLEN_AT] = size
            index += 1
            counted[key] += 1
        self.queued = index
        return missed

    def datagram(self, slot: int) -> bytes:
        length = self._in_words[slot * _MMSG_WORDS + _MSGLEN_AT]
        start = slot * self.datagram_size
        return bytes(self._in_view[start : start + length])

    def address(self, slot: int) -> tuple[Any, ...] | None:
        """The sender of ``slot`` as ``socket.recvfrom`` gives it."""
        namelen = self._in_words[slot * _MMSG_WORDS + _NAMELEN_AT]
        start = slot * NAME_SIZE
        return sockaddr_tuple(bytes(self._names_view[start : start + namelen]))

    def reply(self, slot: int, data: bytes) -> bool:
        """Queue ``data`` to the sender of ``slot``; False (nothing queued) when it
        is longer than ``datagram``."""
        size = len(data)
        if size > self.datagram_size:
            return False
        index = self.queued
        start = index * self.datagram_size
        self._out_view[start : start + size] = data
        self._out_msg_q[index * _MMSG_QWORDS] = self._name_addresses[slot]
        self._out_words[index * _MMSG_WORDS + _NAMELEN_AT] = self._in_words[
            slot * _MMSG_WORDS + _NAMELEN_AT
        ]
        self._out_iov_q[index * _IOV_QWORDS + _IOVLEN_AT] = size
        self.queued = index + 1
        return True

    def flush(self) -> None:
        """Send every queued reply; one that fails (UDP: the client retries) is
        skipped and counted in ``send_errors``."""
        done, queued = 0, self.queued
        self.queued = 0
        while done < queued:
            sent: int = self._libc.sendmmsg(
                self.fileno, self._out_msgs_address + done * _MMSG, queued - done, 0
            )
            if sent > 0:
                done += sent
                continue
            code = ctypes.get_errno() if sent < 0 else 0
            if code == errno.EINTR:
                continue
            if code in _REFUSED:
                raise BatchUnavailable(f"sendmmsg: {os.strerror(code)}")
            # The first remaining reply failed (buffer full, peer gone): drop it.
            self.send_errors += 1
            done += 1


def open_batch(sock: socket.socket, size: int, datagram: int) -> UdpBatch | None:
    """A :class:`UdpBatch` on ``sock``, or ``None`` where the system has none."""
    libc = libc_with_mmsg()
    if libc is None:
        return None
    return UdpBatch(libc, sock.fileno(), size, datagram)
