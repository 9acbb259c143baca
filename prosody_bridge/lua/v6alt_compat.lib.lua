-- Prosody 13 names its libraries prosody.*; 0.12 has them at the top level.
-- Returns import(name), which loads whichever this server has.

return function (name)
	local ok, lib = pcall(require, "prosody." .. name);
	if ok then return lib; end
	return require(name);
end
