-- The resolver of an outgoing stream to a v6.alt domain (Prosody 13's
-- s2sout-pre-connect hands it over as event.resolver; 0.12 has no such
-- event and resolves through the sidecar's DNS).
--
-- A net.resolvers object (next(cb)) that asks the lookup service's
-- /v1/resolve for the address, then hands over to a basic resolver for that
-- address, so no DNS (SRV, A, AAAA) is ever asked about a v6.alt name.
--
-- new(lookup_service, metrics) -> new_resolver(session, name, extra). On
-- the session it leaves v6alt_dialled (the answer it dialled) or
-- v6alt_lookup_failed (no address: refused or no answer).

local import = module:require("v6alt_compat").import;

local basic_resolver = import "net.resolvers.basic";

local internals = module:require("v6alt_internals");

local resolver_methods = {};
local resolver_mt = { __index = resolver_methods };

function resolver_methods:next(cb)
	if self.target then return self.target:next(cb); end
	if self.done then return cb(nil); end
	self.done = true;
	local session, name, metrics = self.session, self.hostname, self.metrics;
	self.lookup_service:ask("/v1/resolve", { name = name }):next(function (answer)
		if not (answer.is_v6alt and answer.allowed and answer.address) then
			self.last_error = "v6.alt policy: " .. tostring(answer.rule);
			session.v6alt_lookup_failed = true;
			session.log("warn", "Not dialling %s: %s", name, tostring(answer.rule));
			return cb(nil);
		end
		local port = tonumber(answer.port) or 5269;
		session.v6alt_dialled = answer;
		if answer.tls_required == false then
			-- Secure range with "tls: off": the mesh encrypts. Marking the
			-- stream secure stops mod_tls from starting TLS; the certificate
			-- check then trusts the peer by its address.
			internals.mark_secure(session);
			metrics.trust("no_tls");
			session.log("info", "Dialling %s at [%s]:%d without TLS (secure range with tls off)",
				name, answer.address, port);
		else
			session.log("info", "Dialling %s at [%s]:%d (v6.alt, no SRV)", name, answer.address, port);
		end
		self.target = basic_resolver.new(answer.address, port, "tcp", self.extra);
		self.target:next(cb);
	end, function (err)
		self.last_error = self.lookup_service:failure(err, "the outgoing connection to " .. name);
		session.v6alt_lookup_failed = true;
		cb(nil);
	end);
end

local function new(lookup_service, metrics)
	return function (session, name, extra)
		return setmetatable({
			session = session; hostname = name; extra = extra or {};
			lookup_service = lookup_service; metrics = metrics;
		}, resolver_mt);
	end;
end

return { new = new };
