"""The policy's rule identifiers: a fixed set, so metrics can be labelled by them."""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from v6alt.config import parse_config
from v6alt.ipranges import NEVER_DIAL_RANGES
from v6alt.policy import Policy, rule_ids

DEFAULT = Policy()
WIDE = Policy(
    parse_config(
        {
            "ranges": {
                "allow": ["200::/7", "2000::/3", "3000:1::/32"],
                "cjdns": True,
                "unsafe_allow": ["fd00:1::/32"],
            }
        }
    )
)


@pytest.mark.parametrize(
    ("policy", "address", "rule_id"),
    [
        (DEFAULT, "::1", "never_dial_loopback"),
        (DEFAULT, "fd12::1", "never_dial_ula"),
        (DEFAULT, "fe80::1", "never_dial_link_local"),
        (DEFAULT, "2002:a00:1::1", "never_dial_6to4"),  # 6to4 of 10.0.0.1
        (DEFAULT, "2002:808:808::1", "allow_global_unicast"),  # 6to4 of 8.8.8.8: global
        (DEFAULT, "64:ff9b::a00:1", "never_dial_nat64"),
        (DEFAULT, "2001:db8::1", "never_dial_documentation"),
        (DEFAULT, "200:1::1", "allow_yggdrasil"),
        (DEFAULT, "2a00:1098:3a0::1", "allow_global_unicast"),
        (DEFAULT, "fc00::1", "cjdns_off"),
        (DEFAULT, "4000::1", "outside_allow"),
        (WIDE, "fc00::1", "allow_cjdns"),
        (WIDE, "fd00:1::5", "unsafe_allow"),
        (WIDE, "fd00:2::5", "never_dial_ula"),
    ],
)
def test_rule_id(policy: Policy, address: str, rule_id: str) -> None:
    decision = policy.decide(address)
    assert decision.rule_id == rule_id
    assert rule_id in rule_ids()


def test_a_configured_range_has_no_cidr_in_its_id() -> None:
    policy = Policy(parse_config({"ranges": {"allow": ["3000:1::/32"]}}))
    decision = policy.decide("3000:1::9")
    assert decision.allowed
    assert "3000:1::/32" in decision.rule  # the log text names it ...
    assert decision.rule_id == "allow_configured_range"  # ... the label does not


def test_every_never_dial_range_has_its_own_id() -> None:
    # The last address of each range lies in no more specific never-dial range.
    ids = {DEFAULT.decide(s.network[-1]).rule_id for s in NEVER_DIAL_RANGES}
    # Two documentation prefixes share a name and so an id; every other range has its own.
    assert len(ids) == len({s.name for s in NEVER_DIAL_RANGES})


def test_named_yggdrasil_ranges_have_their_own_ids() -> None:
    # Listed in ranges.allow by themselves, the two halves of 200::/7 keep their names.
    split = Policy(parse_config({"ranges": {"allow": ["200::/8", "300::/8"]}}))
    assert split.decide("200::1").rule_id == "allow_yggdrasil_node"
    assert split.decide("300::1").rule_id == "allow_yggdrasil_subnet"
    assert {"allow_yggdrasil_node", "allow_yggdrasil_subnet"} <= rule_ids()
    # Under the default 200::/7 a 300::/8 address is allowed by that entry, as before.
    assert DEFAULT.decide("300::1").rule_id == "allow_yggdrasil"


def test_the_set_is_small() -> None:
    assert len(rule_ids()) < 40


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_any_address_gets_an_id_from_the_set(value: int) -> None:
    for policy in (DEFAULT, WIDE):
        decision = policy.decide(IPv6Address(value))
        assert decision.rule_id in rule_ids()
        assert decision.rule_id.startswith(("allow_", "unsafe_allow")) is decision.allowed
