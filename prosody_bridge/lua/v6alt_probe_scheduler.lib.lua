-- One probe scheduler for every v6.alt peer the server waits for.
--
-- A peer is probed with a bare TCP connect to its s2s port. However many
-- peers wait, the total is bounded: a token bucket lets at most `rate`
-- attempts start per second (bursts of at most rate/10 above that), and the
-- peers take turns, the one whose turn is oldest first (a heap on due
-- time). With n peers waiting, each is probed every max(interval, n / rate)
-- seconds; at most rate * timeout probes are open at once.
--
-- new(options) -> scheduler; scheduler:add(key, handlers, delay) enters a
-- peer, its first turn after `delay` seconds; handlers.target() -> address,
-- port (or nil: skip this turn) is asked at each turn, and
-- handlers.result(outcome) hears "connected", "refused", "failed" or
-- "timeout" while the peer is still entered. scheduler:remove(key).

local import = module:require("v6alt_compat").import;

local indexedbheap = import "util.indexedbheap";
local server = import "net.server";
local time_now = import "util.time".now;

local TICK = 0.1; -- seconds between runs while attempts wait for tokens

-- A TCP connect to address:port; done(outcome) once, "connected" or why not.
local function tcp_probe(address, port, timeout, done)
	local settled = false;
	local function settle(outcome)
		if settled then return; end
		settled = true;
		done(outcome);
	end
	local listener = {
		onconnect = function (conn) settle("connected"); conn:close(); end;
		ondisconnect = function (_, err)
			settle(tostring(err):lower():find("refused", 1, true) and "refused" or "failed");
		end;
		onincoming = function () end;
	};
	local conn, err = server.addclient(address, port, listener, "*a", nil, "tcp6");
	if not conn then
		module:log("debug", "v6alt probe of [%s]:%d not started: %s", address, port, tostring(err));
		return settle("failed");
	end
	module:add_timer(timeout, function ()
		if settled then return; end
		settle("timeout");
		conn:close();
	end);
end

local scheduler = {};
scheduler.__index = scheduler;

-- options: rate (attempts/s), interval (s, per peer), timeout (s, per
-- attempt), counted(outcome) for every attempt's outcome (metrics).
local function new(options)
	local burst = math.max(1, options.rate * TICK);
	return setmetatable({
		rate = options.rate; interval = options.interval; timeout = options.timeout;
		counted = options.counted or function () end;
		burst = burst; tokens = burst; refilled = time_now();
		heap = indexedbheap.create(); entries = {}; size = 0;
	}, scheduler);
end

function scheduler:has(key) return self.entries[key] ~= nil; end
function scheduler:count() return self.size; end

-- The period each peer is probed at with the peers now entered.
function scheduler:period()
	return math.max(self.interval, self.size / self.rate);
end

function scheduler:add(key, handlers, delay)
	if self.entries[key] then return; end
	local entry = { key = key; handlers = handlers };
	local due = time_now() + (delay or 0);
	entry.id = self.heap:insert(entry, due);
	self.entries[key] = entry;
	self.size = self.size + 1;
	self:wake(due);
end

function scheduler:remove(key)
	local entry = self.entries[key];
	if not entry then return; end
	self.entries[key] = nil;
	self.size = self.size - 1;
	self.heap:remove(entry.id);
end

-- Run at `at` (or earlier, if already due then).
function scheduler:wake(at)
	if self.wake_at and self.wake_at <= at then return; end
	local token = {};
	self.wake_at, self.wake_token = at, token;
	module:add_timer(math.max(0, at - time_now()), function ()
		if self.wake_token ~= token then return; end
		self.wake_at, self.wake_token = nil, nil;
		self:run();
	end);
end

function scheduler:attempt(entry)
	local address, port = entry.handlers.target();
	if not address then return false; end
	module:log("debug", "v6alt probe of [%s]:%d (%d peer(s) waiting)", address, port, self.size);
	tcp_probe(address, port, self.timeout, function (outcome)
		self.counted(outcome);
		if self.entries[entry.key] == entry then entry.handlers.result(outcome); end
	end);
	return true;
end

function scheduler:run()
	local now = time_now();
	self.tokens = math.min(self.burst, self.tokens + (now - self.refilled) * self.rate);
	self.refilled = now;
	while self.tokens >= 1 do
		local due = self.heap:peek();
		if due == nil or due > now then break; end
		local _, entry = self.heap:pop();
		entry.id = self.heap:insert(entry, now + self.interval);
		-- A skipped turn (no address yet) costs no token.
		if self:attempt(entry) then self.tokens = self.tokens - 1; end
	end
	local due = self.heap:peek();
	if due == nil then return; end
	if self.tokens < 1 then due = math.max(due, now + TICK); end
	self:wake(due);
end

return { new = new };
