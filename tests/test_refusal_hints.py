"""Each refusal rule of the policy gets a hint naming the setting that lifts it,
and that setting, applied, passes `config check` and makes the policy dial."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, IPv6Network
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli_support import run
from v6alt.check import hints
from v6alt.check.policy_view import judge_address
from v6alt.config import parse_config
from v6alt.ipranges import NEVER_DIAL_RANGES
from v6alt.policy import Policy, rule_ids

DEFAULT = Policy()


def _inside(network: IPv6Network) -> IPv6Address:
    if network.prefixlen == 128:
        return network.network_address
    if network == IPv6Network("::/96"):  # IPv4-compatible: ::1 and :: are their own ranges
        return IPv6Address("::10.0.0.1")
    if network == IPv6Network("64:ff9b::/96"):
        return IPv6Address(int(network.network_address) | int(IPv4Address("10.0.0.1")))
    if network == IPv6Network("2002::/16"):
        return IPv6Address(int(network.network_address) | int(IPv4Address("10.0.0.1")) << 80)
    return network.network_address + 1


def _refusals() -> dict[str, IPv6Address]:
    """One refused address for every refusal rule the default policy has."""
    cases = {f"never_dial_{s.name}": _inside(s.network) for s in NEVER_DIAL_RANGES}
    cases["cjdns_off"] = IPv6Address("fc00::1")
    cases["outside_allow"] = IPv6Address("4000::1")
    return cases


REFUSALS = _refusals()


def _merge(base: dict[str, Any], fragment: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in fragment.items():
        merged[key] = _merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return merged


def test_every_refusal_rule_is_covered() -> None:
    refused = {DEFAULT.decide(a).rule_id for a in REFUSALS.values()}
    assert all(not DEFAULT.decide(a).allowed for a in REFUSALS.values())
    allowing = {r for r in rule_ids() if r.startswith("allow_") or r == "unsafe_allow"}
    assert refused == rule_ids() - allowing


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_the_hint_names_the_setting_that_lifts_the_refusal(tmp_path: Path, case: str) -> None:
    address = REFUSALS[case]
    verdict = judge_address(DEFAULT, address, None)
    assert not verdict.allowed
    hint = hints.never_dial("n.v6.alt", address, verdict.rule, verdict.rule_id)
    fix = hints.refusal_fix(address, verdict.rule_id)
    assert fix.setting in hint
    # The setting passes `config check` and the policy then dials the address.
    path = tmp_path / "v6alt.yaml"
    path.write_text(yaml.safe_dump(fix.config))
    checked = run("config", "check", str(path))
    assert checked.code == 0, checked.err
    assert Policy(parse_config(_merge({}, fix.config))).decide(address).allowed
    # The same hint when only the rule text is known (older callers).
    assert hints.never_dial("n.v6.alt", address, verdict.rule) == hint


def test_cjdns_hint_is_ranges_cjdns_not_unsafe_allow() -> None:
    verdict = judge_address(DEFAULT, IPv6Address("fc00::1"), None)
    hint = hints.never_dial("n", IPv6Address("fc00::1"), verdict.rule, verdict.rule_id)
    assert "ranges.cjdns: true" in hint and "unsafe_allow" not in hint


def test_never_dial_hints_are_for_labs_only() -> None:
    for case, address in REFUSALS.items():
        if case.startswith("never_dial_"):
            verdict = judge_address(DEFAULT, address, None)
            hint = hints.never_dial("n", address, verdict.rule, verdict.rule_id)
            assert "for a lab only" in hint and "ranges.unsafe_allow" in hint


def test_blocklist_hint_names_fc00_8_not_fc00_7() -> None:
    cjdns = Policy(parse_config({"ranges": {"cjdns": True}}))
    verdict = judge_address(cjdns, IPv6Address("fc00::1"), None)
    assert verdict.allowed and verdict.synapse_blocklist == "fc00::/7"
    assert verdict.synapse_allowlist_entry == "fc00::/8"
    hint = hints.synapse_blocklist(
        IPv6Address("fc00::1"), verdict.synapse_blocklist, verdict.synapse_allowlist_entry
    )
    assert "must list fc00::/8 in ip_range_whitelist" in hint
    assert "not fc00::/7, which would also let Synapse dial ULA fd00::/8" in hint


def test_blocklist_hint_for_a_lifted_range_names_the_lift() -> None:
    lab = Policy(parse_config({"ranges": {"unsafe_allow": ["::1/128"]}}))
    verdict = judge_address(lab, IPv6Address("::1"), None)
    assert verdict.allowed and verdict.synapse_allowlist_entry == "::1/128"


def test_ipv4_hint() -> None:
    assert "public address" in hints.never_dial("n", IPv4Address("10.0.0.1"), "never-dial")


def test_check_docs_advise_fc00_8() -> None:
    docs = Path(__file__).resolve().parents[1] / "docs" / "check.md"
    (row,) = [
        line for line in docs.read_text().splitlines() if "`policy.synapse_blocklist`" in line
    ]
    assert "fc00::/8 for cjdns" in row and "not fc00::/7" in row
