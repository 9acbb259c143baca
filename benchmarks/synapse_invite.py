"""Cold federation: from an invite on A to the first message seen on B.

Run as root (network namespaces), in a venv with matrix-synapse and v6alt:

    python benchmarks/synapse_invite.py [--runs 3] [--json]

Two homeservers in two network namespaces on one 200::/7 link, fresh
(no cached keys, connections or well-known results) for every run:

- module: the documented homeserver.yaml (v6.alt server names, self-signed
  certificates, the v6alt module);
- stock: the same without the module, with DNS names served by a local DNS
  server in each namespace (AAAA records; SRV queries answered NXDOMAIN) and
  certificates from a test CA that both trust (`federation_custom_ca_list`).

Timed from the invite request on A, through B seeing the invite (sync),
B joining, A sending a message, until B's timeline shows that message (the
lab's client, `v6alt.lab.matrix.client`, polling every 0.2 s).
Target (issue 3): module / stock at most 1.0.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from v6alt.lab.certificates import make_lab_ca
from v6alt.lab.dns_recorder import start_dns_recorder
from v6alt.lab.matrix.homeserver import Homeserver
from v6alt.lab.netns import FlatNet

PASSWORD = "v6alt-bench-password"
TIMEOUT = 120.0


def _timed_round(a: Homeserver, b: Homeserver) -> float:
    alice, bob = a.register("alice", PASSWORD), b.register("bob", PASSWORD)
    room_id = alice.create_room(invite=[])
    start = time.perf_counter()
    alice.invite(room_id, bob.user_id)
    bob.join(room_id, timeout=TIMEOUT)
    text = uuid.uuid4().hex
    alice.send_text(room_id, text)
    bob.wait_text(room_id, text, timeout=TIMEOUT)
    return time.perf_counter() - start


def one_run(net: FlatNet, stock: bool) -> float:
    base = Path(tempfile.mkdtemp(prefix="v6s-invite-"))
    hosts = [net["a"], net["b"]]
    servers: list[Homeserver] = []
    if stock:
        ca = make_lab_ca(base / "ca", "v6alt test CA")
        names = {"a": "hs-a.mesh.test", "b": "hs-b.mesh.test"}
        records = {names[h.name]: str(h.address) for h in hosts}
        for h in hosts:
            servers.append(
                Homeserver(
                    base / h.name, h.address, netns=h.netns, server_name=names[h.name], ca=ca
                )
            )
    else:
        records = {}
        servers = [Homeserver(base / h.name, h.address, netns=h.netns) for h in hosts]
    try:
        for hs, host in zip(servers, hosts, strict=True):
            start_dns_recorder(host, base / f"{host.name}-dns-queries.log", records)
            hs.prepare()
            hs.spawn()
        for hs in servers:
            hs.wait_ready()
        return _timed_round(servers[0], servers[1])
    finally:
        for hs, host in zip(servers, hosts, strict=True):
            hs.stop()
            host.stop()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import synapse

    times: dict[str, list[float]] = {"module": [], "stock": []}
    with FlatNet("v6s-inv-") as net:
        net.add_host("a", "202:6a1f:77::1")
        net.add_host("b", "202:6a1f:77::2")
        for _ in range(args.runs):
            times["stock"].append(one_run(net, stock=True))
            times["module"].append(one_run(net, stock=False))
    module, stock = statistics.median(times["module"]), statistics.median(times["stock"])
    if args.json:
        print(json.dumps({"runs": times, "median": {"module": module, "stock": stock}}))
        return
    print(f"Synapse {synapse.__version__}, {args.runs} cold runs each, median")
    print("| setup | invite to first message on B (s) |")
    print("|---|---:|")
    print(f"| stock Synapse, DNS names, test CA | {stock:.3f} |")
    print(f"| v6alt module, v6.alt names | {module:.3f} |")
    ratio = module / stock
    verdict = "ok" if ratio <= 1.0 else "over"
    print(f"| ratio module / stock | {ratio:.2f} ({verdict}, target <= 1.0) |")


if __name__ == "__main__":
    main()
