"""A stock Synapse joins a v6.alt federation (docs/mixed.md, "Joining without v6alt").

A real Yggdrasil lab of two nodes, shared by the cases:

- A: a homeserver with the module, named by its v6.alt name, the documented
  config with ``synapse.inbound_ip_binding: enforce``, trusting a test CA
  (``mixed-synapse-ca``); its host's unbound serves the zone ``mixed.example``;
- B: a stock Synapse of the same version (no ``modules:``), configured with
  the ``mixed-stock-synapse`` block alone; its host's resolver is one of
  docs/clients.md's recipes in front of a sidecar in its namespace (DNS on
  ``[::1]:5353``, the recipes' port). Case (a): named by its mesh address's
  v6.alt name, self-signed, behind the unbound recipe; case (b):
  ``stock.mixed.example`` with a certificate from the test CA, behind the
  dnsmasq recipe.

Each case: invite, join, a message each way, and each server holds the
other's signing key, fetched from the other directly (``server_keys_json``,
``trusted_key_servers: []`` on both). Root; about 20 s. Lab run directory
``/run/v6alt-stockpeer-test-<pid>``, namespaces ``v6p-t<pid>-*``.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Final

import pytest

pytest.importorskip("synapse.app.homeserver", reason="matrix-synapse is not installed")
import yaml

from tests.mixed import docs
from tests.orphaned_labs import take_down_orphaned_labs
from v6alt.codec import encode
from v6alt.lab import Lab
from v6alt.lab.certificates import LabCa, make_lab_ca
from v6alt.lab.host import LabHost
from v6alt.lab.mixed import ZoneRecords, start_resolver_sidecar, start_zone_unbound
from v6alt.lab.netns import ETC_NETNS, FlatHost, list_netns, netns_pids
from v6alt.lab.resolvers import host_resolver

from .homeserver import DOCS_SNIPPET, Homeserver
from .matrix import has_message, send, shared_room

pytestmark = pytest.mark.integration

SIDECAR_DNS_PORT: Final = 5353
STOCK_DNS_NAME: Final = "stock.mixed.example"
CLIENTS_DOC: Final = Path(__file__).resolve().parents[2] / "docs" / "clients.md"
#: The host resolver recipes of docs/clients.md, by resolver kind (lab/resolvers.py).
RECIPES: Final = {"unbound": "unbound-recipe", "dnsmasq": "dnsmasq-recipe"}


def _recipe(kind: str) -> str:
    """The recipe for ``kind`` as docs/clients.md shows it."""
    name = re.escape(RECIPES[kind])
    pattern = rf"<!-- {name}: begin -->\s*```[a-z]*\n(.*?)```\s*<!-- {name}: end -->"
    match = re.search(pattern, CLIENTS_DOC.read_text(), re.S)
    assert match, f"no {RECIPES[kind]} block in {CLIENTS_DOC}"
    return match.group(1)


def _module_config() -> dict[str, object]:
    """The documented module config, with inbound requests bound to their address."""
    config = yaml.safe_load(Template(DOCS_SNIPPET.read_text()).safe_substitute())
    module_config: dict[str, object] = config["modules"][0]["config"]
    synapse = module_config.setdefault("synapse", {})
    assert isinstance(synapse, dict)
    synapse["inbound_ip_binding"] = "enforce"
    return module_config


def _flat(host: LabHost) -> FlatHost:
    """The lab host as the mixed-world helpers take it (its namespace, its mesh address)."""
    return FlatHost(host.host, host.netns, addresses=[host.ygg_address])


@dataclass
class StockWorld:
    root: Path
    a_host: FlatHost
    b_host: FlatHost
    ca: LabCa
    v6alt: Homeserver
    v6alt_token: str

    def stock(self, name: str, **settings: object) -> Homeserver:
        """A stock Synapse on B: the documented base without the module, plus the
        docs' ``mixed-stock-synapse`` block and nothing else."""
        extra = {"modules": [], **docs.yaml_block("mixed-stock-synapse")}
        return Homeserver(self.b_host, self.root / name, extra=extra, **settings)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StockWorld]:
    if os.geteuid() != 0:
        pytest.fail("needs root (network namespaces)")
    take_down_orphaned_labs(
        "v6alt-stockpeer-test-*", r"v6alt-stockpeer-test-(?P<pid>\d+)", "v6p-t{pid}-"
    )
    pid = os.getpid()
    root = tmp_path_factory.mktemp("stock-peer")
    lab = Lab(run_dir=f"/run/v6alt-stockpeer-test-{pid}", prefix=f"v6p-t{pid}-")
    flat: list[FlatHost] = []
    lab_hosts: list[LabHost] = []
    leftovers: dict[str, list[int]] = {}
    v6alt: Homeserver | None = None
    try:
        a, b = lab_hosts = lab.up(nodes=2)
        a_host, b_host = _flat(a), _flat(b)
        flat += [a_host, b_host]
        zone = ZoneRecords().aaaa(STOCK_DNS_NAME, b.ygg_address)
        start_resolver_sidecar(b_host, root / "b-sidecar", SIDECAR_DNS_PORT)
        # The v6alt side resolves the stock server's DNS name (mixed.md's zone).
        start_zone_unbound(a_host, root / "a-dns", zone)
        ca = make_lab_ca(root / "ca", "v6alt stock peer test CA")
        v6alt = Homeserver(
            a_host,
            root / "v6alt",
            module_config=_module_config(),
            extra=docs.yaml_block("mixed-synapse-ca", ca_certificate=ca.certificate),
        )
        v6alt.start()
        yield StockWorld(root, a_host, b_host, ca, v6alt, v6alt.register("alice"))
    finally:
        if v6alt is not None:
            v6alt.stop()
        for host in flat:
            host.stop()
        # Nothing of ours may outlive the test: only each host's Yggdrasil node is left.
        leftovers = {h.netns: [p for p in netns_pids(h.netns) if p != h.pid] for h in lab_hosts}
        lab.down()
    assert not any(leftovers.values()), leftovers
    assert not any(name.startswith(lab.prefix) for name in list_netns())
    assert not any(path.name.startswith(lab.prefix) for path in ETC_NETNS.glob("*"))
    assert not lab.run_dir.exists()


