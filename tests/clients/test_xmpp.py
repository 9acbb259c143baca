"""slixmpp, a real XMPP client, logging in to Prosody by the v6.alt name and by address."""

from __future__ import annotations

from .conftest import PASSWORD, SERVER_ADDRESS, World


def test_slixmpp_logs_in_by_name_through_unbound(world: World) -> None:
    """The JID's domain is the server's v6.alt name; the client finds the server by it."""
    client = world.clients["unbound"]
    message = "hello by name through unbound"
    result = client.script(
        "xmpp_client.py", world.jid, PASSWORD, "--cafile", str(world.xmpp_certificate),
        "--message", message,
    )  # fmt: skip
    assert "error" not in result, result
    assert result["peer"] == str(SERVER_ADDRESS)
    assert result["received"] == message


def test_slixmpp_logs_in_by_mesh_address(world: World) -> None:
    """Host and port given apart from the JID; the certificate still checked for the domain."""
    client = world.clients["dnsmasq"]
    message = "hello by mesh address"
    result = client.script(
        "xmpp_client.py", world.jid, PASSWORD, "--cafile", str(world.xmpp_certificate),
        "--host", str(SERVER_ADDRESS), "--port", "5222", "--message", message,
    )  # fmt: skip
    assert "error" not in result, result
    assert result["received"] == message


def test_slixmpp_refuses_the_self_signed_certificate_without_it(world: World) -> None:
    client = world.clients["unbound"]
    result = client.script("xmpp_client.py", world.jid, PASSWORD)
    assert result.get("error", "").startswith("ssl_invalid_chain:"), result
    assert "certificate verify failed" in result["error"]
