"""``check local`` and ``whoami`` on a host whose kernel sends towards the mesh from
a ULA: a failed check naming the rule, not ``[ ok ]``."""

from __future__ import annotations

import json
import subprocess
import sys

from .net import Pair, run


def test_a_never_dial_source_address_fails_with_the_rule(pair: Pair) -> None:
    pair.add_address("200:c::51")
    pair.add_address("fd00:c::50")
    run(["ip", "-n", pair.server, "route", "add", "200::/7", "dev", "eth0", "src", "fd00:c::50"])
    result = pair.check("local", namespace=pair.server)
    assert result.code == 1
    kernel = [c for c in result.checks("source.kernel") if "200::/7" in c["summary"]]
    assert kernel[0]["status"] == "fail", kernel
    assert (
        "source fd00:c::50, which peers never dial (never-dial: ULA (fd00::/8))"
        in (kernel[0]["summary"])
    )
    assert "ip -6 route change 200::/7 dev eth0 src 200:c::51" in kernel[0]["hint"]

    done = subprocess.run(
        pair.exec(pair.server, [sys.executable, "-m", "v6alt", "whoami", "--json"]),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    sources = json.loads(done.stdout)["sources"]
    ygg = [s for s in sources if s["range"] == "200::/7"]
    assert ygg[0]["never_dial"] == "never-dial: ULA (fd00::/8)"
