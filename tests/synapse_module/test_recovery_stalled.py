"""Connections stuck in TCP retransmission backoff are found and aborted; healthy ones not.

Two namespaces on one link; a Twisted reactor in the first holds two
connections to a listener in the second. The link is cut and data is written
on one of them: the kernel resends it with backoff. The module's check
(``stalled_connections``, Linux ``TCP_INFO``) must name that connection and
only it, and aborting it must end it at once (the request on it would fail
and be retried on a fresh connection).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("synapse.app.homeserver", reason="matrix-synapse is not installed")

from v6alt.lab.netns import FlatNet

pytestmark = pytest.mark.integration

PORT = 8448

LISTENER = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(8)
print("listening", flush=True)
held = [s.accept()[0] for _ in range(2)]
time.sleep(120)
"""

CLIENT = r"""
import json, os, sys
from ipaddress import IPv6Address
from twisted.internet import endpoints, protocol, reactor, task
from v6alt.synapse_module.stalled_connections import abort_stalled, stalled_transports

peer, port, flag = IPv6Address(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lost = []

class Held(protocol.Protocol):
    def connectionLost(self, reason):
        lost.append(self)

held = []

def connected(p):
    held.append(p)
    if len(held) == 2:
        print(json.dumps({"connected": 2}), flush=True)
        task.LoopingCall(wait_for_cut).start(0.1)

def wait_for_cut():
    if os.path.exists(flag) and not getattr(wait_for_cut, "done", False):
        wait_for_cut.done = True
        held[1].transport.write(b"x" * 2000)   # unacknowledged: the link is down
        task.LoopingCall(check).start(0.1)

def check():
    stalled = stalled_transports(reactor, peer, port)
    if not stalled:
        return
    stuck = [t for t in stalled if t is held[1].transport]
    healthy = [t for t in stalled if t is held[0].transport]
    aborted = abort_stalled(reactor, peer, port)
    reactor.callLater(0.2, report, len(stalled), len(stuck), len(healthy), aborted)

def report(stalled, stuck, healthy, aborted):
    print(json.dumps({"stalled": stalled, "stuck": stuck, "healthy": healthy,
                      "aborted": aborted, "lost": [held.index(p) for p in lost]}), flush=True)
    reactor.stop()

for _ in range(2):
    endpoint = endpoints.TCP6ClientEndpoint(reactor, str(peer), port, timeout=5)
    endpoint.connect(protocol.Factory.forProtocol(Held)).addCallback(connected)
reactor.callLater(60, reactor.stop)
reactor.run()
"""


@pytest.fixture
def link() -> Iterator[FlatNet]:
    with FlatNet(f"v6r-{os.getpid() % 100000}-") as net:
        net.add_host("a", "202:6a1f:78::1")
        net.add_host("b", "202:6a1f:78::2")
        yield net


def test_only_the_connection_in_retransmission_backoff_is_aborted(
    link: FlatNet, tmp_path: Path
) -> None:
    a, b = link["a"], link["b"]
    listener = b.popen(
        [sys.executable, "-c", LISTENER, str(b.address), str(PORT)], stdout=subprocess.PIPE
    )
    assert listener.stdout is not None and listener.stdout.readline().strip() == "listening"
    flag = tmp_path / "cut"
    client = a.popen(
        [sys.executable, "-c", CLIENT, str(b.address), str(PORT), str(flag)],
        stdout=subprocess.PIPE,
    )
    assert client.stdout is not None
    assert json.loads(client.stdout.readline()) == {"connected": 2}
    link.set_link(b, up=False)
    flag.touch()
    result = json.loads(client.stdout.readline())
    client.wait(timeout=30)
    link.set_link(b, up=True)
    assert result == {"stalled": 1, "stuck": 1, "healthy": 0, "aborted": 1, "lost": [1]}
