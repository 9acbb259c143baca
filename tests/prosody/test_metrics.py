"""mod_v6alt's metrics on Prosody's OpenMetrics endpoint, after real federation.

Each server loads mod_http_openmetrics (statistics "internal", collected on
scrape); the test reads http://[::1]:5280/metrics inside the server's
namespace over HTTP and checks that each counter moved by exactly what the
server's own log shows: lookups, trust decisions, a refused never-dial name,
an impostor, and a link cut with the stall recovery. Prosody 13 and 0.12.
"""

from __future__ import annotations

import re
import sys
import time

from tests.metrics_support import Scrape, parse
from v6alt.codec import encode
from v6alt.policy import rule_ids

from .conftest import Site, SiteFactory, messages_both_ways
from .servers import LOOKUP_URL, Mesh, ProsodyRelease, wait_until

A_ADDRESS = "200:7671::a"
B_ADDRESS = "200:7671::b"
IMPOSTOR_ADDRESS = "200:7671::c"
LOOPBACK = "a-e.v6.alt"  # ::1: never dialled

METRICS = """
statistics = "internal"
statistics_interval = "manual"
http_ports = { 5280 }
http_interfaces = { "::1" }
v6alt_s2s_stall_timeout = 3
v6alt_s2s_probe_interval = 1
"""
OPENMETRICS = '\tmodules_enabled = { "http_openmetrics" }'
_SCRAPE = (
    "import sys, urllib.request;"
    "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())"
)
P = "prosody_mod_v6alt__"


def scrape(site: Site) -> Scrape:
    result = site.node.run([sys.executable, "-c", _SCRAPE, "http://[::1]:5280/metrics"])
    return parse(result.stdout)


def count(site: Site, pattern: str, start: int = 0) -> int:
    return len(re.findall(pattern, site.server.log_text()[start:]))


def moved(after: Scrape, before: Scrape, name: str, **labels: str) -> float:
    return after.value(P + name, **labels) - before.value(P + name, **labels)


def metrics_site(site: SiteFactory, name: str, address: str, **kwargs: object) -> Site:
    return site(name, address, settings=METRICS, host_settings=OPENMETRICS, **kwargs)


def test_every_family_is_exported_from_the_start(site: SiteFactory) -> None:
    a = metrics_site(site, "a", A_ADDRESS)
    got = scrape(a)
    for family in ("trust_decisions", "stalled_streams", "recoveries", "stanzas"):
        assert got.has_family(P + family), family
    assert got.label_values(P + "trust_decisions_total", "kind") == {
        "address_bound",
        "pinned",
        "any_certificate",
        "ca",
        "no_tls",
        "refused",
    }
    assert got.value(P + "stalled_streams_total") == 0
    # Prosody's own metrics are on the same endpoint.
    assert any(name.startswith("prosody_") and P not in name for name in got.names())


def test_federation_refusals_and_a_link_cut_move_the_counters(lab: Mesh, site: SiteFactory) -> None:
    a = metrics_site(site, "a", A_ADDRESS)
    b = metrics_site(site, "b", B_ADDRESS)
    alice, bob = a.user("alice"), b.user("bob")
    a0, b0 = scrape(a), scrape(b)

    # A delivered message each way: one outgoing stream each, trusted by address.
    messages_both_ways(alice, bob, "there", "back")
    time.sleep(1)  # the pings after the messages are answered
    # A refused never-dial name.
    alice.send(f"mallory@{LOOPBACK}", "never sent")
    alice.wait_error(f"mallory@{LOOPBACK}")
    # An impostor claiming a v6.alt name that is not its address.
    impostor = lab.add_node("m", IMPOSTOR_ADDRESS)
    claimed = encode("200:7671::99")
    assert "<policy-violation" in impostor.open_stream(a.node.address, claimed, a.domain)

    a1, b1 = scrape(a), scrape(b)
    dialled = count(
        a, rf"Dialling {re.escape(b.domain)} at \[{B_ADDRESS}\]:5269 \(v6.alt, no SRV\)"
    )
    assert dialled >= 1
    assert moved(a1, a0, "lookups_total", endpoint="resolve", verdict="allowed",
                 rule="allow_yggdrasil") == dialled  # fmt: skip
    not_dialled = count(a, rf"Not dialling {re.escape(LOOPBACK)}: never-dial: loopback")
    assert not_dialled >= 1
    assert moved(a1, a0, "lookups_total", endpoint="resolve", verdict="refused",
                 rule="never_dial_loopback") == not_dialled  # fmt: skip
    for server, after, before in ((a, a1, a0), (b, b1, b0)):
        trusted = count(server, r"Trusting \S+ at \[[0-9a-f:]+\] \(ip_bound\)")
        assert trusted >= 1
        assert moved(after, before, "trust_decisions_total", kind="address_bound") == trusted
    refused = count(a, rf"Refusing v6.alt peer {re.escape(claimed)} at \[{IMPOSTOR_ADDRESS}\]")
    assert refused == 1
    assert moved(a1, a0, "trust_decisions_total", kind="refused") == refused
    assert moved(a1, a0, "lookups_total", endpoint="peer", verdict="mismatch") == refused
    assert a1.label_values(P + "lookups_total", "rule") <= rule_ids() | {""}
    for labels in a1.series(P + "lookups_total") + a1.series(P + "trust_decisions_total"):
        assert not any("v6.alt" in v or "::" in v for v in labels.values())

    # A link cut: the stream stalls, new stanzas are held, everything is resent.
    lab.set_link(b.node, up=False)
    for i in range(3):
        alice.send(bob.jid, f"cut #{i}")
    wait_until(lambda: count(a, "no answer to a ping") == 1, 30, "the stall")
    for i in range(2):
        alice.send(bob.jid, f"held #{i}")
    lab.set_link(b.node, up=True)
    for body in ("cut #0", "cut #1", "cut #2", "held #0", "held #1"):
        bob.wait_message(body, timeout=60)
    resend = re.search(r"resending (\d+) unconfirmed and (\d+) held", a.server.log_text())
    assert resend is not None
    a2, b2 = scrape(a), scrape(b)
    assert moved(a2, a1, "stalled_streams_total") == 1
    assert moved(a2, a1, "recoveries_total") == 1
    assert moved(a2, a1, "stanzas_total", event="held") == int(resend.group(2)) == 2
    assert moved(a2, a1, "stanzas_total", event="resent") == int(resend.group(1))
    assert moved(a2, a1, "stanzas_total", event="bounced") == 0
    dropped = count(b, r"Dropping a message from \S+ \(id \S+\) received twice")
    assert moved(b2, b1, "stanzas_total", event="duplicate_dropped") == dropped


