"""A real unbound forwarding v6.alt to a real sidecar: what local clients would use.

unbound runs with 0x20 query randomisation (use-caps-for-id) so the sidecar's
exact echo of the question is checked too: unbound drops replies whose
question case differs from what it sent.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("twisted", reason="the sidecar needs v6alt[sidecar]")
for tool, package in (("dig", "dnsutils"), ("unbound", "unbound")):
    if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
        pytest.skip(f"{tool} is not installed (apt-get install {package})", allow_module_level=True)

from v6alt.lab.local_servers import (  # noqa: E402
    dig,
    free_port,
    running_sidecar,
    running_unbound,
    unbound_config,
)

pytestmark = pytest.mark.integration

NAME = "fiabbgadu-e.v6.alt"
ADDRESS = "2a00:1098:3a0::1"


@pytest.fixture(scope="module")
def unbound_port() -> Iterator[int]:
    with running_sidecar() as sidecar, tempfile.TemporaryDirectory(prefix="v6alt-ub-") as tmp:
        port = free_port()
        config = unbound_config(Path(tmp), port, forward_port=sidecar.dns_port)
        config.write_text(
            config.read_text().replace("server:\n", "server:\n    use-caps-for-id: yes\n", 1)
        )
        with running_unbound(config, port):
            yield port


def status(output: str) -> str:
    return output.split("status: ")[1].split(",")[0]


def test_aaaa_through_unbound(unbound_port: int) -> None:
    for name in (NAME, "groups.fiabbgadu-e.v6.alt", "FIABBGADUaaaaaaaaaaaaaaaaE.V6.ALT"):
        out = dig("+short", name, "AAAA", server_port=unbound_port)
        assert out.split() == [ADDRESS], name


def test_negative_answers_through_unbound(unbound_port: int) -> None:
    assert status(dig("a-e.v6.alt", "AAAA", server_port=unbound_port)) == "NXDOMAIN"
    nodata = dig(NAME, "A", server_port=unbound_port)
    assert status(nodata) == "NOERROR" and "ANSWER: 0" in nodata
    assert status(dig(NAME, "TLSA", server_port=unbound_port)) == "NOERROR"


def test_tcp_client_through_unbound(unbound_port: int) -> None:
    out = dig("+tcp", "+short", NAME, "AAAA", server_port=unbound_port)
    assert out.split() == [ADDRESS]
