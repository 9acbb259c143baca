-- luacheck configuration for the Prosody modules in prosody_bridge/lua/:
-- tox's lint env and tests/prosody/test_module_files.py both use it.
-- Prosody 13 (Debian) runs on Lua 5.4.
std = "lua54"
max_line_length = false

-- What Prosody gives a module's environment: the module API object (any of
-- its methods may be read) and the server-wide `prosody` table.
read_globals = {
	module = { other_fields = true },
	prosody = { other_fields = true },
}
-- The module callbacks a mod_*.lua may define on `module`.
globals = {
	"module.add_host",
	"module.command",
	"module.load",
	"module.ready",
	"module.restore",
	"module.save",
	"module.unload",
}
