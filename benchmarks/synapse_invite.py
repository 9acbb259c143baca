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
B joining, A sending a message, until B's sync returns that message.
Target (issue 3): module / stock at most 1.0.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "synapse_module"))

from v6s_homeserver import Homeserver, make_ca, quote
from v6s_netns import Mesh


def _sync(hs: Homeserver, token: str, since: str | None) -> dict[str, Any]:
    query = f"&since={quote(since)}" if since else ""
    status, body = hs.request("GET", f"/_matrix/client/v3/sync?timeout=5000{query}", token=token)
    assert status == 200, body
    return dict(body)


def _timed_round(a: Homeserver, b: Homeserver) -> float:
    alice, bob = a.register("alice"), b.register("bob")
    status, body = a.request(
        "POST", "/_matrix/client/v3/createRoom", {"preset": "private_chat"}, token=alice
    )
    assert status == 200, body
    room_id = body["room_id"]
    since = _sync(b, bob, None)["next_batch"]

    start = time.perf_counter()
    status, body = a.request(
        "POST",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/invite",
        {"user_id": b.user_id("bob")},
        token=alice,
    )
    assert status == 200, body
    while True:
        body = _sync(b, bob, since)
        since = body["next_batch"]
        if room_id in body.get("rooms", {}).get("invite", {}):
            break
    status, body = b.request(
        "POST",
        f"/_matrix/client/v3/join/{quote(room_id)}?server_name={quote(a.server_name)}",
        {},
        token=bob,
    )
    assert status == 200, body
    text = uuid.uuid4().hex
    status, body = a.request(
        "PUT",
        f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/{uuid.uuid4().hex}",
        {"msgtype": "m.text", "body": text},
        token=alice,
    )
    assert status == 200, body
    while True:
        body = _sync(b, bob, since)
        since = body["next_batch"]
        timeline = body.get("rooms", {}).get("join", {}).get(room_id, {}).get("timeline", {})
        if any(e.get("content", {}).get("body") == text for e in timeline.get("events", [])):
            return time.perf_counter() - start


def one_run(mesh: Mesh, stock: bool) -> float:
    base = Path(tempfile.mkdtemp(prefix="v6s-invite-"))
    servers: list[Homeserver] = []
    if stock:
        ca = make_ca(base / "ca")
        names = {"a": "hs-a.mesh.test", "b": "hs-b.mesh.test"}
        records = {names[h]: str(mesh[h].address) for h in names}
        extra = {"modules": [], "federation_custom_ca_list": [str(ca / "ca.crt")]}
        for h in ("a", "b"):
            servers.append(
                Homeserver(mesh[h], base / h, server_name=names[h], ca_dir=ca, extra=extra)
            )
    else:
        records = {}
        servers = [Homeserver(mesh[h], base / h) for h in ("a", "b")]
    try:
        for hs in servers:
            hs.host.start_dns_recorder(hs.dns_log, records)
            hs.prepare()
            hs.spawn()
        for hs in servers:
            hs.wait_ready()
        return _timed_round(servers[0], servers[1])
    finally:
        for hs in servers:
            hs.stop()
            hs.host.stop()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import synapse

    times: dict[str, list[float]] = {"module": [], "stock": []}
    with Mesh(("a", "b"), tag="inv") as mesh:
        for _ in range(args.runs):
            times["stock"].append(one_run(mesh, stock=True))
            times["module"].append(one_run(mesh, stock=False))
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
