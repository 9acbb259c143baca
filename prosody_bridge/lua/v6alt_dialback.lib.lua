-- Dialback (XEP-0220) bound to the address, for mod_v6alt.
--
-- Prosody's mod_dialback does the protocol: it makes and checks the keys,
-- answers db:verify, and verifies an incoming db:result by routing a
-- db:verify to the claimed domain (route/remote). For a v6.alt domain that
-- verification connection is dialled where mod_v6alt dials any v6.alt
-- domain, the address the name encodes (13: the resolver of
-- s2sout-pre-connect; 0.12: the sidecar's DNS, and an outgoing stream to
-- another address is refused at its first features), so a dialback of a
-- v6.alt domain proves both the address and that the server there holds
-- the key. This library stands in front of mod_dialback's handling of an
-- incoming db:result (priority 100, above its 0) and, before any
-- verification connection is made:
--
--  * answers a malformed request with the XEP's error element, never
--    closing the stream;
--  * bounds the verifications pending, per stream and for the server;
--    over the bound a claim gets <resource-constraint/> (type wait);
--  * refuses a v6.alt claim from an address the name does not encode
--    (counted and logged as every refusal, naming both addresses);
--  * keeps s2s_secure_auth's meaning: with it, only a v6.alt domain bound
--    to its address is authenticated by dialback; any other claim needs
--    the stream's certificate, which Prosody accepted for that very domain.
--
-- A verification ends when the claimed domain's answer arrives, when the
-- connection to it closes first (<remote-connection-failed/>), after
-- `timeout` seconds (<remote-server-timeout/>), or with the stream.

local compat = module:require("v6alt_compat");
local import = compat.import;

local st = import "util.stanza";
local time_now = import "util.time".now;
local nameprep = import "util.encodings".stringprep.nameprep;
-- Loaded when first asked, so that the library also loads outside a
-- server (tests/prosody/lua_harness.py).
local modulemanager;
local function dialback_loaded(host)
	modulemanager = modulemanager or import "core.modulemanager";
	return modulemanager.is_loaded(host, "dialback");
end

local DIALBACK = "jabber:server:dialback";
local STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";

-- A dialback answer with an error (XEP-0220, "Dialback errors"): the
-- element of the request, from this server's domain, with the condition.
local function dialback_error(stanza, error_type, condition, text)
	local attr = stanza.attr;
	local reply = st.stanza(stanza.name, { xmlns = DIALBACK; from = attr.to; to = attr.from; id = attr.id; type = "error" })
		:tag("error", { type = error_type })
		:tag(condition, { xmlns = STANZAS }):up();
	if text then reply:tag("text", { xmlns = STANZAS }):text(text):up(); end
	return reply;
end

