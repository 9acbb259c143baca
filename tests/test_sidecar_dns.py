"""The sidecar's DNS over real sockets: a real `v6alt sidecar` process, queried with dig."""

from __future__ import annotations

import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from ipaddress import IPv6Address
from pathlib import Path

import pytest

pytest.importorskip("twisted", reason="the sidecar needs v6alt[sidecar]")
if shutil.which("dig") is None:
    pytest.skip("dig is not installed (apt-get install dnsutils)", allow_module_level=True)

from tests.metrics_support import fetch, parse
from v6alt.codec import encode
from v6alt.dns_wire import Responder, build_query
from v6alt.lab.local_servers import (
    Sidecar,
    dig,
    free_port,
    running_sidecar,
    running_unbound,
    sidecar_command,
    unbound_config,
)
from v6alt.policy import Policy
from v6alt.prosody_bridge.dns_udp import BATCH_VARIABLE

pytestmark = pytest.mark.integration

NAME = "fiabbgadu-e.v6.alt"
ADDRESS = "2a00:1098:3a0::1"


@pytest.fixture(scope="module")
def sidecar() -> Iterator[Sidecar]:
    with running_sidecar() as running:
        yield running


def short(sidecar: Sidecar, *args: str) -> list[str]:
    return dig("+short", *args, server_port=sidecar.dns_port).split()


def status(output: str) -> str:
    for line in output.splitlines():
        if "status:" in line:
            return line.split("status:")[1].split(",")[0].strip()
    raise AssertionError(f"no status in dig output:\n{output}")


def section(output: str, title: str) -> list[list[str]]:
    """Records of one dig section (e.g. 'ANSWER'), split into fields."""
    records: list[list[str]] = []
    inside = False
    for line in output.splitlines():
        if line.startswith(f";; {title} SECTION:"):
            inside = True
            continue
        if inside:
            if not line.strip():
                break
            records.append(line.split())
    return records


@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
def test_aaaa(sidecar: Sidecar, transport: str) -> None:
    out = dig(transport, NAME, "AAAA", server_port=sidecar.dns_port)
    assert status(out) == "NOERROR"
    assert " aa" in out.split("flags:")[1].split(";")[0]
    assert section(out, "ANSWER") == [[f"{NAME}.", "86400", "IN", "AAAA", ADDRESS]]


def test_case_is_echoed_and_lenient_spellings_answer(sidecar: Sidecar) -> None:
    name = "Groups.FIABBGADUaaaaaaaaaaaaaaaaE.v6.ALT"
    out = dig(name, "AAAA", server_port=sidecar.dns_port)
    assert section(out, "QUESTION") == [[f";{name}.", "IN", "AAAA"]]
    assert section(out, "ANSWER")[0][0] == f"{name}."
    assert section(out, "ANSWER")[0][-1] == ADDRESS


@pytest.mark.parametrize("qtype", ["A", "SRV", "TLSA", "HTTPS", "TXT", "MX"])
def test_nodata_with_soa(sidecar: Sidecar, qtype: str) -> None:
    out = dig(f"_xmpp-server._tcp.{NAME}", qtype, server_port=sidecar.dns_port)
    assert status(out) == "NOERROR"
    assert section(out, "ANSWER") == []
    assert [r[3] for r in section(out, "AUTHORITY")] == ["SOA"]


@pytest.mark.parametrize("name", ["a-e.v6.alt", "72-e.v6.alt", "bad-label1.v6.alt", "7u-e.v6.alt"])
def test_nxdomain(sidecar: Sidecar, name: str) -> None:
    out = dig(name, "AAAA", server_port=sidecar.dns_port)
    assert status(out) == "NXDOMAIN"
    assert [r[0] for r in section(out, "AUTHORITY")] == ["v6.alt."]


def test_apex_and_any(sidecar: Sidecar) -> None:
    assert short(sidecar, "v6.alt", "NS") == ["v6.alt."]
    assert short(sidecar, "v6.alt", "SOA")[:3] == ["v6.alt.", "hostmaster.v6.alt.", "1"]
    any_out = dig(NAME, "ANY", server_port=sidecar.dns_port)
    assert [r[3] for r in section(any_out, "ANSWER")] == ["AAAA"]


