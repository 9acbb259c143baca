-- What differs between Prosody 13 and 0.12, in one place.
--
-- import(name): Prosody 13 names its libraries prosody.*; 0.12 has them at
-- the top level. Loads whichever this server has.
--
-- number_option(mod, name, default, min[, max]): the one validator of
-- mod_v6alt's number options. get_option_number cannot be it: 13.0.1
-- clamps a value outside min and max to the bound (and stops the module
-- with a Lua error when the value is not a number and a bound is given),
-- 0.12.3 ignores the bounds. Here the value is read with get_option_scalar,
-- which both have alike (a list gives its first item), and judged the same
-- way on both: nil is the default; anything that is not a number from min
-- to max is logged as an error naming the option, and the default is used.

local function import(name)
	local ok, lib = pcall(require, "prosody." .. name);
	if ok then return lib; end
	return require(name);
end

local function number_option(mod, name, default, min, max)
	local raw = mod:get_option_scalar(name);
	if raw == nil then return default; end
	local value = tonumber(raw);
	if value ~= nil and value == value and value >= min and (max == nil or value <= max) then
		return value;
	end
	if max then
		mod:log("error", "%s = %s is not a number from %g to %g; using %g", name, tostring(raw), min, max, default);
	else
		mod:log("error", "%s = %s is not a number of at least %g; using %g", name, tostring(raw), min, default);
	end
	return default;
end

return { import = import; number_option = number_option };