-- options: per_stream, max_pending, timeout (numbers).
-- deps: is_v6alt(domain), decide(session, domain) -> decision | nil, reason
-- (mod_v6alt's per-connection decision, which checks the address),
-- address_of(domain) -> promise of /v1/resolve, wait(promise) -> answer | nil, err,
-- refused(session, domain, reason) (logged and counted, stream kept),
-- is_destroyed(session).
local function new(options, deps)
	local pending, pending_count = {}, 0;
	local sweeping = false;

	-- `forget`: the claim did not authenticate; mod_v6alt's decision for it
	-- is dropped, so that a stream's claims of ever new names cost nothing.
	local function release(key, forget)
		local entry = pending[key];
		if not entry then return nil; end
		pending[key] = nil;
		pending_count = pending_count - 1;
		local session = entry.session;
		session.v6alt_dialback_pending = (session.v6alt_dialback_pending or 1) - 1;
		if forget and session.v6alt_peers and entry.from ~= session.from_host then
			session.v6alt_peers[entry.from] = nil;
		end
		return entry;
	end

	-- Ends a verification that got no answer; the claim is answered with `condition`.
	local function give_up(key, error_type, condition, text)
		local entry = release(key, true);
		if not entry or deps.is_destroyed(entry.session) then return; end
		entry.session.log("info", "v6alt: dialback verification of %s ended: %s", entry.from, text);
		entry.session.sends2s(dialback_error(entry.request, error_type, condition, text));
	end

	local function sweep()
		local now = time_now();
		for key, entry in pairs(pending) do
			if now >= entry.deadline then
				give_up(key, "wait", "remote-server-timeout",
					("no answer from %s within %gs"):format(entry.from, options.timeout));
			end
		end
		if next(pending) == nil then sweeping = false; return nil; end
		return 1;
	end

	local function reserve(session, key, from, to)
		pending[key] = { session = session; from = from; to = to; deadline = time_now() + options.timeout;
			request = st.stanza("result", { xmlns = DIALBACK; from = from; to = to }) };
		pending_count = pending_count + 1;
		session.v6alt_dialback_pending = (session.v6alt_dialback_pending or 0) + 1;
		session.log("debug", "v6alt: dialback verification of %s pending (%d on this stream, %d in all)",
			from, session.v6alt_dialback_pending, pending_count);
		if not sweeping then
			-- module:add_timer: the timer dies with the module.
			sweeping = true;
			module:add_timer(1, sweep);
		end
	end

	local function must_secure(host_module, domain)
		if host_module:get_option_set("s2s_secure_domains", {}):contains(domain) then return true; end
		if host_module:get_option_set("s2s_insecure_domains", {}):contains(domain) then return false; end
		return host_module:get_option_boolean("s2s_secure_auth", false);
	end

	-- Why the stream's certificate does not stand for `from`, or nil when it does.
	local function certificate_gap(session, from)
		if from ~= session.from_host then
			return "dialback for a domain other than the stream's own";
		end
		if session.cert_chain_status ~= "valid" or session.cert_identity_status ~= "valid" then
			return "the stream's certificate was not accepted for " .. from;
		end
	end

	-- Incoming db:result: nil lets mod_dialback verify it; true means answered here.
	local function claim(host_module, event)
		local session, stanza = event.origin, event.stanza;
		if session.type ~= "s2sin_unauthed" and session.type ~= "s2sin" then return; end
		local attr = stanza.attr;
		if attr.type then return; end -- an answer: not a claim
		local from = attr.from and nameprep(attr.from);
		local to = attr.to and nameprep(attr.to);
		if not (from and to) or not stanza:get_text():match("%S") then
			session.log("warn", "v6alt: dialback request without a valid from, to or key (from=%q, to=%q)",
				tostring(attr.from), tostring(attr.to));
			session.sends2s(dialback_error(stanza, "modify", "bad-request", "from, to and a key are required"));
			return true;
		end
		local key = from .. "/" .. tostring(session.streamid);
		if pending[key] then
			session.sends2s(dialback_error(stanza, "wait", "resource-constraint",
				"a verification of " .. from .. " is already pending on this stream"));
			return true;
		end
		local on_stream = session.v6alt_dialback_pending or 0;
		if on_stream >= options.per_stream or pending_count >= options.max_pending then
			local bound = on_stream >= options.per_stream
				and ("%d on this stream (v6alt_dialback_max_per_stream)"):format(on_stream)
				or ("%d in all (v6alt_dialback_max_pending)"):format(pending_count);
			session.log("warn", "v6alt: dialback claim of %s refused: %s verifications pending", from, bound);
			session.sends2s(dialback_error(stanza, "wait", "resource-constraint", "too many dialback verifications pending"));
			return true;
		end
		if session.v6alt_plaintext_host and from ~= session.v6alt_plaintext_host then
			deps.refused(session, from, "only " .. session.v6alt_plaintext_host .. " may use this unencrypted stream");
			session.sends2s(dialback_error(stanza, "cancel", "policy-violation", "not on this unencrypted stream"));
			return true;
		end
		-- Held while the address is checked, so that a burst of claims
		-- cannot pass the bounds during the lookups.
		reserve(session, key, from, to);
		local bound_to_address = false;
		if deps.is_v6alt(from) then
			local decision, reason = deps.decide(session, from);
			if deps.is_destroyed(session) then release(key); return true; end
			if not decision then
				release(key);
				local ip = tostring(session.ip or (session.conn and session.conn:ip()));
				local answer = deps.wait(deps.address_of(from));
				local encoded = type(answer) == "table" and answer.address and ("[" .. tostring(answer.address) .. "]") or "(unknown)";
				deps.refused(session, from, ("dialback claim from [%s], but %s is at %s: %s; not verified")
					:format(ip, from, encoded, reason));
				session.sends2s(dialback_error(stanza, "cancel", "policy-violation",
					("%s refused for [%s]: %s"):format(from, ip, reason)));
				return true;
			end
			bound_to_address = decision.trust == "ip_bound" or decision.trust == "any";
		end
		if not bound_to_address and must_secure(host_module, from) then
			local gap = certificate_gap(session, from);
			if gap then
				release(key, true);
				session.log("warn", "v6alt: dialback claim of %s refused (s2s_secure_auth): %s", from, gap);
				session.sends2s(dialback_error(stanza, "cancel", "not-authorized",
					"s2s_secure_auth: " .. from .. " needs a certificate this server accepts (SASL EXTERNAL)"));
				return true;
			end
		end
		session.log("info", "v6alt: verifying the dialback claim of %s%s", from,
			bound_to_address and " at the address its name encodes" or "");
	end

	local function watch_host(host_module)
		host_module:hook("stanza/jabber:server:dialback:result", function (event)
			if not dialback_loaded(host_module.host) then return; end -- mod_v6alt's own answer (below mod_dialback) takes it
			return claim(host_module, event);
		end, 100);

		-- A key check (db:verify) without its addressing or key: mod_dialback
		-- cannot compute a key from it.
		host_module:hook("stanza/jabber:server:dialback:verify", function (event)
			local origin, stanza = event.origin, event.stanza;
			local attr = stanza.attr;
			if origin.direction ~= "incoming" or attr.type then return; end
			if attr.from and attr.to and attr.id and stanza:get_text():match("%S") then return; end
			origin.log("warn", "v6alt: dialback key check without from, to, id or key (from=%q, to=%q, id=%q)",
				tostring(attr.from), tostring(attr.to), tostring(attr.id));
			origin.sends2s(dialback_error(stanza, "modify", "bad-request", "from, to, id and a key are required"));
			return true;
		end, 100);

		-- The claimed domain's answer, over this server's outgoing stream:
		-- the verification is over (mod_dialback, below, tells the claimant).
		host_module:hook("stanza/jabber:server:dialback:verify", function (event)
			local origin, attr = event.origin, event.stanza.attr;
			if origin.direction ~= "outgoing" or not attr.type or not attr.from then return; end
			if attr.from ~= origin.to_host then return; end
			release(attr.from .. "/" .. tostring(attr.id), attr.type ~= "valid");
		end, 100);

		-- The connection to a claimed domain closed: its pending claims fail.
		host_module:hook("s2sout-destroyed", function (event)
			local session = event.session;
			local to = session.to_host;
			if not to then return; end
			for key, entry in pairs(pending) do
				if entry.from == to and entry.to == session.from_host then
					give_up(key, "cancel", "remote-connection-failed", "the connection to " .. to .. " closed before it answered");
				end
			end
		end, 200);

		host_module:hook("s2sin-destroyed", function (event)
			local session = event.session;
			if (session.v6alt_dialback_pending or 0) == 0 then return; end
			for key, entry in pairs(pending) do
				if entry.session == session then release(key); end
			end
		end, 200);
	end

	return {
		watch_host = watch_host;
		pending = function () return pending_count; end;
	};
end

return { new = new };
