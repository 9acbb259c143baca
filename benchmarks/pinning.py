"""The cost of pinning: per check in one process, and federation requests/s of real Synapses.

Run (in a venv with matrix-synapse and v6alt; the ``synapse`` part as root):

    python benchmarks/pinning.py [--part micro|synapse|all] [--write-readme] [--json]

micro (in-process, ``time.perf_counter``, best of 5 passes):

- the TLS pin check of a known peer (the hot path of every new federation
  connection: a ``stat`` of the pin file and a lookup), with 1, 100, 1,000
  and 10,000 pins in the file;
- a first contact (the pin written: lock, read, rewrite, fsync, rename) with
  the same file sizes;
- the SPKI hash of a certificate, and the key-response check (two ed25519
  signature checks against the pinned key).

synapse (real homeservers A and B in network namespaces on one public-range
link, 2a0f:6a1f:7900::/64, pinning ``enforce`` vs ``off`` on both, fresh
servers for every run):

- first contact: the first profile query from a user on A to one on B,
  which makes A open TLS to B (and pin it) and B fetch A's keys (and pin
  them), against the same with pinning off;
- requests/s of profile queries A -> B (each a federation request) with 1, 4
  and 16 clients at once, for 5 s each after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# benchmarks/ is on sys.path: the script runs as `python benchmarks/pinning.py`.
from report import machine_line, spread, write_section

HEADING = "## Pinning"
PUBLIC = "2a0f:6a1f:7900::"
PASSWORD = "v6alt-bench-password"
SIZES = (1, 100, 1000, 10000)
CLIENTS = (1, 4, 16)
#: Federation rate limits out of the way: the benchmark measures the request path.
UNLIMITED = {
    "rc_federation": {
        "window_size": 1000,
        "sleep_limit": 100000,
        "sleep_delay": 0,
        "reject_limit": 100000,
        "concurrent": 1000,
    },
    # Synapse 1.16x limits profile lookups per user (rc_profile): lifted too.
    "rc_profile": {"per_second": 100000, "burst_count": 100000},
}


def _best(call: Callable[[], object], count: int, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(count):
            call()
        best = min(best, (time.perf_counter() - start) / count)
    return best


# --- micro ------------------------------------------------------------------


def micro() -> dict[str, Any]:
    from cryptography import x509
    from OpenSSL import crypto
    from signedjson.key import encode_verify_key_base64, generate_signing_key, get_verify_key
    from signedjson.sign import sign_json

    from v6alt.codec import encode
    from v6alt.config import parse_config
    from v6alt.lab.certificates import self_signed_certificate
    from v6alt.policy import Policy
    from v6alt.synapse_module.pinning import PinGuard, spki_sha256

    results: dict[str, Any] = {"sizes": {}}
    with tempfile.TemporaryDirectory(prefix="v6alt-pin-bench-") as tmp:
        root = Path(tmp)
        self_signed_certificate("bench.v6.alt", root / "tls.key", root / "tls.crt")
        pem = (root / "tls.crt").read_bytes()
        cert = crypto.X509.from_cryptography(x509.load_pem_x509_certificate(pem))
        spki = spki_sha256(cert)
        results["spki_hash_us"] = _best(lambda: spki_sha256(cert), 2000) * 1e6
        policy = Policy(parse_config({}))
        for size in SIZES:
            results["sizes"][size] = _micro_size(root / f"pins-{size}.json", size, policy, spki)
        # The key response check: a response signed by the pinned key.
        key = generate_signing_key("a")
        key_id = f"ed25519:{key.version}"
        server = encode("2a0f:6a1f:7900::2")
        response = sign_json(
            {
                "server_name": server,
                "valid_until_ts": 2**40,
                "verify_keys": {key_id: {"key": encode_verify_key_base64(get_verify_key(key))}},
                "old_verify_keys": {},
            },
            server,
            key,
        )
        guard = PinGuard(policy, str(root / "keys.json"))
        guard.check_key_response(server, response)  # first contact: pinned
        results["key_response_us"] = (
            _best(lambda: guard.check_key_response(server, response), 500) * 1e6
        )
    return results


def _micro_size(path: Path, size: int, policy: Any, spki: str) -> dict[str, float]:
    from v6alt.codec import encode
    from v6alt.pins import Pin, pins_to_json
    from v6alt.synapse_module.pinning import PinGuard

    keys = {"ed25519:a": "K" * 43}
    pins = {
        f"p{i}.v6.alt": Pin(f"p{i}.v6.alt", "matrix", "2a00::1", "a" * 64, keys)
        for i in range(size - 1)
    }
    peer, address = encode(f"{PUBLIC}2"), f"{PUBLIC}2"
    pins[peer] = Pin(peer, "matrix", address, spki, {})
    path.write_text(pins_to_json(pins))
    guard = PinGuard(policy, str(path))
    assert guard.check_tls(peer, address, spki, "enforce")
    match = _best(lambda: guard.check_tls(peer, address, spki, "enforce"), 2000)
    counter = iter(range(10**9))

    def first_contact() -> None:
        name = f"new{next(counter)}.v6.alt"
        assert guard.check_tls(name, f"{PUBLIC}3", spki, "enforce")
        guard.store.forget(name)  # keeps the size; one more write of the same cost

    first = _best(first_contact, 20 if size < 10000 else 5, 3) / 2
    return {
        "match_us": match * 1e6,
        "first_contact_ms": first * 1e3,
        "file_kib": path.stat().st_size / 1024,
    }


def micro_lines(r: dict[str, Any]) -> list[str]:
    lines = [
        "| pins in the file | file, KiB | known peer (TLS pin matches), µs "
        "| first contact (pin written), ms |",
        "|---:|---:|---:|---:|",
    ]
    for size, row in r["sizes"].items():
        lines.append(
            f"| {int(size):,} | {row['file_kib']:.0f} | {row['match_us']:.1f} | "
            f"{row['first_contact_ms']:.2f} |"
        )
    lines += [
        "",
        f"SPKI hash of a certificate: {r['spki_hash_us']:.1f} µs; key response check "
        f"(signed by the pinned key, verified against it): {r['key_response_us']:.0f} µs.",
    ]
    return lines


# --- real homeservers -------------------------------------------------------


def synapse(runs: int, seconds: float) -> dict[str, Any]:
    from v6alt.lab.dns_recorder import start_dns_recorder
    from v6alt.lab.netns import FlatNet

    results: dict[str, Any] = {}
    with FlatNet(f"v6pb-{os.getpid() % 100000}-") as net:
        net.add_host("a", f"{PUBLIC}1")
        net.add_host("b", f"{PUBLIC}2")
        for host in ("a", "b"):
            start_dns_recorder(net[host], Path(tempfile.mkdtemp()) / "dns.log")
        modes = ("off", "enforce")
        for mode in modes:
            results[mode] = {"first": [], "rates": {c: [] for c in CLIENTS}}
        # Modes alternate run by run, so both see the same machine load.
        for _ in range(runs):
            for mode in modes:
                first, rates = _one_run(net, mode, seconds)
                results[mode]["first"].append(first)
                for clients, rate in rates.items():
                    results[mode]["rates"][clients].append(rate)
    return results


def _one_run(net: Any, mode: str, seconds: float) -> tuple[float, dict[int, float]]:
    from v6alt.lab.matrix.client import quote
    from v6alt.lab.matrix.homeserver import Homeserver

    base = Path(tempfile.mkdtemp(prefix="v6alt-pin-bench-"))
    config = {"pinning": {"default": mode}}
    servers = [
        Homeserver(base / name, net[name].address, netns=net[name].netns,
                   module_config=config, extra=UNLIMITED)
        for name in ("a", "b")
    ]  # fmt: skip
    try:
        for hs in servers:
            hs.prepare()
            hs.spawn()
        for hs in servers:
            hs.wait_ready()
        a, b = servers
        alice = a.register("alice", PASSWORD)
        bob_id = b.register("bob", PASSWORD).user_id
        path = f"/_matrix/client/v3/profile/{quote(bob_id)}"
        start = time.perf_counter()
        status, body = a.request("GET", path, token=alice.token)
        first = time.perf_counter() - start
        assert status == 200, body
        pins = base / "a" / "v6alt-pins.json"
        assert pins.exists() == (mode == "enforce"), pins
        rates = {c: _rate(a, path, alice.token, c, seconds) for c in CLIENTS}
    finally:
        for hs in servers:
            hs.stop()
    return first, rates


def _rate(hs: Any, path: str, token: str, clients: int, seconds: float) -> float:
    for _ in range(5):  # warm-up: connections open, caches filled
        hs.request("GET", path, token=token)
    done = [0] * clients
    failures = [0] * clients
    codes: set[str] = set()
    stop = time.perf_counter() + seconds

    def worker(i: int) -> None:
        while time.perf_counter() < stop:
            status, body = hs.request("GET", path, token=token)
            if status == 200:
                done[i] += 1
            else:
                failures[i] += 1
                codes.add(f"{status} {str(body)[:120]}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    begin = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - begin
    if sum(failures):
        raise RuntimeError(
            f"{sum(failures)} of {sum(done) + sum(failures)} requests failed: {codes}"
        )
    return sum(done) / elapsed


def synapse_lines(r: dict[str, Any]) -> list[str]:
    off, on = r["off"], r["enforce"]
    lines = [
        "| real homeservers, A -> B | pinning off | pinning enforce | enforce / off |",
        "|---|---:|---:|---:|",
        f"| first contact: first profile query, s | {spread(off['first'])} | "
        f"{spread(on['first'])} | "
        f"{statistics.median(on['first']) / statistics.median(off['first']):.2f} |",
    ]
    for clients in CLIENTS:
        a = off["rates"][clients] if clients in off["rates"] else off["rates"][str(clients)]
        b = on["rates"][clients] if clients in on["rates"] else on["rates"][str(clients)]
        lines.append(
            f"| profile queries/s, {clients} client(s) | {statistics.median(a):.0f} | "
            f"{statistics.median(b):.0f} | {statistics.median(b) / statistics.median(a):.2f} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("micro", "synapse", "all"), default="all")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    if args.part in ("micro", "all"):
        results["micro"] = micro()
    if args.part in ("synapse", "all"):
        results["synapse"] = synapse(args.runs, args.seconds)
    if args.json:
        print(json.dumps(results, indent=2))
    lines: list[str] = []
    if "micro" in results:
        lines += [*micro_lines(results["micro"]), ""]
    if "synapse" in results:
        lines += [*synapse_lines(results["synapse"]), ""]
    print("\n".join(lines))
    if args.write_readme:
        import synapse as synapse_package

        intro = (
            "`sudo python benchmarks/pinning.py --write-readme` (root for the real "
            "homeservers; `matrix-synapse` in the same venv as v6alt; about 3 minutes)."
        )
        body = "\n".join(
            [intro, "", machine_line(f"Synapse {synapse_package.__version__}"), "", *lines]
        )
        write_section(HEADING, body + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