def test_ptr(sidecar: Sidecar) -> None:
    assert short(sidecar, "-x", ADDRESS) == [f"{NAME}."]
    assert status(dig("-x", "::1", server_port=sidecar.dns_port)) == "REFUSED"


def test_other_zone_refused(sidecar: Sidecar) -> None:
    out = dig("example.org", "A", server_port=sidecar.dns_port)
    assert status(out) == "REFUSED"


def test_edns(sidecar: Sidecar) -> None:
    with_do = dig("+dnssec", "+bufsize=4096", NAME, server_port=sidecar.dns_port)
    assert "; EDNS: version: 0, flags: do; udp: 1232" in with_do
    plain = dig("+noedns", NAME, server_port=sidecar.dns_port)
    assert "OPT PSEUDOSECTION" not in plain and status(plain) == "NOERROR"
    badvers = dig("+edns=1", "+noednsnegotiation", NAME, server_port=sidecar.dns_port)
    assert status(badvers) == "BADVERS"


def udp_exchange(port: int, packet: bytes, timeout: float = 1.0) -> bytes | None:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, ("::1", port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


def test_malformed_packets(sidecar: Sidecar) -> None:
    port = sidecar.dns_port
    query = build_query(NAME, ident=0xABCD)
    no_question = struct.pack("!HHHHHH", 0xABCD, 0x0100, 0, 0, 0, 0)
    formerr = udp_exchange(port, no_question)
    assert formerr is not None and len(formerr) == 12 and formerr[3] & 0xF == 1
    notimp = udp_exchange(port, query[:2] + bytes([query[2] | 0x10]) + query[3:])  # opcode 2
    assert notimp is not None and notimp[3] & 0xF == 4
    assert udp_exchange(port, query[:11], timeout=0.5) is None, "under 12 bytes: no reply"
    response = query[:2] + bytes([query[2] | 0x80]) + query[3:]
    assert udp_exchange(port, response, timeout=0.5) is None, "QR=1: no reply"
    assert udp_exchange(port, query) is not None, "still answering"


def test_refusals_are_logged_once_per_class(sidecar: Sidecar) -> None:
    for i in range(20):
        udp_exchange(sidecar.dns_port, build_query(f"host{i}.example.net", ident=i))
    udp_exchange(sidecar.dns_port, build_query("a-e.v6.alt"))
    time.sleep(0.2)
    log = sidecar.log()
    assert log.count("refused: zone not served") == 1
    assert "nxdomain: never-dial: loopback" in log


def test_fuzz_over_the_socket(sidecar: Sidecar) -> None:
    from benchmarks import dns_fuzz

    dns_fuzz.fuzz_socket(sidecar.dns_port, 3000, seed=11)
    dns_fuzz.still_answers(sidecar.dns_port)
    assert sidecar.process.poll() is None


def test_config_error_stops_start_up() -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as config:
        config.write("sidecar:\n  forwarders: ['nonsense']\n")
        config.flush()
        result = subprocess.run(
            [*sidecar_command(), "--config", config.name, "--dns", f"[::1]:{free_port()}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("v6alt: sidecar: config: sidecar.forwarders[0]: ")


def test_sighup_reloads_the_policy() -> None:
    with running_sidecar("ranges:\n  cjdns: false\n") as sc:
        assert status(dig("7q-e.v6.alt", server_port=sc.dns_port)) == "NXDOMAIN"
        sc.config_path.write_text("ranges:\n  cjdns: true\n")
        sc.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "reloaded" not in sc.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert dig("+short", "7q-e.v6.alt", "AAAA", server_port=sc.dns_port).split() == ["fc00::1"]
        assert "listen addresses changed" not in sc.log(), "--dns/--lookup still apply"


def test_workers_share_the_port() -> None:
    with running_sidecar(workers=2) as sc:
        for i in range(20):
            name = f"x{i}.{NAME}"
            assert dig("+short", name, "AAAA", server_port=sc.dns_port).split() == [ADDRESS]
        children = Path(f"/proc/{sc.process.pid}/task/{sc.process.pid}/children").read_text()
        worker_pids = [int(p) for p in children.split()]
        assert len(worker_pids) == 1
    time.sleep(0.5)
    for pid in worker_pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in _state(pid), "worker left behind"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return "Z"


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    """A real unbound serving example.test, as the forwarder target."""
    with tempfile.TemporaryDirectory(prefix="v6alt-upstream-") as tmp:
        port = free_port()
        config = unbound_config(Path(tmp), port, local_data=())
        records = [
            '    local-zone: "example.test." static',
            '    local-data: "www.example.test. 300 IN A 192.0.2.7"',
            # 20 TXT records of 200 bytes: more than fits in one UDP reply.
            *(
                f"    local-data: 'big.example.test. 300 IN TXT \"{i:02d}{'x' * 200}\"'"
                for i in range(20)
            ),
        ]
        text = config.read_text().replace(
            "remote-control:", "\n".join(records) + "\nremote-control:"
        )
        config.write_text(text)
        with running_unbound(config, port):
            yield port


def test_forwarding(upstream: int) -> None:
    dead = free_port()  # nothing listens there: every query times out
    config = f"sidecar:\n  forwarders: ['[::1]:{upstream}']\n"
    with running_sidecar(config) as sc:
        for transport in ("+notcp", "+tcp"):
            out = dig(transport, "www.example.test", "A", server_port=sc.dns_port)
            assert status(out) == "NOERROR"
            assert section(out, "ANSWER")[0][-1] == "192.0.2.7"
        assert status(dig("nothing.example.test", server_port=sc.dns_port)) == "NXDOMAIN"
        # Truncated over UDP; complete over TCP (the sidecar asks upstream over TCP too).
        udp = dig("+ignore", "+bufsize=1232", "big.example.test", "TXT", server_port=sc.dns_port)
        assert " tc" in udp.split("flags:")[1].split(";")[0]
        tcp = dig("+tcp", "big.example.test", "TXT", server_port=sc.dns_port)
        assert status(tcp) == "NOERROR" and len(section(tcp, "ANSWER")) == 20
        assert dig("+short", NAME, "AAAA", server_port=sc.dns_port).split() == [ADDRESS]
    with running_sidecar(f"sidecar:\n  forwarders: ['[::1]:{dead}']\n") as sc:
        out = dig("+time=6", "www.example.test", server_port=sc.dns_port)
        assert status(out) == "SERVFAIL"
        assert "servfail: no forwarder answered" in sc.log()


def test_tcp_pipelining_and_short_message(sidecar: Sidecar) -> None:
    queries = [build_query(NAME, ident=1), build_query("v6.alt", 6, ident=2)]
    with socket.create_connection(("::1", sidecar.dns_port), timeout=3) as conn:
        conn.sendall(b"".join(struct.pack("!H", len(q)) + q for q in queries))
        replies = {}
        buffer = b""
        while len(replies) < 2:
            buffer += conn.recv(4096)
            while len(buffer) >= 2 and len(buffer) >= 2 + int.from_bytes(buffer[:2], "big"):
                length = int.from_bytes(buffer[:2], "big")
                message, buffer = buffer[2 : 2 + length], buffer[2 + length :]
                replies[int.from_bytes(message[:2], "big")] = message
        assert set(replies) == {1, 2}
        assert replies[1][3] & 0xF == 0 and replies[1][6:8] == b"\x00\x01"  # one answer
        framed = struct.pack("!H", len(queries[0])) + queries[0]
        for piece in (framed[:1], framed[1:9], framed[9:]):  # one query in three segments
            conn.sendall(piece)
            time.sleep(0.05)
        reply = conn.recv(4096)
        assert int.from_bytes(reply[:2], "big") == len(reply) - 2 and reply[2:4] == b"\x00\x01"
        conn.sendall(b"\x00\x05hello")  # under 12 bytes: the stream cannot be trusted
        assert conn.recv(4096) == b"", "connection closed"


def test_port_in_use_exits_1() -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as taken:
        port = free_port()
        taken.bind(("::1", port))
        result = subprocess.run(
            [*sidecar_command(), "--dns", f"[::1]:{port}", "--lookup", f"[::1]:{free_port()}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1
    assert f"cannot listen on [::1]:{port}/udp" in result.stderr


def test_refusal_log_is_rate_limited() -> None:
    import logging

    from v6alt.prosody_bridge.dns_query_log import DnsQueryLog

    now = [0.0]
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("test.refusals")
    logger.addHandler(Collect())
    refusals = DnsQueryLog(logger, interval=60, clock=lambda: now[0])
    for _ in range(5):
        refusals.note("refused: zone not served", "[::1]:1")
    refusals.note("formerr: truncated question", "[::1]:2")
    assert len(records) == 2
    now[0] = 61.0
    refusals.note("refused: zone not served", "[::1]:3")
    assert len(records) == 3
    assert records[-1].endswith("(4 more of this class in the last 60 s)")


def test_tells_systemd_when_ready() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp, "notify"))
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(path)
            notify.settimeout(20)
            with running_sidecar(env={"NOTIFY_SOCKET": path}):
                assert notify.recv(4096) == b"READY=1"


@pytest.fixture(scope="module")
def one_by_one_sidecar() -> Iterator[Sidecar]:
    """A sidecar reading UDP one datagram per system call, not in recvmmsg batches."""
    with running_sidecar(env={BATCH_VARIABLE: "0"}) as running:
        yield running


@pytest.fixture(params=["batched", "one by one"])
def either_sidecar(request: pytest.FixtureRequest) -> Sidecar:
    """The module's sidecar (recvmmsg batches), then the one reading one by one."""
    name = "sidecar" if request.param == "batched" else "one_by_one_sidecar"
    running: Sidecar = request.getfixturevalue(name)
    return running


def test_udp_replies_are_the_general_paths_bytes_and_are_counted(either_sidecar: Sidecar) -> None:
    """Over a real socket, the fast path (first ask) and the reply cache (second ask,
    another ID) send exactly what the general path builds, refusals included, and the
    answers are counted by query type and response code; reading batches with
    recvmmsg/sendmmsg or one datagram per system call."""
    sidecar = either_sidecar
    general = Responder(Policy())
    names = [NAME, "AiAmVog6wthgaq3cisjokoiewu.V6.alt", "_xmpp-server._tcp." + NAME, "a-e.v6.alt"]
    packets = [
        build_query(name, qtype, edns_payload=payload, dnssec_ok=payload == 4096)
        for name in names
        for qtype in (28, 1, 255, 33)
        for payload in (None, 1232, 4096)
    ]
    url = f"{sidecar.lookup_url}/metrics"
    before = parse(fetch(url))
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as client:
        client.settimeout(10)
        for ident in (0x1234, 0xABCD):
            for packet in packets:
                packet = ident.to_bytes(2, "big") + packet[2:]
                client.sendto(packet, ("::1", sidecar.dns_port))
                assert client.recv(4096) == general.respond(packet).data, packet.hex()
    after = parse(fetch(url))

    def moved(qtype: str, rcode: str) -> float:
        name = "v6alt_sidecar_dns_queries_total"
        labels = {"transport": "udp", "qtype": qtype, "rcode": rcode}
        return after.value(name, **labels) - before.value(name, **labels)

    # 3 allowed names x 3 EDNS shapes x 2 asks; the ::1 name is NXDOMAIN.
    for qtype in ("AAAA", "A", "ANY", "SRV"):
        assert moved(qtype, "NOERROR") == 18
        assert moved(qtype, "NXDOMAIN") == 6


def test_many_clients_in_flight_each_get_their_own_answers(either_sidecar: Sidecar) -> None:
    """16 sockets with 100 queries each in flight at once (so the read loop sees full
    batches): each socket gets one answer per query, with its ID, the general path's
    bytes, whether from the fast path or the reply cache."""
    sidecar = either_sidecar
    general = Responder(Policy())
    names = [encode(IPv6Address("200:5::") + number) for number in range(50)]
    clients = [socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) for _ in range(16)]
    queries = [
        [(index * 100 + number).to_bytes(2, "big") + build_query(names[number % 50])[2:]
         for number in range(100)]
        for index in range(16)
    ]  # fmt: skip
    try:
        for client in clients:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            client.settimeout(10)
        for client, sent in zip(clients, queries, strict=True):
            for query in sent:
                client.sendto(query, ("::1", sidecar.dns_port))
        for client, sent in zip(clients, queries, strict=True):
            got: dict[bytes, bytes] = {}
            while len(got) < len(sent):
                reply = client.recv(4096)
                assert reply[:2] not in got, "an answer came twice"
                got[reply[:2]] = reply
            assert got == {query[:2]: general.respond(query).data for query in sent}
    finally:
        for client in clients:
            client.close()
