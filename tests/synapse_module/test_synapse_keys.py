"""Keys of a v6.alt server come from that server, never from a notary.

K trusts two notaries: B (a v6.alt server that serves key queries) and
matrix.org (unreachable on a mesh). When A's request reaches K, K needs A's
signing key: it must fetch it from A directly, asking neither notary.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

pytest.importorskip("synapse.app.homeserver", reason="matrix-synapse is not installed")

from .homeserver import Homeserver, quote

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def k_server(
    pair: tuple[Homeserver, Homeserver],
    homeserver_with_user: Callable[..., tuple[Homeserver, str]],
) -> tuple[Homeserver, str]:
    _, b = pair
    notaries = [{"server_name": b.server_name}, {"server_name": "matrix.org"}]
    return homeserver_with_user("h", "kim", extra={"trusted_key_servers": notaries})


def test_warns_once_about_unreachable_notaries(k_server: tuple[Homeserver, str]) -> None:
    k, _ = k_server
    lines = re.findall(r"v6alt: trusted_key_servers names ([^:]*):", k.log_text())
    assert lines == ["matrix.org"]


def test_keys_of_a_v6alt_server_are_fetched_directly(
    pair: tuple[Homeserver, Homeserver],
    users: dict[str, str],
    k_server: tuple[Homeserver, str],
) -> None:
    a, b = pair
    k, _ = k_server
    k_mark, b_mark = k.log_mark(), b.log_mark()
    status, body = a.request(
        "GET", f"/_matrix/client/v3/profile/{quote(k.user_id('kim'))}", token=users["alice"]
    )
    assert status == 200, body
    k.wait_for_log(
        rf"v6alt: keys of {re.escape(a.server_name)} fetched directly, not from a notary",
        start=k_mark,
    )
    # K fetched A's keys from A itself ...
    a.wait_for_request(k.address, "GET /_matrix/key/v2/server", scheme="https")
    # ... and asked neither notary.
    assert "/_matrix/key/v2/query" not in b.log_text()[b_mark:]
    assert "matrix.org" not in k.dns_log.read_text()
