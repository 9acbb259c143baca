"""The sidecar's metric keys from DNS wire bytes: bounded labels for any packet."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("prometheus_client", reason="the sidecar needs v6alt[sidecar]")

from tests.metrics_support import parse
from v6alt.dns_wire import (
    RCODE_NXDOMAIN,
    TYPE_AAAA,
    TYPE_PTR,
    build_query,
    rcode_reply,
)
from v6alt.prosody_bridge.metrics import QTYPE_NAMES, RCODE_NAMES, SidecarMetrics, dns_key

LABELS = set(QTYPE_NAMES.values()) | {"other", "none"}
RCODES = set(RCODE_NAMES) | {"other", "none"}


def test_keys_of_real_queries_and_replies() -> None:
    query = build_query("fiabbgadu-e.v6.alt", TYPE_AAAA)
    assert dns_key("udp", query, b"") == ("udp", "AAAA", "none", False)
    reply = rcode_reply(query, RCODE_NXDOMAIN)
    assert reply is not None
    assert dns_key("tcp", query, reply, cached=True) == ("tcp", "AAAA", "NXDOMAIN", True)
    ptr = build_query("1.0.0.0.ip6.arpa", TYPE_PTR)
    assert dns_key("udp", ptr, b"")[1] == "PTR"
    assert dns_key("udp", build_query("x.v6.alt", 999), b"")[1] == "other"


@given(st.binary(max_size=80), st.binary(max_size=16))
def test_any_bytes_give_a_key_from_the_fixed_sets(query: bytes, reply: bytes) -> None:
    _, qtype, rcode, _ = dns_key("udp", query, reply)
    assert qtype in LABELS
    assert rcode in RCODES


def test_counts_become_samples_at_scrape_time() -> None:
    metrics = SidecarMetrics()
    query = build_query("fiabbgadu-e.v6.alt", TYPE_AAAA)
    metrics.dns[dns_key("udp", query, b"\0\0\x81\x80", cached=True)] += 5
    metrics.dns[dns_key("udp", query, b"\0\0\x81\x80")] += 1
    metrics.lookup("resolve", "allowed", "allow_yggdrasil")
    metrics.lookup("/v1/../../etc", "not_found")  # an unknown endpoint keeps its label fixed
    got = parse(metrics.render().decode())
    assert got.value("v6alt_sidecar_dns_queries_total", qtype="AAAA", rcode="NOERROR") == 6
    assert got.value("v6alt_sidecar_dns_cache_hits_total", qtype="AAAA") == 5
    assert got.value("v6alt_sidecar_lookup_requests_total", endpoint="unknown") == 1
    assert got.label_values("v6alt_sidecar_lookup_requests_total", "endpoint") == {
        "resolve",
        "unknown",
    }
    assert got.value("v6alt_sidecar_info", version=__import__("v6alt").__version__) == 1
