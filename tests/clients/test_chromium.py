"""Headless Chromium (Debian's package) loading the homeserver's client API (docs/clients.md).

Runs on the dnsmasq client host, whose only IPv6 is the mesh's link (no
default route), as on a mesh-only machine.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from .conftest import SERVER_ADDRESS, ClientHost, World

VERSIONS = "/_matrix/client/versions"
#: The address whose route Chromium checks before it asks for AAAA records.
PROBE_ROUTE = "2001:4860:4860::8888/128"


def chromium(client: ClientHost, url: str, *flags: str) -> subprocess.CompletedProcess[str]:
    """``chromium --dump-dom URL`` in the client host, as root, with a fresh profile."""
    with tempfile.TemporaryDirectory(prefix="v6alt-chromium-") as profile:
        return client.run(
            "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", *flags, "--dump-dom", url,
            timeout=90,
        )  # fmt: skip


def loaded_versions(done: subprocess.CompletedProcess[str]) -> bool:
    """The page is Synapse's /versions JSON (Chromium wraps it in a <pre>)."""
    return '"versions"' in done.stdout and "<pre>" in done.stdout


@contextmanager
def route(client: ClientHost, destination: str = PROBE_ROUTE) -> Iterator[None]:
    """A route to ``destination`` through the client's mesh link, for the block: the
    docs' host route to Chromium's check address, or a default route."""
    namespace, ifname = client.node.namespace, client.node.host.ifname
    added = subprocess.run(["ip", "-n", namespace, "-6", "route", "add", destination, "dev",
                            ifname], check=False)  # fmt: skip
    assert added.returncode == 0
    try:
        yield
    finally:
        subprocess.run(["ip", "-n", namespace, "-6", "route", "del", destination, "dev", ifname],
                       check=False)  # fmt: skip


def test_chromium_by_mesh_address(world: World) -> None:
    done = chromium(world.clients["dnsmasq"], f"http://[{SERVER_ADDRESS}]:8008{VERSIONS}")
    assert loaded_versions(done), done.stderr[-2000:]


@pytest.mark.parametrize("destination", [PROBE_ROUTE, "default"])
def test_chromium_asks_no_aaaa_on_a_mesh_only_host_until_a_route(
    world: World, destination: str
) -> None:
    """.alt is not special to Chromium; a missing IPv6 route to the internet is."""
    client = world.clients["dnsmasq"]
    url = f"http://{world.name}:8008{VERSIONS}"
    done = chromium(client, url)
    assert "net::ERR_NAME_NOT_RESOLVED" in done.stderr, done.stdout + done.stderr[-2000:]
    # Other programs of the same host resolve the name through the same recipe.
    assert client.run("getent", "ahostsv6", world.name).returncode == 0
    mark = len(client.resolver.log_text())
    with route(client, destination):
        done = chromium(client, url)
    assert loaded_versions(done), done.stderr[-2000:]
    # dnsmasq (log-queries) saw Chromium's AAAA question for the name.
    assert f"query[AAAA] {world.name}" in client.resolver.log_text()[mark:]


def spki_base64(world: World) -> str:
    """The docs' openssl pipeline: base64 SHA-256 of the certificate's public key."""
    pipeline = (
        f"openssl x509 -in {world.certificate} -noout -pubkey "
        "| openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64"
    )
    return subprocess.run(pipeline, shell=True, capture_output=True, text=True, check=True).stdout


def test_chromium_https_by_name_refuses_the_certificate_unless_its_key_is_listed(
    world: World,
) -> None:
    client = world.clients["dnsmasq"]
    url = f"https://{world.name}{VERSIONS}"
    with route(client):
        refused = chromium(client, url)
        accepted = chromium(
            client, url, f"--ignore-certificate-errors-spki-list={spki_base64(world).strip()}"
        )
    assert "net::ERR_CERT_AUTHORITY_INVALID" in refused.stderr, refused.stderr[-2000:]
    assert not loaded_versions(refused)
    assert loaded_versions(accepted), accepted.stderr[-2000:]
