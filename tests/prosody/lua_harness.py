"""mod_v6alt's Lua files under lua5.4 (Prosody 13's Lua) with a stand-in Prosody.

``FAKE_PROSODY`` is Lua that defines the global ``module`` (the module API
the files call: options from ``config``, ``log`` into ``logged``, ``metric``
counters into ``counted``, hooks into ``hooks``) and fakes of the Prosody
libraries they import, so that a file (or the whole module) loads and its
hooks can be called with made-up sessions. ``net.http`` answers each
lookup at once with ``answers[path]`` (a table: the decoded JSON object,
or ``{ code = N }``). The real-server tests show the same code inside
Prosody; these pin down rules without one.
"""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources
from pathlib import Path

LUA = shutil.which("lua5.4")
#: The shipped Lua files (package data of v6alt.prosody_bridge).
LUA_DIRECTORY = Path(str(resources.files("v6alt.prosody_bridge") / "lua"))

FAKE_PROSODY = r"""
LUA_DIR = arg[1] .. "/"
config, logged, counted, hooks, answers, asked = {}, {}, {}, {}, {}, {}

local function fake_module(host)
    local api = { host = host }
    function api:set_global() end
    function api:require(name) return dofile(LUA_DIR .. name .. ".lib.lua") end
    function api:get_option_scalar(name)
        local value = config[name]
        if type(value) == "table" then value = value[1] end
        return value
    end
    function api:get_option_string(name, default)
        local value = self:get_option_scalar(name)
        if value == nil then return default end
        return tostring(value)
    end
    function api:get_option_number() error("get_option_number differs between 0.12 and 13") end
    function api:log(level, fmt, ...) logged[#logged + 1] = level .. ": " .. fmt:format(...) end
    function api:metric(_, name)
        return { with_labels = function (_, ...)
            local key = table.concat({ name, ... }, " ")
            return { add = function (_, n) counted[key] = (counted[key] or 0) + n end }
        end }
    end
    function api:hook(event, handler)
        hooks[event] = hooks[event] or {}
        table.insert(hooks[event], handler)
    end
    function api:hook_tag(xmlns, name, handler) self:hook(xmlns .. "|" .. name, handler) end
    function api:add_timer() end
    return api
end
module = fake_module("*")
new_host_module = fake_module

-- Anything not given below: every field another stand-in, every call too.
local function anything()
    return setmetatable({}, { __index = function () return anything() end, __call = anything })
end

package.preload["util.promise"] = function ()
    -- Runs the work at once: every fake lookup settles before new() returns.
    return { new = function (work)
        local settled = {}
        work(function (value) settled.value = value end, function (err) settled.err = err end)
        return { settled = settled; next = function (self, ok, fail)
            if settled.err == nil then return ok(settled.value) end
            if fail then return fail(settled.err) end
        end }
    end }
end
package.preload["util.async"] = function ()
    return {
        ready = function () return true end,
        wait_for = function (p) return p.settled.value, p.settled.err end,
    }
end
package.preload["net.http"] = function ()
    return {
        new = function ()
            return { request = function (_, url, _, callback)
                local path = url:match("^https?://[^/]+(/[^?]*)")
                asked[#asked + 1] = path
                local answer = answers[path]
                if answer == nil then return callback("connection refused", 0) end
                callback("answer " .. path, answer.code or 200)
            end }
        end,
        destroy_request = function () end,
    }
end
package.preload["util.json"] = function ()
    return { decode = function (body) return answers[body:match("^answer (.*)$")] end }
end
package.preload["util.http"] = function ()
    return { formencode = function () return "" end }
end
package.preload["util.net"] = function ()
    return { pton = function (text) return text end }
end
package.preload["util.time"] = function ()
    return { now = function () return 0 end }
end
package.preload["util.indexedbheap"] = function ()
    return { create = function () return { insert = function () return 1 end } end }
end
for _, name in ipairs({ "net.resolvers.basic", "util.stanza", "util.encodings", "util.hashes",
        "core.s2smanager", "net.server", "util.cache", "util.jid", "util.id" }) do
    package.preload[name] = anything
end
"""


def run_lua(tmp_path: Path, script: str) -> list[str]:
    """Runs ``FAKE_PROSODY`` then ``script`` under lua5.4; returns the lines it printed."""
    assert LUA is not None
    harness = tmp_path / "harness.lua"
    harness.write_text(FAKE_PROSODY + script)
    result = subprocess.run(
        [LUA, str(harness), str(LUA_DIRECTORY)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()