def _server_keys(hs: Homeserver) -> set[tuple[str, str]]:
    """(server, fetched from) of every signing key ``hs`` has fetched and stored."""
    with sqlite3.connect(f"file:{hs.tree / 'homeserver.db'}?mode=ro", uri=True) as db:
        query = "SELECT server_name, from_server FROM server_keys_json"
        return {(name, source) for name, source in db.execute(query)}


def _joins_and_talks(world: StockWorld, stock: Homeserver, resolver: str) -> None:
    """Stock Synapse ``stock`` on B behind the ``resolver`` recipe: invite, join,
    messages both ways, each server's key fetched by the other."""
    directory = world.root / f"{stock.tree.name}-dns"
    with host_resolver(resolver, world.b_host, directory, _recipe(resolver)) as running:
        stock.start()
        try:
            seen = Path(f"/proc/{stock.pid}/root/etc/resolv.conf").read_text()
            assert f"nameserver {running.nameserver}" in seen.splitlines()
            _federate(world.v6alt, world.v6alt_token, stock)
        finally:
            stock.stop()


def _federate(v6alt: Homeserver, v6alt_token: str, stock: Homeserver) -> None:
    token = stock.register("bob")
    room_id = shared_room(v6alt, v6alt_token, stock, token, "bob")
    send(v6alt, v6alt_token, room_id, "from v6alt to stock")
    stock.wait_for(
        "the v6alt side's message",
        lambda: has_message(stock, token, room_id, "from v6alt to stock"),
    )
    send(stock, token, room_id, "from stock to v6alt")
    v6alt.wait_for(
        "the stock side's message",
        lambda: has_message(v6alt, v6alt_token, room_id, "from stock to v6alt"),
    )
    # Each fetched the other's key from the other (no notary on either side).
    assert (v6alt.server_name, v6alt.server_name) in _server_keys(stock)
    assert (stock.server_name, stock.server_name) in _server_keys(v6alt)
    # The stock side found the v6alt server the stock way, through its resolver.
    log = stock.log_text()
    assert "v6alt.synapse_module" not in log
    assert f"Fetching https://{v6alt.server_name}/.well-known/matrix/server" in log


def test_stock_synapse_named_by_its_v6alt_name(world: StockWorld) -> None:
    stock = world.stock("stock-v6alt")
    assert stock.server_name == encode(world.b_host.address)
    mark = world.v6alt.log_mark()
    _joins_and_talks(world, stock, "unbound")
    # The v6alt side took the stock server's self-signed certificate IP-bound,
    # and its requests came from the address its name encodes (enforce let them in).
    world.v6alt.wait_for_log(
        rf"v6alt: TLS peer {re.escape(str(stock.address))} accepted for "
        rf"{re.escape(stock.server_name)} without CA check \(ip_bound",
        start=mark,
    )
    assert "not from its address" not in world.v6alt.log_text()[mark:]


def test_stock_synapse_named_by_a_dns_name_with_a_ca_certificate(world: StockWorld) -> None:
    stock = world.stock("stock-dns", server_name=STOCK_DNS_NAME, ca_dir=world.ca.directory)
    mark = world.v6alt.log_mark()
    _joins_and_talks(world, stock, "dnsmasq")
    # A DNS name: the v6alt side checked its certificate against the CA.
    assert f"accepted for {STOCK_DNS_NAME} without CA check" not in world.v6alt.log_text()[mark:]
