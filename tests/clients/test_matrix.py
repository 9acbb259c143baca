"""matrix-nio, a real Matrix client library, against Synapse by name and by mesh address."""

from __future__ import annotations

import json
import re
import sys

from .conftest import PASSWORD, SERVER_ADDRESS, World


def test_nio_finds_the_homeserver_by_well_known_and_logs_in_by_name(world: World) -> None:
    """systemd-resolved's recipe; HTTPS with the server's certificate trusted (docs)."""
    client = world.clients["systemd-resolved"]
    message = "hello by name through systemd-resolved"
    result = client.script(
        "matrix_client.py", f"https://{world.name}", f"@alice:{world.name}", PASSWORD,
        "--cafile", str(world.certificate), "--discover", "--message", message,
    )  # fmt: skip
    assert "error" not in result, result
    # public_baseurl, as nio keeps it (without the trailing slash).
    assert result["discovered"] == f"https://{world.name}"
    assert result["user_id"] == f"@alice:{world.name}"
    assert message in result["read"]


def test_nio_refuses_the_self_signed_certificate_without_it(world: World) -> None:
    client = world.clients["systemd-resolved"]
    result = client.script(
        "matrix_client.py", f"https://{world.name}", f"@alice:{world.name}", PASSWORD
    )
    assert "certificate verify failed" in result.get("error", ""), result


def test_nio_by_mesh_address_over_plain_http(world: World) -> None:
    """No resolver and no certificate: the 8008 listener on the mesh address."""
    client = world.clients["unbound"]
    message = "hello by mesh address"
    result = client.script(
        "matrix_client.py", f"http://[{SERVER_ADDRESS}]:8008", f"@alice:{world.name}", PASSWORD,
        "--message", message,
    )  # fmt: skip
    assert "error" not in result, result
    assert message in result["read"]


def test_well_known_by_name_with_curl_and_the_certificate(world: World) -> None:
    """What Synapse serves at https://<name>/.well-known/matrix/client (dnsmasq's recipe)."""
    client = world.clients["dnsmasq"]
    done = client.run(
        "curl", "-sS", "-D", "-", "--cacert", str(world.certificate),
        f"https://{world.name}/.well-known/matrix/client",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    head, _, body = done.stdout.partition("\n\n")  # text mode: \r\n read as \n
    assert head.startswith("HTTP/1.1 200"), head
    assert "access-control-allow-origin: *" in head.lower()
    assert body.startswith("{"), done.stdout
    assert json.loads(body) == {"m.homeserver": {"base_url": f"https://{world.name}/"}}
    # Without the certificate curl refuses, as the doc says.
    refused = client.run("curl", "-sS", f"https://{world.name}/.well-known/matrix/client")
    assert refused.returncode == 60, refused.stderr  # 60: peer certificate cannot be authenticated


def test_nio_pins_the_certificate_by_the_sha256_v6alt_check_prints(world: World) -> None:
    """The pin recipe: ``v6alt check matrix <name>`` shows the certificate's SHA-256
    (port 8448; the 443 listener has the same certificate), nio takes it as an
    aiohttp ``Fingerprint``; another fingerprint is refused."""
    client = world.clients["dnsmasq"]
    check = client.run(sys.executable, "-m", "v6alt", "check", "matrix", world.name, "--json",
                       timeout=120)  # fmt: skip
    summaries = [c["summary"] for c in json.loads(check.stdout)["checks"]
                 if c["id"] == "tls.certificate"]  # fmt: skip
    assert len(summaries) == 1, check.stdout
    match = re.match(r"SHA-256 ((?:[0-9A-F]{2}:){31}[0-9A-F]{2}),", summaries[0])
    assert match, summaries
    pin = match.group(1)
    user = f"@alice:{world.name}"
    message = "hello with a pinned certificate"
    result = client.script("matrix_client.py", f"https://{world.name}", user, PASSWORD,
                           "--pin", pin, "--message", message)  # fmt: skip
    assert "error" not in result, result
    assert message in result["read"]
    wrong = ("00" if not pin.startswith("00") else "11") + pin[2:]
    refused = client.script("matrix_client.py", f"https://{world.name}", user, PASSWORD,
                            "--pin", wrong)  # fmt: skip
    assert "ServerFingerprintMismatch" in refused.get("error", ""), refused
