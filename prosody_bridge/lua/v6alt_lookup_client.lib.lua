-- The client of the sidecar's lookup service (HTTP + JSON on loopback,
-- docs/dns.md "Lookup service").
--
-- new(options) -> client; options: url (http://HOST:PORT), timeout
-- (seconds, from when a request is sent, not while it waits its turn),
-- concurrency (lookups open at once; the rest wait in v6alt_lookup_queue),
-- counted(path, ok, value) for every settled lookup (metrics).
--
-- client:ask(path, params) -> promise: resolves with the decoded JSON
-- object; rejects with { reason = string, unavailable = bool }
-- (unavailable: the service itself did not answer, as opposed to refusing
-- the input). client:failure(err, what) logs a rejection and returns the
-- reason to give the peer.

local import = module:require("v6alt_compat").import;

local http = import "net.http";
local formencode = import "util.http".formencode;
local json = import "util.json";
local promise = import "util.promise";

local new_queue = module:require("v6alt_lookup_queue").new;

local client_methods = {};
local client_mt = { __index = client_methods };

local function new(options)
	return setmetatable({
		url = options.url; timeout = options.timeout; counted = options.counted;
		queue = new_queue(options.concurrency);
		http = http.new({ suppress_errors = true });
	}, client_mt);
end

function client_methods:ask(path, params)
	local url = self.url .. path .. "?" .. formencode(params);
	local timeout = self.timeout;
	return promise.new(function (resolve, reject)
		self.queue:run(function (done)
			local settled = false;
			local function settle(fn, value)
				if settled then return; end
				settled = true;
				done();
				self.counted(path, fn == resolve, value);
				fn(value);
			end
			local request;
			-- module:add_timer, not util.timer: the timer dies with the module.
			module:add_timer(timeout, function ()
				if settled then return; end
				settle(reject, { unavailable = true; reason = ("no answer within %gs"):format(timeout) });
				if request then http.destroy_request(request); end
			end);
			request = self.http:request(url, nil, function (body, code)
				if code == 0 then
					return settle(reject, { unavailable = true; reason = tostring(body) });
				end
				local answer = type(body) == "string" and json.decode(body) or nil;
				if code ~= 200 then
					local text = type(answer) == "table" and answer.error or ("HTTP status " .. tostring(code));
					return settle(reject, { unavailable = code >= 500; reason = tostring(text) });
				end
				if type(answer) ~= "table" then
					return settle(reject, { unavailable = true; reason = "answer is not a JSON object" });
				end
				settle(resolve, answer);
			end);
		end);
	end);
end

function client_methods:failure(err, what)
	if type(err) == "table" and err.unavailable then
		module:log("error", "v6alt lookup service at %s unavailable (%s): refusing %s until it answers",
			self.url, err.reason, what);
		return "v6.alt name check unavailable";
	end
	local reason = type(err) == "table" and err.reason or tostring(err);
	module:log("warn", "v6alt lookup service refused %s: %s", what, reason);
	return reason;
end

return { new = new };
