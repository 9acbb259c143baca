"""One server host and three client hosts, shared by the whole package.

``srv`` (200:c1::1) runs a Synapse with the v6alt module (the documented
homeserver plus the client listeners of docs/clients.md) and a Prosody 13
with mod_v6alt, both named by the host's v6.alt name. Each client host runs
a v6alt sidecar with the defaults (DNS on [::1]:5353) and one of the three
host-wide resolvers of docs/clients.md, started from the recipe's text in
the doc; its resolv.conf names that resolver, so every client started there
resolves v6.alt names through the recipe.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from importlib.util import find_spec
from ipaddress import IPv6Address
from pathlib import Path
from string import Template
from typing import Any

import pytest
import yaml

from tests.prosody.servers import Mesh, Node, ProsodyServer, Sidecar, documented_block
from tests.xmpp_requirements import missing_xmpp_parts
from v6alt.codec import encode
from v6alt.lab.local_servers import SIDECAR_READY, sidecar_command
from v6alt.lab.resolvers import KINDS, HostResolver, host_resolver

DOC = Path(__file__).resolve().parents[2] / "docs" / "clients.md"
HERE = Path(__file__).parent
SERVER_ADDRESS = IPv6Address("200:c1::1")
CLIENT_ADDRESSES = {"systemd-resolved": "200:c1::2", "unbound": "200:c1::3", "dnsmasq": "200:c1::4"}
RECIPES = {"systemd-resolved": "resolved-dropin", "unbound": "unbound-recipe",
           "dnsmasq": "dnsmasq-recipe"}  # fmt: skip
PASSWORD = "secret-alice"


def doc_block(name: str) -> str:
    """The fenced block between ``<!-- NAME: begin/end -->`` in docs/clients.md."""
    pattern = rf"<!-- {name}: begin -->\s*```[a-z]*\n(.*?)```\s*<!-- {name}: end -->"
    match = re.search(pattern, DOC.read_text(), re.S)
    assert match, f"no {name} block in {DOC}"
    return match.group(1)


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("unbound", "dnsmasq", "dig", "getent", "chromium", "curl", "openssl"):
        if shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
            return f"{tool} not installed (scripts/install-deps.sh)"
    for module in ("nio", "synapse"):
        if find_spec(module) is None:
            return f"python package {module} not installed"
    return missing_xmpp_parts()


@dataclass
class ClientHost:
    """A client machine: its node, its resolver (from a recipe), its sidecar."""

    kind: str
    node: Node
    resolver: HostResolver

    def script(self, name: str, *args: str, timeout: float = 120) -> dict[str, Any]:
        """Run tests/clients/``name`` here (this interpreter); its JSON output."""
        done = subprocess.run(
            self.node.argv([sys.executable, str(HERE / name), *args]),
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{name} exited {done.returncode}: {done.stderr[-3000:]}"
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result

    def run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.node.argv(list(argv)), capture_output=True, text=True, timeout=timeout,
            check=False,
        )  # fmt: skip


@dataclass
class World:
    mesh: Mesh
    server: Node
    name: str
    homeserver: Any  # v6alt.lab.matrix.homeserver.Homeserver
    prosody: ProsodyServer
    clients: dict[str, ClientHost]
    jid: str

    @property
    def certificate(self) -> Path:
        """The homeserver's self-signed certificate (the federation one)."""
        return Path(self.homeserver.tree) / "tls.crt"

    @property
    def xmpp_certificate(self) -> Path:
        return self.server.run_dir / f"{self.name}.crt"


def client_sidecar(node: Node) -> subprocess.Popen[str]:
    """``v6alt sidecar`` with the default listeners ([::1]:5353 DNS, [::1]:5380 lookup)."""
    config = node.run_dir / "client-sidecar.yaml"
    config.write_text("{}\n")
    log = node.run_dir / "client-sidecar.log"
    with log.open("w") as out:
        process = node.popen(sidecar_command(config), stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while SIDECAR_READY not in log.read_text():
        assert process.poll() is None, f"sidecar exited: {log.read_text()}"
        assert time.monotonic() < deadline, f"sidecar not ready: {log.read_text()}"
        time.sleep(0.1)
    return process


def _homeserver(mesh: Mesh, server: Node, name: str) -> Any:
    from v6alt.lab.matrix.homeserver import Homeserver

    values = {"server_name": name, "mesh_address": str(server.address)}
    documented = yaml.safe_load(Template(doc_block("synapse-client-listeners")).substitute(values))
    extra = {key: value for key, value in documented.items() if key != "listeners"}
    homeserver = Homeserver(
        mesh.root / "synapse",
        server.address,
        netns=server.namespace,
        extra=extra,
        extra_listeners=documented["listeners"],
    )
    homeserver.start()
    return homeserver


@pytest.fixture(scope="package")
def world() -> Iterator[World]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    with ExitStack() as stack:
        mesh = Mesh()
        stack.callback(mesh.close)
        server = mesh.add_node("srv", str(SERVER_ADDRESS))
        name = encode(SERVER_ADDRESS)
        homeserver = _homeserver(mesh, server, name)
        stack.callback(homeserver.stop)
        sidecar = Sidecar(server, "")
        sidecar.start()
        stack.callback(sidecar.kill)
        prosody = ProsodyServer(server, name, documented_block("prosody-config"))
        prosody.start()
        stack.callback(prosody.stop)
        jid = prosody.register("alice", PASSWORD)
        homeserver.register("alice", PASSWORD)
        clients: dict[str, ClientHost] = {}
        for kind in KINDS:
            node = mesh.add_node(f"c{len(clients)}", CLIENT_ADDRESSES[kind])
            process = client_sidecar(node)
            stack.callback(process.kill)
            resolver = stack.enter_context(
                host_resolver(kind, node.host, node.run_dir / "resolver", doc_block(RECIPES[kind]))
            )
            clients[kind] = ClientHost(kind, node, resolver)
        yield World(mesh, server, name, homeserver, prosody, clients, jid)
