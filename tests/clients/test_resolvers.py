"""The three resolver recipes of docs/clients.md, each in a client host of its own."""

from __future__ import annotations

import subprocess

import pytest

from v6alt.lab.resolvers import KINDS, host_resolver

from .conftest import RECIPES, SERVER_ADDRESS, World, client_sidecar, doc_block


def addresses(output: str) -> set[str]:
    """The addresses in ``getent ahostsv6`` output."""
    return {line.split()[0] for line in output.splitlines() if line.strip()}


@pytest.mark.parametrize("kind", KINDS)
def test_recipe_resolves_v6alt_names_for_every_program(world: World, kind: str) -> None:
    client = world.clients[kind]
    # getent asks glibc, as every program of the host does, through resolv.conf.
    for name in (world.name, f"groups.{world.name}", world.name.upper()):
        done = client.run("getent", "ahostsv6", name)
        assert done.returncode == 0, (name, done.stdout, done.stderr, client.resolver.log_text())
        assert addresses(done.stdout) == {str(SERVER_ADDRESS)}, done.stdout
    # The resolver's own answer, relayed from the sidecar.
    dig = client.run("dig", "+short", "AAAA", world.name)
    assert dig.stdout.split() == [str(SERVER_ADDRESS)]


@pytest.mark.parametrize("kind", KINDS)
def test_recipe_passes_on_the_sidecars_refusals(world: World, kind: str) -> None:
    """A malformed label and a never-dialled address are NXDOMAIN through every recipe."""
    client = world.clients[kind]
    for name in ("zz-zz-zz.v6.alt", "a-e.v6.alt"):  # bad label; ::1 (never dialled)
        done = client.run("getent", "ahostsv6", name)
        assert done.returncode == 2, (name, done.stdout)  # 2: not found
        dig = client.run("dig", "AAAA", name)
        assert "status: NXDOMAIN" in dig.stdout, dig.stdout


def test_unbound_validates_so_the_recipes_domain_insecure_is_needed(world: World) -> None:
    """The test's unbound validates (as Debian's does): without ``domain-insecure``
    the same recipe answers SERVFAIL, so the recipe's line is what makes it work."""
    node = world.mesh.add_node("c9", "200:c1::9")
    sidecar = client_sidecar(node)
    recipe = doc_block(RECIPES["unbound"])
    assert 'domain-insecure: "v6.alt."' in recipe
    stripped = recipe.replace('domain-insecure: "v6.alt."', "")
    try:
        with host_resolver("unbound", node.host, node.run_dir / "resolver", stripped):
            dig = subprocess.run(
                node.argv(["dig", "AAAA", world.name]), capture_output=True, text=True, timeout=30
            )
        assert "status: SERVFAIL" in dig.stdout, dig.stdout
    finally:
        sidecar.kill()
        sidecar.wait()


def test_resolved_sends_other_names_to_the_global_sidecar_too(world: World) -> None:
    """The drop-in's servers are resolved's global ones, which are also its default
    route: a name outside v6.alt reaches the sidecar, which refuses it (docs)."""
    client = world.clients["systemd-resolved"]
    dig = client.run("dig", "AAAA", "example.org")
    assert "status: REFUSED" in dig.stdout, dig.stdout
    log = (client.node.run_dir / "client-sidecar.log").read_text()
    assert "dns query refused: zone not served" in log
