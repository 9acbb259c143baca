"""The lookup service's typed answers: their wire JSON and the verdict each carries.

No sockets: answers are built from the core's decisions as the service
builds them. tests/test_lookup_service.py shows them over real HTTP, and
tests/prosody/test_lookup_verdicts.py how mod_v6alt counts the verdict.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from v6alt.codec import encode
from v6alt.config import parse_config
from v6alt.names import parse_xmpp_domain
from v6alt.policy import Policy
from v6alt.prosody_bridge.lookup_answer import (
    HealthAnswer,
    LookupAnswer,
    NameAnswer,
    PeerAnswer,
    PinAnswer,
    ResolveAnswer,
)

POLICY = Policy(parse_config({"secure_ranges": [{"cidr": "200::/7", "tls": "off"}]}))
PUBLIC = IPv6Address("2a00:1098:3a0::1")
YGGDRASIL = IPv6Address("200:cab8:deb4:ce60:4362:4492:e539:4b5")

# The fields each endpoint answered before ``verdict`` was added, all of
# which an older mod_v6alt may read.
FIELDS_BEFORE_VERDICT = {
    "health": ["ok", "version"],
    "name": ["address", "name"],
    "resolve": [
        "name",
        "is_v6alt",
        "address",
        "port",
        "allowed",
        "rule",
        "rule_id",
        "canonical",
        "tls_required",
        "trust",
        "pinning",
    ],
    "peer": [
        "name",
        "address",
        "is_v6alt",
        "matches",
        "allowed",
        "rule",
        "rule_id",
        "tls_required",
        "trust",
        "pinning",
    ],
    "pin": ["name", "address", "mode", "accept", "status", "reason", "message"],
}


def older_module_verdict(endpoint: str, body: dict[str, object]) -> str:
    """The verdict mod_v6alt derived from an answer's fields before it read ``verdict``."""
    if endpoint == "health":
        return "ok"
    if endpoint == "pin":
        return "accepted" if body["accept"] is True else "refused"
    if endpoint == "resolve" and body["is_v6alt"] is False:
        return "not_v6alt"
    if not body["allowed"]:
        return "refused"
    if endpoint == "peer" and body["is_v6alt"] and body["matches"] is False:
        return "mismatch"
    return "allowed"


def resolve(text: str) -> ResolveAnswer:
    name = parse_xmpp_domain(text)
    if not name.is_v6alt:
        return ResolveAnswer.not_v6alt(text, name)
    return ResolveAnswer.of_decision(text, name, POLICY.decide_name(name))


def peer(text: str, address: IPv6Address | IPv4Address) -> PeerAnswer:
    name = parse_xmpp_domain(text)
    if isinstance(address, IPv4Address):
        return PeerAnswer.ipv4(text, address, name.is_v6alt)
    return PeerAnswer.of_decision(text, name, address, POLICY.decide(address, name))


ANSWERS: list[tuple[str, LookupAnswer, str]] = [
    ("resolve", resolve(encode(PUBLIC)), "allowed"),
    ("resolve", resolve(encode(YGGDRASIL)), "allowed"),
    ("resolve", resolve(encode("::1")), "refused"),
    ("resolve", resolve("jabber.example.org"), "not_v6alt"),
    ("peer", peer(encode(YGGDRASIL), YGGDRASIL), "allowed"),
    ("peer", peer(encode(PUBLIC), IPv6Address("2a01::5")), "mismatch"),
    ("peer", peer(encode("fd00::1"), IPv6Address("fd00::1")), "refused"),
    ("peer", peer("jabber.example.org", PUBLIC), "allowed"),
    ("peer", peer(encode(PUBLIC), IPv4Address("192.0.2.1")), "mismatch"),
    ("peer", peer("jabber.example.org", IPv4Address("192.0.2.1")), "allowed"),
    ("pin", PinAnswer("x.v6.alt", PUBLIC, "enforce", True, "new", None, "pinned"), "accepted"),
    ("pin", PinAnswer("x.v6.alt", PUBLIC, "warn", True, "mismatch", None, "kept"), "accepted"),
    ("pin", PinAnswer("x.v6.alt", PUBLIC, "enforce", False, "mismatch", "no", "no"), "refused"),
    ("pin", PinAnswer("x.v6.alt", PUBLIC, "off", False, "not_pinnable", "no", None), "refused"),
    ("health", HealthAnswer("0.1.0"), "ok"),
    ("name", NameAnswer(PUBLIC, encode(PUBLIC)), "ok"),
]


@pytest.mark.parametrize(("endpoint", "answer", "verdict"), ANSWERS)
def test_an_older_module_reads_the_same_fields_and_derives_the_same_verdict(
    endpoint: str, answer: LookupAnswer, verdict: str
) -> None:
    body = answer.to_json()
    assert list(body) == [*FIELDS_BEFORE_VERDICT[endpoint], "verdict"]
    assert body["verdict"] == answer.verdict.value == verdict
    if endpoint != "name":  # mod_v6alt never asks /v1/name
        assert older_module_verdict(endpoint, body) == verdict


def test_resolve_answer_on_the_wire() -> None:
    answer = resolve(encode(YGGDRASIL).upper().replace(".V6.ALT", ".v6.alt"))
    assert answer.to_json() == {
        "name": encode(YGGDRASIL).upper().replace(".V6.ALT", ".v6.alt"),
        "is_v6alt": True,
        "address": str(YGGDRASIL),
        "port": 5269,
        "allowed": True,
        "rule": answer.rule,
        "rule_id": "allow_yggdrasil",
        "canonical": False,
        "tls_required": False,
        "trust": "ip_bound",
        "pinning": "off",
        "verdict": "allowed",
    }
    assert answer.rule_id == "allow_yggdrasil"


def test_answers_outside_the_policy_have_no_rule() -> None:
    for answer in (resolve("jabber.example.org"), peer(encode(PUBLIC), IPv4Address("192.0.2.1"))):
        assert answer.rule_id == "" and answer.to_json()["rule_id"] == ""
    other = resolve("jabber.example.org").to_json()
    assert (other["address"], other["port"], other["rule"]) == (None, None, "not a v6.alt name")
