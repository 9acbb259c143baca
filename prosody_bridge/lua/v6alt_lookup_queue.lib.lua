-- At most `limit` lookups open at once; the rest wait their turn, in order.
--
-- Each lookup is one HTTP request on a connection of its own (net.http opens
-- one per request). A burst of new destinations (a roster spanning hundreds
-- of v6.alt servers, a server coming back to all its peers) would otherwise
-- open hundreds of connections to the sidecar at once, past its
-- lookup_connections limit, where it closes the oldest to admit new ones (its
-- slow-client defence). Queued here, the burst is answered at the sidecar's
-- pace and no connection is closed unanswered.
--
-- new(limit) -> queue; queue:run(start) calls start(done) now if fewer than
-- `limit` are open, else when one finishes; start must call done() once when
-- its lookup is settled (answered, failed or timed out).

local queue_methods = {};
local queue_mt = { __index = queue_methods };

local function new(limit)
	return setmetatable({ limit = limit; open = 0; waiting = {}; first = 1; last = 0 }, queue_mt);
end

function queue_methods:run(start)
	self.last = self.last + 1;
	self.waiting[self.last] = start;
	self:_pump();
end

-- A loop, not a call from each done(): a lookup that settles at once (the
-- connect fails on the spot) must not nest one call per waiting lookup.
function queue_methods:_pump()
	if self.pumping then return; end
	self.pumping = true;
	while self.open < self.limit and self.first <= self.last do
		local start = self.waiting[self.first];
		self.waiting[self.first] = nil;
		self.first = self.first + 1;
		self.open = self.open + 1;
		local finished = false;
		local function done()
			if finished then return; end
			finished = true;
			self.open = self.open - 1;
			self:_pump();
		end
		local ok, err = pcall(start, done);
		if not ok then
			module:log("error", "v6alt lookup failed to start: %s", tostring(err));
			done();
		end
	end
	self.pumping = false;
end

-- How many lookups wait for a turn (for the log and tests).
function queue_methods:queued()
	return self.last - self.first + 1;
end

return { new = new };
