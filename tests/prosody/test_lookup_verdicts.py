"""mod_v6alt counts a lookup under the verdict the sidecar's answer carries.

v6alt_metrics.lib.lua under lua5.4 (lua_harness.py). The sidecar decides
each answer's verdict (prosody_bridge/lookup_answer.py); the module reads
it, and counts an answer without one it knows (an older sidecar's, or a
newer one's new verdict) as ``unknown``. tests/test_lookup_answer.py shows
the other direction: the fields an older module derives its verdict from
are all still there, and give the same verdict.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from v6alt.prosody_bridge.lookup_answer import Verdict

from .lua_harness import LUA, LUA_DIRECTORY, run_lua

pytestmark = pytest.mark.skipif(LUA is None, reason="lua5.4 (Prosody 13's Lua) missing")

SCRIPT = r"""
local metrics = module:require("v6alt_metrics").new()
local OLD_PEER = { is_v6alt = true; matches = false; allowed = true; rule_id = "allow_yggdrasil" }
local cases = {
    { "/v1/peer", true, { verdict = "mismatch"; rule_id = "allow_yggdrasil" } },
    { "/v1/resolve", true, { verdict = "not_v6alt"; rule_id = "" } },
    { "/v1/pin", true, { verdict = "accepted"; accept = true } },
    { "/v1/health", true, { verdict = "ok"; ok = true } },
    { "/v1/peer", true, OLD_PEER },
    { "/v1/peer", true, { verdict = "surprise"; rule_id = "allow_yggdrasil" } },
    { "/v1/peer", true, { verdict = { "not", "a", "word" } } },
    { "/v1/resolve", true, { verdict = "refused"; rule_id = ("x"):rep(41) } },
    { "/v1/resolve", true, { verdict = "refused"; rule_id = "Never-Dial" } },
    { "/v1/resolve", false, { unavailable = true; reason = "no answer within 2s" } },
    { "/v1/peer", false, { unavailable = false; reason = "bad name" } },
    { "/v1/name", true, { verdict = "ok" } },
}
for _, case in ipairs(cases) do
    local before = {}
    for key, value in pairs(counted) do before[key] = value end
    metrics.lookup(case[1], case[2], case[3])
    for key, value in pairs(counted) do
        if value ~= (before[key] or 0) then print(key) end
    end
end
"""


def test_the_answer_verdict_is_counted_and_an_unknown_one_named_so(tmp_path: Path) -> None:
    assert run_lua(tmp_path, SCRIPT) == [
        "lookups peer mismatch allow_yggdrasil",
        "lookups resolve not_v6alt ",
        "lookups pin accepted ",
        "lookups health ok ",
        # An older sidecar: no verdict. The rule still counts.
        "lookups peer unknown allow_yggdrasil",
        # A newer sidecar's verdict this module does not know, or no word at all.
        "lookups peer unknown allow_yggdrasil",
        "lookups peer unknown ",
        # Rule identifiers outside their shape never become a label.
        "lookups resolve refused other",
        "lookups resolve refused other",
        "lookups resolve unavailable ",
        "lookups peer error ",
        "lookups other ok ",
    ]


def test_the_module_knows_every_verdict_the_sidecar_sends() -> None:
    text = (LUA_DIRECTORY / "v6alt_metrics.lib.lua").read_text()
    table = re.search(r"local ANSWER_VERDICTS = \{([^}]*)\}", text)
    assert table is not None
    known = set(re.findall(r"(\w+) = true", table.group(1)))
    assert known == {verdict.value for verdict in Verdict}
