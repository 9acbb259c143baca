"""The checks mod_v6alt makes before mod_dialback verifies a claim, without a server.

mod_v6alt.lua loaded whole under lua5.4 with a stand-in Prosody
(lua_harness.py); the ``db:result`` hook above mod_dialback is called with
made-up sessions and the lookup service's answers are canned. The real-server
tests (test_dialback_address.py) show the same end to end.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .lua_harness import LUA, run_lua

pytestmark = pytest.mark.skipif(LUA is None, reason="lua5.4 (Prosody 13's Lua) missing")

SCRIPT = r"""
package.loaded["util.encodings"] = { stringprep = { nameprep = function (s) return s end } }
package.loaded["core.modulemanager"] = { is_loaded = function () return true end }
-- A stanza: enough of util.stanza to read what is answered.
local function stanza(name, attr)
    local s = { name = name; attr = attr or {}; children = {} }
    function s:tag(n) self.children[#self.children + 1] = n; return self end
    function s:text(t)
        if t then self.children[#self.children + 1] = "text:" .. t end
        return self
    end
    function s:up() return self end
    function s:get_text() return self.body or "" end
    return s
end
package.loaded["util.stanza"] = { stanza = stanza }
config.v6alt_dialback_max_per_stream = 2
config.v6alt_dialback_max_pending = 3
dofile(LUA_DIR .. "mod_v6alt.lua")
local host = new_host_module("a.v6.alt")
function host:get_option_set() return { contains = function () return false end } end
function host:get_option_boolean(name, default)
    if name == "s2s_secure_auth" then return true end
    return default
end
module.add_host(host)

local streams = 0
local function new_session(ip, from_host)
    streams = streams + 1
    local session = { direction = "incoming"; type = "s2sin_unauthed"; ip = ip;
        from_host = from_host; streamid = "stream" .. streams; hosts = {} }
    function session.log(level, fmt, ...) logged[#logged + 1] = level .. ": " .. fmt:format(...) end
    function session.sends2s(s)
        print(("  answer %s type=%s to=%s: %s"):format(s.name, tostring(s.attr.type),
            tostring(s.attr.to), table.concat(s.children, " ")))
    end
    function session:close() print("  closed") end
    return session
end
local function claim(session, from, body)
    local s = stanza("result", { from = from; to = "a.v6.alt" })
    s.body = body or "key"
    -- The first hook is the check above mod_dialback (the last, mod_v6alt's
    -- answer for hosts without mod_dialback, is not called).
    local check = hooks["stanza/jabber:server:dialback:result"][1]
    local result = check({ origin = session; stanza = s })
    return result
end
local function peer(name, address, matches)
    answers["/v1/peer"] = { name = name; address = address; is_v6alt = true; matches = matches;
        allowed = true; rule = "allowed: Yggdrasil (200::/7)"; rule_id = "allow_yggdrasil";
        tls_required = true; trust = "ip_bound"; pinning = "off";
        verdict = matches and "allowed" or "mismatch" }
    answers["/v1/resolve"] = { name = name; is_v6alt = true; address = "200::d"; port = 5269;
        allowed = true; rule = "allowed"; tls_required = true; trust = "ip_bound"; pinning = "off";
        verdict = "allowed" }
end

print("mismatch")
peer("d.v6.alt", "200::c", false)
local s = new_session("200::c", "c.v6.alt")
print("  returns " .. tostring(claim(s, "d.v6.alt")))
print("  refused " .. tostring(counted["trust_decisions refused"]))

print("bad")
print("  returns " .. tostring(claim(s, nil)))
print("  returns " .. tostring(claim(s, "c.v6.alt", "  ")))

print("bounds")
peer("x.c.v6.alt", "200::c", true)
print("  returns " .. tostring(claim(s, "x.c.v6.alt")))
print("  returns " .. tostring(claim(s, "x.c.v6.alt")))
print("  returns " .. tostring(claim(s, "y.c.v6.alt")))
print("  returns " .. tostring(claim(s, "z.c.v6.alt")))
local other = new_session("200::c", "c.v6.alt")
print("  returns " .. tostring(claim(other, "v.c.v6.alt")))
print("  returns " .. tostring(claim(other, "w.c.v6.alt")))

print("released")
for _, handler in ipairs(hooks["s2sin-destroyed"]) do handler({ session = s }) end
print("  returns " .. tostring(claim(other, "w.c.v6.alt")))

print("secure_auth")
local dns = new_session("200::e", "e.example")
dns.cert_chain_status, dns.cert_identity_status = "valid", "valid"
for _, handler in ipairs(hooks["s2sin-destroyed"]) do handler({ session = other }) end
print("  returns " .. tostring(claim(dns, "e.example")))
print("  returns " .. tostring(claim(dns, "f.example")))
for _, line in ipairs(logged) do print("log " .. line) end
"""


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    tmp_path: Path = tmp_path_factory.mktemp("dialback")
    return run_lua(tmp_path, SCRIPT)


def section(lines: list[str], name: str) -> list[str]:
    start = lines.index(name) + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("  ")), len(lines))
    return lines[start:end]


def test_a_claim_from_another_address_is_refused_counted_and_answered(
    printed: list[str],
) -> None:
    answer, returns, refused = section(printed, "mismatch")
    assert answer.startswith("  answer result type=error to=d.v6.alt: error policy-violation")
    assert returns == "  returns true" and refused == "  refused 1"
    assert "closed" not in "\n".join(printed)
    log = [line for line in printed if "Refusing v6.alt peer d.v6.alt at [200::c]" in line]
    assert len(log) == 1, printed
    assert "dialback claim from [200::c], but d.v6.alt is at [200::d]" in log[0]


def test_requests_without_addressing_or_key_get_bad_request(printed: list[str]) -> None:
    lines = section(printed, "bad")
    assert [line for line in lines if "answer" in line] == [
        "  answer result type=error to=nil: error bad-request text text:from, to and a key are "
        "required",
        "  answer result type=error to=c.v6.alt: error bad-request text text:from, to and a key "
        "are required",
    ]


def test_pending_verifications_are_bounded_per_stream_and_in_all(printed: list[str]) -> None:
    lines = section(printed, "bounds")
    # Passed on to mod_dialback (nil), or answered here (true).
    returns = [line for line in lines if "returns" in line]
    assert returns == [
        "  returns nil",  # x: first on the stream
        "  returns true",  # x again: already pending
        "  returns nil",  # y: second on the stream
        "  returns true",  # z: the stream's bound (2)
        "  returns nil",  # v on another stream: third in all
        "  returns true",  # w: the server's bound (3)
    ]
    assert sum("resource-constraint" in line for line in lines) == 3
    # The first stream's end frees its slots.
    assert section(printed, "released")[-1] == "  returns nil"


def test_secure_auth_keeps_dns_claims_to_the_certificate(printed: list[str]) -> None:
    lines = section(printed, "secure_auth")
    assert lines[0] == "  returns nil"  # the stream's own, CA-valid domain
    assert "not-authorized" in lines[1] and lines[2] == "  returns true"
    assert any("dialback claim of f.example refused (s2s_secure_auth)" in line for line in printed)
