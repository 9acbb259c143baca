"""Every refusal of a v6.alt peer is logged and counted once, whichever hook refuses it.

mod_v6alt.lua loaded whole under lua5.4 with a stand-in Prosody
(lua_harness.py): each hook that refuses a peer is called with a made-up
session, and the lookup service's answers are canned. The real-server
tests (test_refusals.py, test_metrics.py) show the same refusals end to end.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .lua_harness import LUA, run_lua

pytestmark = pytest.mark.skipif(LUA is None, reason="lua5.4 (Prosody 13's Lua) missing")

SCRIPT = r"""
dofile(LUA_DIR .. "mod_v6alt.lua")
module.add_host(new_host_module("a.v6.alt"))

local MISMATCH = { name = "x"; address = "200::c"; is_v6alt = true; matches = false; allowed = true;
    rule = "allowed: Yggdrasil (200::/7)"; rule_id = "allow_yggdrasil"; tls_required = true;
    trust = "ca"; pinning = "off"; verdict = "mismatch" }

local function new_session(fields)
    local session = {}
    function session.log(level, fmt, ...) logged[#logged + 1] = level .. ": " .. fmt:format(...) end
    function session:close(err, _, bounce)
        self.closed = err.condition .. " | " .. err.text .. " | " .. bounce
    end
    for k, v in pairs(fields) do session[k] = v end
    return session
end

local function fire(event, data)
    for _, handler in ipairs(hooks[event]) do
        local result = handler(data)
        if result ~= nil then return result end
    end
end

local function show(case, result, session)
    local refusing = 0
    for _, line in ipairs(logged) do
        if line:find("Refusing v6.alt peer", 1, true) then refusing = refusing + 1 end
    end
    print(("%s: returns %s, refused %d, logged %d, closed %s"):format(case, tostring(result),
        counted["trust_decisions refused"], refusing, tostring(session.closed)))
end

answers["/v1/peer"] = MISMATCH

-- A second domain on a stream that is only "secure" because of a tls: off range.
local s = new_session({ direction = "incoming"; ip = "200::b"; v6alt_plaintext_host = "b.v6.alt" })
show("plaintext", fire("s2s-authenticated", { session = s; host = "other.example" }), s)

-- Dialback authenticates a further v6.alt domain from another address.
s = new_session({ direction = "incoming"; ip = "200::c" })
show("authenticated", fire("s2s-authenticated", { session = s; host = "d.v6.alt" }), s)

s = new_session({ direction = "incoming"; ip = "200::c"; from_host = "d.v6.alt" })
show("features", fire("s2s-stream-features", { origin = s }), s)

s = new_session({ direction = "incoming"; ip = "200::c" })
show("certificate", fire("s2s-check-certificate", { session = s; host = "d.v6.alt" }), s)

s = new_session({ direction = "outgoing"; type = "s2sout_unauthed"; ip = "200::c";
    to_host = "d.v6.alt" })
local stanza = { get_child = function () return nil end }
show("outgoing", hooks["http://etherx.jabber.org/streams|features"][1](s, stanza), s)

s = new_session({ direction = "incoming"; ip = "200::e"; v6alt_plaintext_host = "e.v6.alt";
    type = "s2sin_unauthed" })
show("starttls", fire("stanza/urn:ietf:params:xml:ns:xmpp-tls:starttls", { origin = s }), s)

answers["/v1/peer"] = nil -- the sidecar is down
s = new_session({ direction = "incoming"; ip = "200::c" })
show("unavailable", fire("s2s-authenticated", { session = s; host = "f.v6.alt" }), s)

print(("lookups: mismatch %d, unavailable %d"):format(
    counted["lookups peer mismatch allow_yggdrasil"], counted["lookups peer unavailable "]))
"""


def test_every_refusal_is_logged_counted_and_closes_the_stream(tmp_path: Path) -> None:
    lines = run_lua(tmp_path, SCRIPT)
    expected_counts = [
        ("plaintext", "false", 1),
        ("authenticated", "false", 2),
        ("features", "true", 3),
        ("certificate", "false", 4),
        ("outgoing", "true", 5),
        ("starttls", "true", 6),
        ("unavailable", "false", 7),
    ]
    assert len(lines) == len(expected_counts) + 1, lines
    for line, (case, result, count) in zip(lines[:-1], expected_counts, strict=True):
        head = f"{case}: returns {result}, refused {count}, logged {count}, closed "
        assert line.startswith(head + "policy-violation | "), line
    plaintext, authenticated = lines[0], lines[1]
    # The two refusals of s2s-authenticated were not counted before.
    assert "only b.v6.alt may use this unencrypted stream" in plaintext
    assert "v6.alt domain d.v6.alt refused for [200::c]: 200::c is not the address of d.v6.alt" in (
        authenticated
    )
    assert authenticated.endswith("| v6.alt peer refused: 200::c is not the address of d.v6.alt")
    # A TLS mismatch tells the peer and the senders the same text.
    assert lines[5].endswith(
        "have tls: off for [200::e] (the peer's secure_ranges do not have tls: off for this "
        "server's address); both servers need the same secure_ranges"
    )
    assert "v6.alt name check unavailable" in lines[6]
    assert lines[-1] == "lookups: mismatch 4, unavailable 1"
