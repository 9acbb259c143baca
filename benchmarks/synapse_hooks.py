"""Per-call cost of the Synapse module's hooks, in one process.

Run (in a venv with matrix-synapse and v6alt):

    python benchmarks/synapse_hooks.py [--count 20000] [--repeat 5] [--json]

Each hook is timed as the best of R passes of N calls (process CPU time):
Synapse's own ``FederationPolicyForHTTPS.get_options`` is the baseline, then
the same call through the module for a DNS name (the module's overhead on
names it does not handle) and for a v6.alt name, the v6.alt name resolver,
the .well-known/SRV skip test and the inbound origin check. A federation
request makes one get_options call and one resolver call (new connections
only), and the receiving side one origin check. Target: well under the
milliseconds a federation request costs anyway.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from twisted.internet.interfaces import IResolutionReceiver
from twisted.web.http_headers import Headers
from zope.interface import implementer

import v6alt
from v6alt.policy import Policy
from v6alt.synapse_module.inbound import InboundGate, claimed_origins
from v6alt.synapse_module.module import skip_lookup
from v6alt.synapse_module.outbound import OutboundJudge, SynapseBlocklist
from v6alt.synapse_module.resolver import V6AltNameResolver
from v6alt.synapse_module.synapse_seam import install_federation_seams, unwrap_method
from v6alt.synapse_module.tls import FederationTls, peer_bound_context

NAME = "aiamvog6wthgaq3cisjokoiewu.v6.alt"  # 200:cab8:deb4:ce60:4362:4492:e539:4b5


@implementer(IResolutionReceiver)
class _Receiver:
    def resolutionBegan(self, resolution: object) -> None:
        pass

    def addressResolved(self, address: object) -> None:
        self.address = address

    def resolutionComplete(self) -> None:
        pass


def _best(call: Callable[[], object], count: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(count):
            call()
        best = min(best, time.process_time() - start)
    return best / count


def _synapse_policy() -> Any:
    from synapse.crypto.context_factory import FederationPolicyForHTTPS

    tls = SimpleNamespace(
        federation_ca_trust_root=None,
        federation_client_minimum_tls_version="1",
        federation_verify_certificates=True,
        federation_certificate_verification_whitelist=[],
    )
    return FederationPolicyForHTTPS(SimpleNamespace(tls=tls))  # type: ignore[arg-type]


def measure(count: int, repeat: int) -> list[tuple[str, float]]:
    from synapse.config.server import DEFAULT_IP_RANGE_BLOCKLIST, generate_ip_set
    from synapse.crypto.context_factory import FederationPolicyForHTTPS

    logging.getLogger("v6alt").setLevel(logging.WARNING)
    judge = OutboundJudge(
        Policy(), SynapseBlocklist(generate_ip_set(DEFAULT_IP_RANGE_BLOCKLIST), None)
    )
    policy = _synapse_policy()
    baseline = _best(lambda: policy.get_options(b"matrix.org"), count, repeat)
    results = [("Synapse get_options, DNS name (baseline)", baseline)]

    tls = FederationTls(judge, peer_bound_context("1"))
    install_federation_seams(tls.options_for, skip_lookup)
    try:
        results.append(
            (
                "module get_options, DNS name",
                _best(lambda: policy.get_options(b"matrix.org"), count, repeat),
            )
        )
        results.append(
            (
                "module get_options, v6.alt name",
                _best(lambda: policy.get_options(NAME.encode()), count, repeat),
            )
        )
    finally:
        unwrap_method(FederationPolicyForHTTPS, "get_options")

    resolver = V6AltNameResolver(previous=None, judge=judge)  # type: ignore[arg-type]
    receiver = _Receiver()
    results.append(
        (
            "resolver, v6.alt name",
            _best(lambda: resolver.resolveHostName(receiver, NAME, 8448), count, repeat),
        )
    )
    results.append(
        ("well-known/SRV skip test", _best(lambda: skip_lookup(NAME.encode()), count, repeat))
    )

    gate = InboundGate("log")
    headers = Headers(
        {b"Authorization": [f'X-Matrix origin="{NAME}",key="ed25519:a",sig="x"'.encode()]}
    )
    peer = SimpleNamespace(host="200:cab8:deb4:ce60:4362:4492:e539:4b5")
    request = SimpleNamespace(requestHeaders=headers, getClientAddress=lambda: peer)

    def inbound() -> None:
        for origin in claimed_origins(request):
            gate.check(origin, request, authenticated=False)
        gate.check(NAME, request, authenticated=True)

    results.append(("inbound origin check (log mode)", _best(inbound, count, repeat)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import synapse

    results = measure(args.count, args.repeat)
    if args.json:
        print(json.dumps({name: seconds * 1e6 for name, seconds in results}, indent=2))
        return
    print(
        f"Python {platform.python_version()}, Synapse {synapse.__version__}, "
        f"v6alt {v6alt.__version__}, {args.count} calls, best of {args.repeat}"
    )
    print("| hook | µs per call |")
    print("|---|---:|")
    for name, seconds in results:
        print(f"| {name} | {seconds * 1e6:.1f} |")


if __name__ == "__main__":
    main()
