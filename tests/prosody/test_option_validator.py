"""mod_v6alt's one validator of number options (v6alt_compat.lib.lua), under lua5.4.

Prosody's own get_option_number differs: 13.0.1 clamps a value outside
the bounds (and raises a Lua error for a non-number when a bound is given),
0.12.3 ignores the bounds. The validator reads the value with
get_option_scalar, which both releases have alike, so it gives the same
answer on both; the stand-in module API here fails any call to
get_option_number to prove it is never asked. test_probe_recovery.py shows
the same log lines from real Prosody 13 and 0.12 servers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .lua_harness import LUA, run_lua

pytestmark = pytest.mark.skipif(LUA is None, reason="lua5.4 (Prosody 13's Lua) missing")

SCRIPT = r"""
local number_option = module:require("v6alt_compat").number_option
local cases = {
    { nil, 2, 0.1, 3600 }, { 5, 2, 0.1, 3600 }, { "7.5", 2, 0.1, 3600 },
    { { 9, 10 }, 2, 0.1, 3600 },
    { 0.1, 2, 0.1, 3600 }, { 3600, 2, 0.1, 3600 }, { 0, 15, 0 }, { 1e9, 15, 0 },
    { -5, 300, 1, 100000 }, { 100001, 300, 1, 100000 }, { "soon", 2, 0.1, 3600 },
    { 0 / 0, 2, 0.1, 3600 }, { true, 2, 0.1, 3600 }, { -1, 3600, 1 }, { "lots", 1000, 1 },
}
for _, case in ipairs(cases) do
    config.v6alt_example = case[1]
    local before = #logged
    local value = number_option(module, "v6alt_example", case[2], case[3], case[4])
    print(("%g%s"):format(value, #logged > before and " | " .. logged[#logged] or ""))
end
"""


def test_one_rule_for_every_number_option(tmp_path: Path) -> None:
    assert run_lua(tmp_path, SCRIPT) == [
        "2",  # not set: the default, silently
        "5",
        "7.5",  # a number written as a string, as get_option_number takes it
        "9",  # a list: its first item, as get_option_scalar takes it
        "0.1",  # both bounds are allowed
        "3600",
        "0",
        "1e+09",  # no upper bound
        "300 | error: v6alt_example = -5 is not a number from 1 to 100000; using 300",
        "300 | error: v6alt_example = 100001 is not a number from 1 to 100000; using 300",
        "2 | error: v6alt_example = soon is not a number from 0.1 to 3600; using 2",
        "2 | error: v6alt_example = -nan is not a number from 0.1 to 3600; using 2",
        "2 | error: v6alt_example = true is not a number from 0.1 to 3600; using 2",
        "3600 | error: v6alt_example = -1 is not a number of at least 1; using 3600",
        "1000 | error: v6alt_example = lots is not a number of at least 1; using 1000",
    ]


MODULE_SCRIPT = r"""
config.v6alt_lookup_timeout = "soon"
config.v6alt_lookup_concurrency = 0
config.v6alt_s2s_probe_rate = -5
config.v6alt_s2s_stall_timeout = -1
config.v6alt_s2s_hold_time = 0
config.v6alt_s2s_hold_max = "many"
dofile(LUA_DIR .. "mod_v6alt.lua")
module.add_host(new_host_module("a.v6.alt"))
for _, line in ipairs(logged) do print(line) end
"""


def test_every_number_option_of_the_module_goes_through_it(tmp_path: Path) -> None:
    assert run_lua(tmp_path, MODULE_SCRIPT) == [
        "error: v6alt_lookup_timeout = soon is not a number of at least 0.1; using 2",
        "error: v6alt_lookup_concurrency = 0 is not a number from 1 to 1024; using 16",
        "error: v6alt_s2s_probe_rate = -5 is not a number from 1 to 100000; using 300",
        "error: v6alt_s2s_stall_timeout = -1 is not a number of at least 0; using 15",
        "error: v6alt_s2s_hold_time = 0 is not a number of at least 1; using 3600",
        "error: v6alt_s2s_hold_max = many is not a number of at least 1; using 1000",
    ]
