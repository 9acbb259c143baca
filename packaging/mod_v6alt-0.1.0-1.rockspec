-- mod_v6alt as a LuaRocks rock, for `prosodyctl install` (docs/prosody.md,
-- "Install with prosodyctl"). Built from a clone with
--   scripts/build-rock.sh        (writes dist/mod_v6alt-<version>-1.all.rock)
-- The version is v6alt's own (core/__init__.py); tests/packaging/test_rock.py
-- fails when this file's name or version does not match it.
rockspec_format = "3.0"
package = "mod_v6alt"
version = "0.1.0-1"
source = {
   -- Built from the repository itself (luarocks make); no download.
   url = "git+file:///dev/null",
}
description = {
   summary = "Prosody module: federate over IPv6 meshes with .v6.alt names (v6alt)",
   detailed = [[
mod_v6alt lets a Prosody 13 (or 0.12) server whose domain is a .v6.alt name
federate directly over an IPv6 mesh, with no DNS and no public CA. It asks
the v6alt sidecar (`v6alt sidecar`, Python package v6alt[sidecar]) for every
name and trust decision.
]],
   license = "Apache-2.0",
   labels = { "prosody", "xmpp", "yggdrasil", "ipv6" },
}
dependencies = {
   "lua >= 5.2",
}
build = {
   type = "builtin",
   modules = {
      -- Prosody finds the module at <installer path>/share/lua/<ver>/mod_v6alt.lua
      -- and, for module:require("v6alt_x"), the library at
      -- <installer path>/share/lua/<ver>/mod_v6alt/v6alt_x.lua.
      ["mod_v6alt"] = "prosody_bridge/lua/mod_v6alt.lua",
      ["mod_v6alt.v6alt_compat"] = "prosody_bridge/lua/v6alt_compat.lib.lua",
      ["mod_v6alt.v6alt_dialback"] = "prosody_bridge/lua/v6alt_dialback.lib.lua",
      ["mod_v6alt.v6alt_internals"] = "prosody_bridge/lua/v6alt_internals.lib.lua",
      ["mod_v6alt.v6alt_lookup_client"] = "prosody_bridge/lua/v6alt_lookup_client.lib.lua",
      ["mod_v6alt.v6alt_lookup_queue"] = "prosody_bridge/lua/v6alt_lookup_queue.lib.lua",
      ["mod_v6alt.v6alt_metrics"] = "prosody_bridge/lua/v6alt_metrics.lib.lua",
      ["mod_v6alt.v6alt_pinning"] = "prosody_bridge/lua/v6alt_pinning.lib.lua",
      ["mod_v6alt.v6alt_probe_scheduler"] = "prosody_bridge/lua/v6alt_probe_scheduler.lib.lua",
      ["mod_v6alt.v6alt_resolver"] = "prosody_bridge/lua/v6alt_resolver.lib.lua",
      ["mod_v6alt.v6alt_s2s_recovery"] = "prosody_bridge/lua/v6alt_s2s_recovery.lib.lua",
   },
}
