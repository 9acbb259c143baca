"""A burst of new v6.alt destinations: every lookup is answered, none is refused.

Each new s2s destination is one lookup-service request from mod_v6alt. A user
whose roster spans many v6.alt servers, or a server coming back with many
peers, makes hundreds at once. The sidecar keeps at most
`lookup_connections` open and closes the one longest without a complete
request for a new one over that (the slow-client defence, docs/dns.md).
mod_v6alt keeps at most `v6alt_lookup_concurrency` (16) lookups open and
queues the rest. Here the sidecar's limit is 20, just above that, so a burst
of 1,000 that escaped the queue (1,000 connects at once) would be evicted
whatever the machine's speed; this checks that none is, that every lookup is
answered, and that unreachable destinations are held, not bounced.
"""

from __future__ import annotations

import re
import sys
from ipaddress import IPv6Address

from v6alt.codec import encode

from .conftest import Site, SiteFactory
from .servers import LOOKUP_PORT, Mesh, wait_until
from .test_stall_recovery import _errors

A_ADDRESS = "200:7680::a"
# Unrouted inside 200::/7: the policy allows them, the kernel has no route.
BURST_PREFIX = IPv6Address("200:7681::")
BURST = 1000
SIDECAR_YAML = """\
sidecar:
  limits:
    lookup_connections: 20
"""
DIALLING = re.compile(r"Dialling (\S+\.v6\.alt) at")
UNAVAILABLE = "v6alt lookup service at"


def _sidecar_metric(site: Site, name: str, labels: str) -> float:
    argv = [
        sys.executable,
        "-c",
        "import urllib.request, sys; sys.stdout.write(urllib.request.urlopen("
        f"'http://[::1]:{LOOKUP_PORT}/metrics', timeout=5).read().decode())",
    ]
    text = site.node.run(argv).stdout
    pattern = re.compile(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", re.M)
    found = pattern.search(text)
    return float(found.group(1)) if found else 0.0


def test_a_burst_of_new_destinations_gets_every_lookup_answered(
    lab: Mesh, site: SiteFactory
) -> None:
    a = site("a", A_ADDRESS, sidecar_yaml=SIDECAR_YAML)
    alice = a.user("alice")
    domains = [encode(BURST_PREFIX + i + 1) for i in range(BURST)]
    for domain in domains:
        alice.send(f"peer@{domain}", "one of many")

    def settled() -> int:
        log = a.server.log_text()
        return len(set(DIALLING.findall(log))) + log.count(UNAVAILABLE)

    wait_until(lambda: settled() >= BURST, 120, f"{BURST} lookups answered or failed")
    log = a.server.log_text()
    assert UNAVAILABLE not in log, log[log.find(UNAVAILABLE) - 200 :][:600]
    assert set(DIALLING.findall(log)) == set(domains)
    assert (
        _sidecar_metric(a, "v6alt_sidecar_lookup_connections_closed_total", 'reason="evicted"') == 0
    )
    # Unreachable peers are held, not bounced: nothing came back to alice.
    assert _errors(alice) == []