def test_prosody012_exports_the_same_metrics(site: SiteFactory, prosody012: ProsodyRelease) -> None:
    old = metrics_site(site, "old", A_ADDRESS, release=prosody012)
    new = metrics_site(site, "new", B_ADDRESS)
    before = scrape(old)
    assert before.has_family(P + "trust_decisions")
    olga, nina = old.user("olga"), new.user("nina")
    messages_both_ways(olga, nina, "from 0.12", "from 13")
    after = scrape(old)
    # 0.12 dials through the sidecar's DNS (no s2sout-pre-connect): its lookups
    # are the certificate checks of incoming and outgoing streams.
    trusted = count(old, rf"Trusting {re.escape(new.domain)} at \[{B_ADDRESS}\] \(ip_bound\)")
    assert trusted >= 1
    assert moved(after, before, "trust_decisions_total", kind="address_bound") == trusted
    peer_lookups = moved(after, before, "lookups_total", endpoint="peer", verdict="allowed",
                         rule="allow_yggdrasil")  # fmt: skip
    assert 1 <= peer_lookups <= trusted
    assert moved(after, before, "lookups_total", endpoint="resolve") == 0


def test_a_pinned_peer_is_counted_as_pinned(lab: Mesh, site: SiteFactory) -> None:
    """Servers on public-range addresses (pinning: enforce by default): the peer's
    TLS key is judged by its pin, and the trust is counted as pinned."""
    sites = []
    for name, address in (("pa", "2a0f:6a1f:7801::1"), ("pb", "2a0f:6a1f:7801::2")):
        pins = f'pinning:\n  default: enforce\n  file: "{lab.root / name / "xmpp-pins.json"}"\n'
        sites.append(metrics_site(site, name, address, sidecar_yaml=pins))
    a, b = sites
    alice, bob = a.user("alice"), b.user("bob")
    before, sidecar_before = scrape(a), _scrape_sidecar(a)
    messages_both_ways(alice, bob, "pinned there", "pinned back")
    after, sidecar_after = scrape(a), _scrape_sidecar(a)
    trusted = count(a, rf"Trusting {re.escape(b.domain)} at \[2a0f:6a1f:7801::2\] \(ip_bound\)")
    assert trusted >= 1
    assert moved(after, before, "trust_decisions_total", kind="pinned") == trusted
    assert moved(after, before, "trust_decisions_total", kind="address_bound") == 0
    pin_lookups = moved(after, before, "lookups_total", endpoint="pin", verdict="accepted")
    assert pin_lookups == trusted
    # The sidecar counted the same questions on its side.
    name = "v6alt_sidecar_lookup_requests_total"
    answered = sidecar_after.value(name, endpoint="pin", verdict="accepted") - sidecar_before.value(
        name, endpoint="pin", verdict="accepted"
    )
    assert answered == pin_lookups


def _scrape_sidecar(site: Site) -> Scrape:
    result = site.node.run([sys.executable, "-c", _SCRAPE, f"{LOOKUP_URL}/metrics"])
    return parse(result.stdout)
