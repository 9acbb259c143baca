"""inbound_ip_binding: a v6.alt origin compared with the request's source address.

G's name encodes its first address, but routes make its kernel send to B
and C from a second address. B runs the documented default (``log``): it
serves G and logs the mismatch. C runs ``enforce``: it refuses G with 403
and still serves A, whose source address is the one its name encodes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from ipaddress import IPv6Address

import pytest

pytest.importorskip("synapse.app.homeserver", reason="matrix-synapse is not installed")
from v6alt.lab.netns import FlatNet, run

from .homeserver import Homeserver, quote

pytestmark = pytest.mark.integration

SECOND_ADDRESS = IPv6Address("202:6a1f:77::72")


def _profile(hs: Homeserver, token: str, user_id: str) -> tuple[int, object]:
    return hs.request("GET", f"/_matrix/client/v3/profile/{quote(user_id)}", token=token)


@pytest.fixture(scope="module")
def servers(
    mesh: FlatNet,
    pair: tuple[Homeserver, Homeserver],
    users: dict[str, str],
    start_homeservers: Callable[..., list[Homeserver]],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[Homeserver, str]]:
    _, b = pair
    g_host, c_host = mesh["g"], mesh["c"]
    if SECOND_ADDRESS not in g_host.addresses:
        g_host.add_address(SECOND_ADDRESS)
    for target in (b.address, c_host.address):
        run(["ip", "-n", g_host.netns, "route", "replace", f"{target}/128",
             "dev", g_host.ifname, "src", str(SECOND_ADDRESS)])  # fmt: skip
    g, c = start_homeservers(
        Homeserver(g_host, tmp_path_factory.mktemp("hs-g")),
        Homeserver(
            c_host,
            tmp_path_factory.mktemp("hs-c-enforce"),
            module_config={"synapse": {"inbound_ip_binding": "enforce"}},
        ),
    )
    assert g.address != SECOND_ADDRESS
    return {"g": (g, g.register("grace")), "c": (c, c.register("carol"))}


def _mismatch(origin: Homeserver, mode: str) -> str:
    return (
        rf"v6alt: inbound origin {re.escape(origin.server_name)} came from "
        rf"{re.escape(str(SECOND_ADDRESS))}, not from its address "
        rf"{re.escape(str(origin.address))} \(inbound_ip_binding: {mode}\)"
    )


def test_log_mode_serves_and_logs_a_source_mismatch(
    pair: tuple[Homeserver, Homeserver], servers: dict[str, tuple[Homeserver, str]]
) -> None:
    _, b = pair
    g, grace = servers["g"]
    mark = b.log_mark()
    status, body = _profile(g, grace, b.user_id("bob"))
    assert status == 200, body
    b.wait_for_log(_mismatch(g, "log"), start=mark)


def test_enforce_mode_refuses_a_source_mismatch(
    servers: dict[str, tuple[Homeserver, str]],
) -> None:
    g, grace = servers["g"]
    c, _ = servers["c"]
    mark = c.log_mark()
    status, body = _profile(g, grace, c.user_id("carol"))
    assert status >= 400, body
    c.wait_for_log(_mismatch(g, "enforce"), start=mark)
    c.wait_for_log(r'403 "GET /_matrix/federation/v1/query/profile', start=mark)


def test_enforce_mode_serves_the_matching_address(
    pair: tuple[Homeserver, Homeserver], servers: dict[str, tuple[Homeserver, str]]
) -> None:
    a, _ = pair
    c, _ = servers["c"]
    token = a.register("alice-inbound")
    mark = c.log_mark()
    status, body = _profile(a, token, c.user_id("carol"))
    assert status == 200, body
    assert f"inbound origin {a.server_name} came from" not in c.log_text()[mark:]
