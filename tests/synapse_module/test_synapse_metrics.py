"""The module's metrics on a real Synapse's metrics listener, after real federation.

Two homeservers X and Y on their own link, each with Synapse's ``metrics``
listener. X and Y federate a message (address-bound trust both ways, the
origin binding on the receiving side), X refuses a never-dial name, Y's link
is cut and comes back (X backs off, and its probe clears the backoff), and X
meets Z on a public-range address, whose TLS and signing keys it pins. After each step the
test scrapes the listener over HTTP and checks that the counters moved by
exactly what the servers' own logs show happened.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator

import pytest

pytest.importorskip("synapse.app.homeserver", reason="matrix-synapse is not installed")
from tests.metrics_support import Scrape, parse
from v6alt.lab.netns import FlatNet
from v6alt.policy import rule_ids
from v6alt.synapse_module.metrics import INBOUND_RESULTS, NAME_RULES, TRUST_KINDS

from .homeserver import SUBNET, Homeserver
from .matrix import has_message, send, shared_room

pytestmark = pytest.mark.integration

METRICS_PORT = 19093
PUBLIC = "2a0f:6a1f:7701::"  # outside the meshes: pinning enforce by default
DELIVERY_TIMEOUT_S = 90.0
LOOPBACK_NAME = "a-e.v6.alt"  # ::1, never dialled
_SCRAPE = (
    "import sys, urllib.request;"
    "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())"
)


def metrics_server(host: object, tree: object, **settings: object) -> Homeserver:
    return Homeserver(
        host,  # type: ignore[arg-type]
        tree,  # type: ignore[arg-type]
        extra={"enable_metrics": True, **settings.pop("extra", {})},  # type: ignore[dict-item]
        extra_listeners=[
            {"type": "metrics", "port": METRICS_PORT, "bind_addresses": ["::1"]},
        ],
        **settings,
    )


def scrape(hs: Homeserver) -> Scrape:
    """Synapse's metrics listener, read over HTTP from inside the server's namespace."""
    result = hs.host.run([sys.executable, "-c", _SCRAPE, f"http://[::1]:{METRICS_PORT}/metrics"])
    return parse(result.stdout)


def count(hs: Homeserver, pattern: str, start: int) -> int:
    return len(re.findall(pattern, hs.log_text()[start:]))


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Homeserver, Homeserver, FlatNet, Homeserver]]:
    # X gives up on a request after 15 s instead of 60: a transaction stuck on the
    # connection the cut left open then fails, and X backs off, a minute sooner.
    quick_retries = {"max_long_retries": 1, "max_long_retry_delay": 500, "client_timeout": "15s"}
    with FlatNet(f"v6m-{os.getpid() % 100000}-") as net:
        net.add_host("x", f"{SUBNET}1", f"{PUBLIC}1")
        net.add_host("y", f"{SUBNET}2")
        net.add_host("z", f"{PUBLIC}3", f"{SUBNET}3")
        x = metrics_server(
            net["x"], tmp_path_factory.mktemp("hs-x"), extra={"federation": quick_retries}
        )
        y = metrics_server(net["y"], tmp_path_factory.mktemp("hs-y"))
        z = Homeserver(net["z"], tmp_path_factory.mktemp("hs-z"))
        try:
            for hs in (x, y, z):
                hs.prepare()
                hs.spawn()
            for hs in (x, y, z):
                hs.wait_ready()
            yield x, y, net, z
        finally:
            for hs in (x, y, z):
                hs.stop()


def test_every_family_is_on_the_listener_from_the_start(
    servers: tuple[Homeserver, Homeserver, FlatNet, Homeserver],
) -> None:
    x, _, _, _ = servers
    got = scrape(x)
    for family in (
        "v6alt_synapse_resolutions",
        "v6alt_synapse_tls_trust_decisions",
        "v6alt_synapse_inbound_origins",
        "v6alt_synapse_recovery_probes",
        "v6alt_synapse_recovery_peers_back",
        "v6alt_synapse_recovery_clear_seconds",
        "v6alt_synapse_recovery_backed_off_destinations",
    ):
        assert got.has_family(family), family
    # Zero-valued children exist before anything happened, labelled by this server.
    assert got.label_values("v6alt_synapse_tls_trust_decisions_total", "kind") == set(TRUST_KINDS)
    assert got.label_values("v6alt_synapse_inbound_origins_total", "result") == set(INBOUND_RESULTS)
    assert got.label_values("v6alt_synapse_recovery_probes_total", "server_name") == {x.server_name}
    # Synapse's own metrics are on the same listener.
    assert any(name.startswith("synapse_") for name in got.names())


def test_federation_refusal_and_recovery_move_the_counters(
    servers: tuple[Homeserver, Homeserver, FlatNet, Homeserver],
) -> None:
    x, y, net, _ = servers
    alice, bob = x.register("alice"), y.register("bob")
    x_mark, y_mark = x.log_mark(), y.log_mark()
    x0, y0 = scrape(x), scrape(y)

    # 1. A delivered message, X -> Y.
    room_id = shared_room(x, alice, y, bob, "bob")
    send(x, alice, room_id, "counted")
    y.wait_for("the message on Y", lambda: has_message(y, bob, room_id, "counted"), timeout=60)
    y.wait_for_log(rf"Clearing partial-state flag for {re.escape(room_id)}", timeout=60)

    # 2. A refused never-dial name: an invite to a user on ::1.
    status, _ = x.request(
        "POST",
        f"/_matrix/client/v3/rooms/{room_id}/invite",
        {"user_id": f"@mallory:{LOOPBACK_NAME}"},
        token=alice,
    )
    assert status != 200
    x.wait_for_log(rf"refused to dial {re.escape(LOOPBACK_NAME)} ", start=x_mark)

    x1, y1 = scrape(x), scrape(y)
    resolutions = "v6alt_synapse_resolutions_total"
    trust = "v6alt_synapse_tls_trust_decisions_total"
    inbound = "v6alt_synapse_inbound_origins_total"

    def moved(after: Scrape, before: Scrape, name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    # Allowed destinations, judged at both stages, under the Yggdrasil rule.
    for stage in ("tls_options", "resolver"):
        assert moved(x1, x0, resolutions, stage=stage, verdict="allowed", rule="allow_yggdrasil")
    # Every refusal of the loopback name is one log line, and one count.
    refusals = count(x, rf"refused to dial {re.escape(LOOPBACK_NAME)} \(address ::1\)", x_mark)
    assert refusals >= 1
    assert moved(x1, x0, resolutions, verdict="refused", rule="never_dial_loopback") == refusals
    assert moved(x1, x0, resolutions, verdict="refused") == refusals
    # Every connection to Y was trusted by address: one log line and one count each.
    accepted = count(x, r"TLS peer \S+ accepted for \S+ without CA check \(ip_bound", x_mark)
    assert accepted >= 1
    assert moved(x1, x0, trust, kind="address_bound") == accepted
    assert moved(x1, x0, trust, kind="refused") == 0
    assert moved(y1, y0, trust, kind="address_bound") >= 1  # Y dialled X back (the join)
    # Y checked the origin of every request X signed: each matched X's address.
    y.wait_for(
        "Y's origin checks to match its access log",
        lambda: (
            scrape(y).value(inbound, result="match") - y0.value(inbound, result="match")
            == count(y, rf"\{{{re.escape(x.server_name)}\}}", y_mark)
        ),
        timeout=20,
    )
    assert count(y, rf"\{{{re.escape(x.server_name)}\}}", y_mark) >= 1
    assert moved(scrape(y), y0, inbound, result="mismatch_logged") == 0
    # Bounded labels: rule ids from the fixed set only, no peer name anywhere.
    for got in (x1, y1):
        assert got.label_values(resolutions, "rule") <= rule_ids() | set(NAME_RULES)
        for labels in got.series(resolutions) + got.series(trust) + got.series(inbound):
            assert set(labels) <= {"server_name", "stage", "verdict", "rule", "kind", "result"}
            assert labels["server_name"] in (x.server_name, y.server_name)

    # 3. Y's link is cut and comes back: X backs off, its probe finds Y and clears it.
    # X gives up a connection attempt after 3 SYNs (7 s) instead of the kernel's 7
    # (over 2 minutes), so the backoff starts soon after the cut.
    x.host.run(["sysctl", "-q", "-w", "net.ipv4.tcp_syn_retries=2"])
    net.set_link(y.host, up=False)
    mark = x.log_mark()
    send(x, alice, room_id, "sent while Y was away")
    x.wait_for_log(
        rf"Connection to {re.escape(y.server_name)} was unsuccessful .*; backoff now \d+",
        start=mark,
        timeout=2 * DELIVERY_TIMEOUT_S,
    )
    x.wait_for(
        "a failed probe of Y",
        lambda: count(x, r"v6alt: probe of \[\S+\]:8448 failed", mark) >= 1,
        timeout=30,
    )
    # Probes start while the transaction is still retrying; the gauge follows the
    # backoff at the recovery's next read of the destinations table.
    x.wait_for(
        "Y counted as backed off",
        lambda: scrape(x).value("v6alt_synapse_recovery_backed_off_destinations") >= 1,
        timeout=30,
    )
    # Any request Y signs ends X's backoff as well (Synapse does that on every
    # authenticated inbound request): Y may not open connections to X's
    # federation port until X's probe has found Y. The probe's own connection
    # (to Y's port, answered from it) is not affected.
    no_dial = ["ip", "-6", "rule", "add", "to", f"{x.address}/128", "dport", "8448", "prohibit"]
    y.host.run(no_dial)
    try:
        net.set_link(y.host, up=True)
        x.wait_for_log(
            rf"v6alt: {re.escape(y.server_name)} is reachable again at .*backoff cleared",
            start=mark,
            timeout=DELIVERY_TIMEOUT_S,
        )
    finally:
        y.host.run(["ip", "-6", "rule", "del", *no_dial[4:]])
    y.wait_for(
        "the queued message on Y",
        lambda: has_message(y, bob, room_id, "sent while Y was away"),
        timeout=DELIVERY_TIMEOUT_S,
    )
    x3 = scrape(x)
    back = count(x, r"is reachable again at .*backoff cleared", mark)
    failed = count(x, r"v6alt: probe of \[\S+\]:8448 failed", mark)
    assert back == 1
    assert moved(x3, x1, "v6alt_synapse_recovery_peers_back_total") == back
    assert moved(x3, x1, "v6alt_synapse_recovery_probes_total", result="connected") == back
    assert moved(x3, x1, "v6alt_synapse_recovery_probes_total", result="failed") == failed
    assert moved(x3, x1, "v6alt_synapse_recovery_clear_seconds_count") == back
    # Y came back after the last failed probe: the clear time is at most a probe round
    # (5 s) plus the probe's own timeout, and more than nothing.
    seconds = moved(x3, x1, "v6alt_synapse_recovery_clear_seconds_sum")
    assert 0 < seconds < 15


def test_a_pinned_peer_counts_its_pin_checks_and_pinned_trust(
    servers: tuple[Homeserver, Homeserver, FlatNet, Homeserver],
) -> None:
    x, _, _, z = servers
    xena, zed = x.register("xena"), z.register("zed")
    mark = x.log_mark()
    before = scrape(x)
    room_id = shared_room(x, xena, z, zed, "zed")
    send(x, xena, room_id, "pinned")
    z.wait_for("the message on Z", lambda: has_message(z, zed, room_id, "pinned"), timeout=60)
    after = scrape(x)
    pins = "v6alt_synapse_pin_checks_total"

    def moved(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    # Z's TLS key and signing key were pinned on first contact, then matched.
    assert moved(pins, check="tls", status="new", result="accepted") == 1
    assert moved(pins, check="keys", status="new", result="accepted") == 1
    assert moved(pins, status="mismatch") == 0
    assert moved(pins, result="refused") == 0
    # Every connection to Z: trusted by its address and its pinned key, one count each.
    address = re.escape(str(z.address))
    trusted = count(x, rf"TLS peer {address} accepted for \S+ without CA check \(ip_bound", mark)
    assert trusted >= 1
    assert moved("v6alt_synapse_tls_trust_decisions_total", kind="pinned") == trusted
    assert moved(pins, check="tls") == trusted
