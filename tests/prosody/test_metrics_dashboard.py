"""Every metric the Grafana dashboard queries is exported by the component it belongs to.

packaging/grafana-v6alt.json is read as Grafana would; its PromQL queries are
checked against what a real Synapse (with the module), a real Prosody 13
(mod_v6alt and mod_http_openmetrics) and a real sidecar export, scraped over
HTTP inside their namespaces after a little traffic: each metric name must be
exported, and each label a query groups or filters by must be on its series.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.metrics_support import Scrape, family_of, parse
from v6alt.lab.matrix.homeserver import Homeserver

from .conftest import SiteFactory
from .servers import DNS_PORT, LOOKUP_URL, Mesh

DASHBOARD = Path(__file__).resolve().parents[2] / "packaging" / "grafana-v6alt.json"
SYNAPSE_METRICS_PORT = 19094
_SCRAPE = (
    "import sys, urllib.request;"
    "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())"
)
#: Which component exports a metric, by prefix.
COMPONENTS = {
    "v6alt_synapse_": "synapse",
    "prosody_mod_v6alt__": "prosody",
    "v6alt_sidecar_": "sidecar",
    "process_": "sidecar",  # the dashboard's process panels select the sidecar's job
}
#: Labels Prometheus adds when it scrapes (not in the exposition), and the histogram bucket.
SCRAPE_LABELS = {"job", "instance", "le"}
_METRIC = re.compile(r"\b((?:v6alt_synapse_|prosody_mod_v6alt__|v6alt_sidecar_|process_)\w+)")


def dashboard_queries() -> list[str]:
    data = json.loads(DASHBOARD.read_text())
    queries: list[str] = []
    for panel in data["panels"]:
        queries += [t["expr"] for t in panel.get("targets", [])]
    for variable in data["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            queries.append(query["query"])
    return queries


def labels_used(query: str, metric: str) -> set[str]:
    """Labels in the metric's own selector and in every ``by (...)`` of the query."""
    used: set[str] = set()
    selector = re.search(re.escape(metric) + r"\{([^}]*)\}", query)
    if selector:
        used |= set(re.findall(r"(\w+)\s*=~?", selector.group(1)))
    for group in re.findall(r"\bby\s*\(([^)]*)\)", query):
        used |= {label.strip() for label in group.split(",") if label.strip()}
    match = re.search(r"label_values\(\s*" + re.escape(metric) + r"\s*,\s*(\w+)\)", query)
    if match:
        used.add(match.group(1))
    return used


def test_dashboard_is_well_formed() -> None:
    data = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids))
    titles = {p["title"] for p in data["panels"] if p["type"] != "row"}
    # A panel per decision of each module and per sidecar health figure (issue 13).
    for title in (
        "TLS trust decisions",
        "Pin checks",
        "Inbound origin checks",
        "Backoff recovery probes",
        "Time to clear a backoff (p50, p90)",
        "Lookups by verdict",
        "s2s trust decisions",
        "Stalled streams and recoveries",
        "Stall recovery stanzas",
        "DNS queries by response code",
        "Reply cache",
        "Forwarders",
        "Forwarder latency (p50, p99)",
        "DNS over TCP",
        "Lookup-service requests",
        "Sidecar memory",
        "Sidecar uptime",
    ):
        assert title in titles, title
    for panel in data["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"
    assert {prefix for q in dashboard_queries() for prefix in COMPONENTS if prefix in q} == set(
        COMPONENTS
    )


def _scrape(node: Any, url: str) -> Scrape:
    return parse(node.run([sys.executable, "-c", _SCRAPE, url]).stdout)


def test_every_queried_metric_is_exported(lab: Mesh, site: SiteFactory) -> None:
    pytest.importorskip("synapse.app.homeserver", reason="matrix-synapse is not installed")
    a = site(
        "a",
        "200:7672::a",
        settings='statistics = "internal"\nstatistics_interval = "manual"\n'
        'http_ports = { 5280 }\nhttp_interfaces = { "::1" }\n',
        host_settings='\tmodules_enabled = { "http_openmetrics" }',
    )
    node = lab.add_node("s", "200:7672::5")
    hs = Homeserver(
        node.run_dir / "synapse",
        node.address,
        netns=node.namespace,
        extra={"enable_metrics": True},
        extra_listeners=[
            {"type": "metrics", "port": SYNAPSE_METRICS_PORT, "bind_addresses": ["::1"]}
        ],
    )
    hs.start()
    try:
        # A little traffic, so that the labelled families have series: a refused
        # destination in Synapse, DNS queries at the sidecar.
        user = hs.register("dash", "dash-password")
        hs.request("GET", "/_matrix/client/v3/profile/@x:a-e.v6.alt", token=user.token)
        # The AAAA twice: the second comes from the reply cache (no EDNS cookie,
        # which would make every query's bytes new).
        for qtype in ("AAAA", "AAAA", "PTR"):
            dig = ["dig", "@::1", "-p", str(DNS_PORT), "+tries=1", "+nocookie"]
            a.node.run([*dig, "fiabbgadu-e.v6.alt", qtype])
        scrapes = {
            "synapse": _scrape(node, f"http://[::1]:{SYNAPSE_METRICS_PORT}/metrics"),
            "prosody": _scrape(a.node, "http://[::1]:5280/metrics"),
            "sidecar": _scrape(a.node, f"{LOOKUP_URL}/metrics"),
        }
    finally:
        hs.stop()

    checked = 0
    for query in dashboard_queries():
        for metric in set(_METRIC.findall(query)):
            component = next(c for p, c in COMPONENTS.items() if metric.startswith(p))
            scrape = scrapes[component]
            assert metric in scrape.names() or family_of(metric, scrape.families), (
                f"{metric} (queried by {query!r}) is not exported by the {component}"
            )
            series = scrape.series(metric)
            assert series, f"{metric}: no series in the {component}'s scrape"
            have = set().union(*(s.keys() for s in series))
            missing = labels_used(query, metric) - have - SCRAPE_LABELS
            assert not missing, f"{metric} has no label {missing} (queried by {query!r})"
            checked += 1
    assert checked >= 30
