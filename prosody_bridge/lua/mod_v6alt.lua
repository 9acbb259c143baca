-- mod_v6alt: server-to-server federation over v6.alt names.
--
-- Every IPv6 address has a host name under .v6.alt. The name codec and the
-- dialling policy live in the v6alt sidecar; this module only asks its
-- lookup service (HTTP + JSON on loopback) and applies the answers:
--
--  * outgoing: a v6.alt domain is dialled at its own address, port 5269, no SRV;
--  * certificates: a v6.alt peer on the address its name encodes is trusted
--    without a CA while s2s_secure_auth stays on for every other domain;
--  * incoming: a peer claiming a v6.alt domain from another address is closed;
--  * secure ranges: "tls: off" means no STARTTLS inside the range;
--  * pinning: a v6.alt peer outside Yggdrasil and cjdns is trusted by its
--    address only with the TLS key it showed first (the sidecar keeps the pins).
--
-- Lookups never block the server: outgoing ones run inside the connection's
-- resolver, incoming ones wait in the session's async runner (which only
-- pauses that one connection). When the lookup service does not answer,
-- v6.alt federation fails closed; nothing is cached across connections, so
-- it recovers as soon as the service answers again.

module:set_global();

local import = module:require("v6alt_compat");

local async = import "util.async";
local basic_resolver = import "net.resolvers.basic";
local http = import "net.http";
local formencode = import "util.http".formencode;
local json = import "util.json";
local inet_pton = import "util.net".pton;
local promise = import "util.promise";
local base64 = import "util.encodings".base64;
local sha256 = import "util.hashes".sha256;
local st = import "util.stanza";

-- Every write into Prosody's own data (session fields, queues) is there.
local internals = module:require("v6alt_internals");
local recovery = module:require("v6alt_s2s_recovery");
local probe_scheduler = module:require("v6alt_probe_scheduler");

local lookup_url = module:get_option_string("v6alt_lookup_url", "http://[::1]:5380"):gsub("/+$", "");
local lookup_timeout = module:get_option_number("v6alt_lookup_timeout", 2, 0.1);

local http_client = http.new({ suppress_errors = true });

-- Metrics --------------------------------------------------------------------
--
-- Prosody's metrics API (module:metric, the same in 0.12.3 and 13.0.1:
-- core/moduleapi.lua and util/openmetrics.lua), which mod_http_openmetrics
-- exports on /metrics as prosody_mod_v6alt__<name>_total. This module is
-- global, so its families carry no host label. Without `statistics`
-- configured Prosody hands out a dummy that ignores every call. Every label
-- value is from a fixed set (the lookup service's rule identifiers are
-- checked against their shape and length): no domain or address is ever a
-- label, so no peer can add a series (docs/metrics.md).

local LOOKUP_ENDPOINTS = { ["/v1/resolve"] = "resolve"; ["/v1/peer"] = "peer"; ["/v1/pin"] = "pin"; ["/v1/health"] = "health" };
local TRUST_KINDS = { "address_bound", "pinned", "any_certificate", "ca", "no_tls", "refused" };
local STANZA_EVENTS = { "held", "resent", "duplicate_dropped", "bounced" };
local PROBE_OUTCOMES = { "connected", "refused", "failed", "timeout" };

local function rule_label(answer)
	local rule = type(answer) == "table" and answer.rule_id;
	if type(rule) ~= "string" then return ""; end
	if #rule > 40 or not rule:match("^[a-z0-9_]*$") then return "other"; end
	return rule;
end

-- The verdict of one lookup: ok (health), not_v6alt, allowed, refused,
-- mismatch (a v6.alt name from another address), unavailable (the service
-- did not answer) or error (it refused the input).
local function verdict(endpoint, ok, value)
	if not ok then
		return type(value) == "table" and value.unavailable and "unavailable" or "error";
	end
	if endpoint == "health" then return "ok"; end
	if endpoint == "pin" then return value.accept == true and "accepted" or "refused"; end
	if endpoint == "resolve" and value.is_v6alt == false then return "not_v6alt"; end
	if not value.allowed then return "refused"; end
	if endpoint == "peer" and value.is_v6alt and value.matches == false then return "mismatch"; end
	return "allowed";
end

local function new_metrics()
	local lookups = module:metric("counter", "lookups", "",
		"Questions to the sidecar's lookup service, by endpoint, verdict and policy rule",
		{ "endpoint", "verdict", "rule" });
	local trust = module:metric("counter", "trust_decisions", "",
		"s2s streams with a v6.alt peer, by how it was trusted: address_bound, "
		.. "any_certificate (secure range), ca (Prosody's own checks), no_tls (secure range "
		.. "with tls off), refused", { "kind" });
	local stalled = module:metric("counter", "stalled_streams", "",
		"Outgoing s2s streams to v6.alt peers closed because a ping went unanswered", {});
	local recovered = module:metric("counter", "recoveries", "",
		"Stalled v6.alt peers found reachable again, their stanzas resent", {});
	local stanzas = module:metric("counter", "stanzas", "",
		"Stanzas of the stall recovery: held while a peer was stalled, resent after it "
		.. "came back, dropped as a duplicate of a resent one, bounced", { "event" });
	local probes = module:metric("counter", "probes", "",
		"TCP probes of v6.alt peers whose stream is stalled or unanswered, by outcome: "
		.. "connected, refused, failed, timeout", { "outcome" });

	-- Children made now export a zero, so rates and alerts work from the start.
	for _, kind in ipairs(TRUST_KINDS) do trust:with_labels(kind):add(0); end
	for _, event in ipairs(STANZA_EVENTS) do stanzas:with_labels(event):add(0); end
	for _, outcome in ipairs(PROBE_OUTCOMES) do probes:with_labels(outcome):add(0); end
	stalled:with_labels():add(0);
	recovered:with_labels():add(0);

	local metrics = {};

	function metrics.lookup(path, ok, value)
		local endpoint = LOOKUP_ENDPOINTS[path] or "other";
		lookups:with_labels(endpoint, verdict(endpoint, ok, value), ok and rule_label(value) or ""):add(1);
	end

	function metrics.trust(kind)
		trust:with_labels(kind):add(1);
	end

	function metrics.stalled()
		stalled:with_labels():add(1);
	end

	function metrics.recovered()
		recovered:with_labels():add(1);
	end

	function metrics.stanzas(event, count)
		if count > 0 then stanzas:with_labels(event):add(count); end
	end

	function metrics.probe(outcome)
		probes:with_labels(outcome):add(1);
	end

	return metrics;
end

local metrics = new_metrics();

-- One probe scheduler for the whole server (docs/prosody.md, "Link cuts
-- and stalled streams"): every host's waiting peers share its rate bound.
local number_option = probe_scheduler.number_option;
local probe_interval = number_option(module, "v6alt_s2s_probe_interval", 2, 0.1, 3600);
local scheduler = probe_scheduler.new({
	rate = number_option(module, "v6alt_s2s_probe_rate", 300, 1, 100000);
	interval = probe_interval;
	timeout = number_option(module, "v6alt_s2s_probe_timeout", 2 * probe_interval, 0.1, 3600);
	counted = metrics.probe;
});
local probe_after = number_option(module, "v6alt_s2s_probe_after", 2, 0.1, 3600);
-- Below the sidecar's lookup_connections (64), so that a burst of lookups
-- never reaches its eviction of open connections.
local lookup_queue = module:require("v6alt_lookup_queue").new(
	number_option(module, "v6alt_lookup_concurrency", 16, 1, 1024));

local function is_v6alt(domain)
	return type(domain) == "string" and domain:lower():sub(-7) == ".v6.alt";
end

local function same_address(a, b)
	if not (a and b) then return false; end
	local pa, pb = inet_pton((a:gsub("^%[(.*)%]$", "%1"))), inet_pton((b:gsub("^%[(.*)%]$", "%1")));
	return pa ~= nil and pa == pb;
end

-- Ask the lookup service. Resolves with the decoded JSON object; rejects
-- with { reason = string, unavailable = bool } (unavailable: the service
-- itself did not answer, as opposed to refusing the input). At most
-- v6alt_lookup_concurrency are open at once; v6alt_lookup_timeout counts
-- from when a lookup's request is sent, not while it waits its turn.
local function lookup(endpoint, params)
	local url = lookup_url .. endpoint .. "?" .. formencode(params);
	return promise.new(function (resolve, reject)
		lookup_queue:run(function (done)
			local settled = false;
			local function settle(fn, value)
				if settled then return; end
				settled = true;
				done();
				metrics.lookup(endpoint, fn == resolve, value);
				fn(value);
			end
			local request;
			-- module:add_timer, not util.timer: the timer dies with the module.
			module:add_timer(lookup_timeout, function ()
				if settled then return; end
				settle(reject, { unavailable = true; reason = ("no answer within %gs"):format(lookup_timeout) });
				if request then http.destroy_request(request); end
			end);
			request = http_client:request(url, nil, function (body, code)
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

local function describe_failure(err, what)
	if type(err) == "table" and err.unavailable then
		module:log("error", "v6alt lookup service at %s unavailable (%s): refusing %s until it answers",
			lookup_url, err.reason, what);
		return "v6.alt name check unavailable";
	end
	local reason = type(err) == "table" and err.reason or tostring(err);
	module:log("warn", "v6alt lookup service refused %s: %s", what, reason);
	return reason;
end

-- Outgoing ----------------------------------------------------------------

-- A resolver (the net.resolvers interface: next(cb)) that asks the lookup
-- service for the address, then hands over to a basic resolver for that
-- address, so no DNS (SRV, A, AAAA) is ever asked about a v6.alt name.
local v6alt_resolver = {};
v6alt_resolver.__index = v6alt_resolver;

function v6alt_resolver:next(cb)
	if self.target then return self.target:next(cb); end
	if self.done then return cb(nil); end
	self.done = true;
	local session, name = self.session, self.hostname;
	lookup("/v1/resolve", { name = name }):next(function (answer)
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
			-- check below then trusts the peer by its address.
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
		self.last_error = describe_failure(err, "the outgoing connection to " .. name);
		session.v6alt_lookup_failed = true;
		cb(nil);
	end);
end

local function new_resolver(session, name, extra)
	return setmetatable({ session = session; hostname = name; extra = extra or {} }, v6alt_resolver);
end

-- Per-connection peer decisions -------------------------------------------

-- The lookup service's decision for `host` on this connection, cached on the
-- session. Returns answer, or nil, reason.
local function peer_decision(session, host)
	local decided = session.v6alt_peers;
	if decided and decided[host] then return decided[host]; end
	local ip = session.ip or (session.conn and session.conn:ip());
	if not ip then return nil, "connection address unknown"; end

	local answer = session.v6alt_dialled;
	if not (session.direction == "outgoing" and host == session.to_host and answer
		and same_address(answer.address, ip)) then
		if not async.ready() then
			-- Every hook below runs in the session's async runner; if some
			-- future caller does not, refuse rather than block the server.
			return nil, "no decision available outside an async context";
		end
		local err;
		answer, err = async.wait_for(lookup("/v1/peer", { name = host; address = ip }));
		if not answer then
			return nil, describe_failure(err, ("the connection with %s at [%s]"):format(host, ip));
		end
		if not answer.allowed then return nil, "v6.alt policy: " .. tostring(answer.rule); end
		if not answer.matches then
			return nil, ("%s is not the address of %s"):format(ip, host);
		end
	end
	session.v6alt_peers = decided or {};
	session.v6alt_peers[host] = answer;
	return answer;
end

local function refuse(session, host, reason)
	local ip = session.ip or "?";
	session.log("warn", "Refusing v6.alt peer %s at [%s]: %s", tostring(host), ip, reason);
	session:close({
		condition = "policy-violation";
		text = ("v6.alt domain %s refused for [%s]: %s"):format(tostring(host), ip, reason);
	}, nil, "v6.alt peer refused: " .. reason);
end

-- Both ends of a stream must agree on TLS: a "tls: off" secure range on one
-- side only cannot work. Closes the stream with a text that says so (the
-- peer logs it, and senders of queued stanzas get it in their error).
local function tls_mismatch(session, host, detail)
	local text = "secure range mismatch: " .. detail .. "; both servers need the same secure_ranges";
	session.log("warn", "TLS mismatch with %s: %s", tostring(host), detail);
	metrics.trust("refused");
	session:close({ condition = "policy-violation"; text = text }, nil, text);
	return true;
end

-- Pinning ------------------------------------------------------------------

-- SHA-256 (hex) of the certificate's DER SubjectPublicKeyInfo: LuaSec's
-- cert:pubkey() gives the SubjectPublicKeyInfo as PEM (LuaSec 1.x, Prosody
-- 0.12 and 13 alike).
local function spki_sha256(cert)
	local ok, pem = pcall(function () return cert:pubkey(); end);
	if not ok or type(pem) ~= "string" then return nil; end
	local body = pem:match("%-%-%-%-%-BEGIN PUBLIC KEY%-%-%-%-%-(.-)%-%-%-%-%-END PUBLIC KEY%-%-%-%-%-");
	if not body then return nil; end
	local der = base64.decode((body:gsub("%s", "")));
	if not der or #der == 0 then return nil; end
	return sha256(der, true);
end

-- Trust on first use, for a peer the address check trusts and whose pinning
-- (from the lookup service's answer) is not "off": the sidecar judges the
-- certificate's key against its pin file (GET /v1/pin). Returns true, or
-- false, the reason and whether there was no certificate at all. Fails
-- closed under "enforce".
local function check_pin(session, host, cert, decision)
	local mode = decision.pinning;
	if mode == nil or mode == "off" then return true; end
	if session.v6alt_plaintext_host or (session.direction == "outgoing" and decision.tls_required == false) then
		return true; -- a "tls: off" range: there is no certificate to pin
	end
	local spki = cert and spki_sha256(cert);
	if not spki then
		if mode ~= "enforce" then
			session.log("warn", "No certificate key from %s to check against its pin (pinning: %s)", host, mode);
			return true;
		end
		return false, "no certificate key to check against the pin", true;
	end
	if not async.ready() then
		return false, "no pin decision available outside an async context";
	end
	local ip = session.ip or (session.conn and session.conn:ip());
	local answer, err = async.wait_for(lookup("/v1/pin", { name = host; address = ip; spki = spki }));
	if internals.is_destroyed(session) then
		return false, "the stream closed while its pin was checked";
	end
	if not answer then
		local reason = describe_failure(err, ("the pin check of %s at [%s]"):format(host, tostring(ip)));
		return mode ~= "enforce", reason;
	end
	if type(answer.message) == "string" then
		session.log(answer.status == "mismatch" and "warn" or "info", "v6alt: %s", answer.message);
	end
	if answer.accept ~= true then
		return false, tostring(answer.reason or "refused by its pin");
	end
	return true, nil, nil, true; -- the key was judged against the pin and passed
end

-- Certificates: above mod_s2s_auth_certs (509) so that its verdict on a
-- self-signed certificate never applies to a v6.alt peer; other domains
-- fall through to it and to mod_s2s's s2s_secure_auth policy.
module:hook("s2s-check-certificate", function (event)
	local session, host = event.session, event.host;
	if not is_v6alt(host) then return; end
	local decision, reason = peer_decision(session, host);
	if not decision then
		metrics.trust("refused");
		refuse(session, host, reason);
		return false;
	end
	if decision.trust ~= "ip_bound" and decision.trust ~= "any" then
		metrics.trust("ca");
		return; -- a secure range that wants CA-valid certificates
	end
	local pinned, pin_reason, no_cert, pin_checked = check_pin(session, host, event.cert, decision);
	if not pinned and no_cert then
		-- Not trusted by its address; Prosody's own checks (and dialback,
		-- which dials the pinned peer) still apply.
		metrics.trust("ca");
		session.log("info", "Not trusting %s at [%s] by its address: %s", host, session.ip, pin_reason);
		return;
	elseif not pinned then
		metrics.trust("refused");
		refuse(session, host, pin_reason);
		return false;
	end
	metrics.trust(pin_checked and "pinned" or decision.trust == "ip_bound" and "address_bound" or "any_certificate");
	internals.trust_certificate(session);
	session.log("info", "Trusting %s at [%s] (%s): %s", host, session.ip, decision.trust, tostring(decision.rule));
	return true;
end, 510);

-- A DNS-named peer (docs/mixed.md): below mod_s2s_auth_certs (509), which
-- has judged the certificate by then, and above mod_s2s's policy (-1). A
-- certificate that passed keeps Prosody's verdict; one that did not is
-- accepted only from an address inside a secure range with
-- trust_any_certificate: true. Anything else (no such range, the lookup
-- service down or refusing) leaves Prosody's own checks to decide.
module:hook("s2s-check-certificate", function (event)
	local session, host = event.session, event.host;
	if is_v6alt(host) or type(host) ~= "string" then return; end
	if session.cert_chain_status == "valid" and session.cert_identity_status == "valid" then return; end
	local ip = session.ip or (session.conn and session.conn:ip());
	if not ip or not async.ready() then return; end
	local answer, err = async.wait_for(lookup("/v1/peer", { name = host; address = ip }));
	if internals.is_destroyed(session) then return false; end
	if not answer then
		session.log("info", "No secure-range answer for %s at [%s] (%s): Prosody's certificate checks apply",
			host, ip, type(err) == "table" and tostring(err.reason) or tostring(err));
		return;
	end
	if answer.allowed ~= true or answer.trust ~= "any" then return; end
	metrics.trust("any_certificate");
	internals.trust_certificate(session);
	session.log("info", "Trusting %s at [%s] (any): %s", host, ip, tostring(answer.rule));
	return true;
end, 100);

function module.add_host(module)
	recovery.watch_host(module, {
		metrics = metrics;
		scheduler = scheduler;
		probe_after = probe_after;
		is_v6alt = is_v6alt;
		resolve = function (name) return lookup("/v1/resolve", { name = name }); end;
	});

	module:hook("s2sout-pre-connect", function (event)
		local session = event.session;
		if not is_v6alt(session.to_host) then return; end
		event.resolver = new_resolver(session, session.to_host, event.resolver and event.resolver.extra);
	end);

	-- Incoming streams: vet a claimed v6.alt domain before any feature (and
	-- so before STARTTLS) is offered; above mod_tls, mod_saslauth and
	-- mod_dialback, which all add features at priority 0.
	module:hook("s2s-stream-features", function (event)
		local session = event.origin;
		local host = session.from_host;
		if session.direction ~= "incoming" or not is_v6alt(host) then return; end
		local decision, reason = peer_decision(session, host);
		if not decision then
			metrics.trust("refused");
			refuse(session, host, reason);
			return true;
		end
		if decision.tls_required == false and not session.secure then
			metrics.trust("no_tls");
			-- Secure range with "tls: off": no STARTTLS offer; SASL EXTERNAL
			-- authenticates the peer by the address it connects from.
			internals.mark_secure(session);
			session.v6alt_plaintext_host = host;
			if decision.trust == "ip_bound" or decision.trust == "any" then
				internals.trust_certificate(session);
			end
			session.log("info", "Not offering TLS to %s at [%s] (secure range with tls off)",
				host, session.ip);
		end
	end, 1000);

	-- Dialback (and SASL) can authenticate further domains on one stream:
	-- each v6.alt one must match the connection's address too.
	module:hook("s2s-authenticated", function (event)
		local session, host = event.session, event.host;
		if session.direction ~= "incoming" then return; end
		if session.v6alt_plaintext_host and host ~= session.v6alt_plaintext_host then
			-- The stream is only "secure" because of the range: nothing else rides on it.
			refuse(session, host, "only " .. session.v6alt_plaintext_host .. " may use this unencrypted stream");
			return false;
		end
		if not is_v6alt(host) then return; end
		local decision, reason = peer_decision(session, host);
		if not decision then
			refuse(session, host, reason);
			return false;
		end
	end, 1000);

	-- Outgoing: the peer's first features against this server's decision for
	-- the peer's address, above mod_tls (500), which would start TLS (or try
	-- to, when none is offered). A peer offering TLS inside a "tls: off"
	-- range, or none outside one, has other secure_ranges: the stream is
	-- closed naming the mismatch, instead of a failed STARTTLS or a missing
	-- authentication method. On 0.12 (no s2sout-pre-connect) this is where
	-- a "tls: off" range is learnt: the stream is marked secure here, before
	-- mod_tls looks at it.
	module:hook_tag("http://etherx.jabber.org/streams", "features", function (session, stanza)
		local host = session.to_host;
		if session.type ~= "s2sout_unauthed" or session.v6alt_tls_checked or not is_v6alt(host) then return; end
		session.v6alt_tls_checked = true;
		local decision, reason = peer_decision(session, host);
		if not decision then
			metrics.trust("refused");
			refuse(session, host, reason);
			return true;
		end
		local ip = session.ip or (session.conn and session.conn:ip()) or "?";
		local offers_tls = stanza:get_child("starttls", "urn:ietf:params:xml:ns:xmpp-tls") ~= nil;
		if decision.tls_required == false then
			if offers_tls then
				return tls_mismatch(session, host, ("this server's secure_ranges have tls: off for [%s], "
					.. "but %s offers TLS (its secure_ranges do not have tls: off for this server's address)"):format(ip, host));
			end
			if not session.v6alt_dialled then
				internals.mark_secure(session);
				internals.trust_remote(session);
				metrics.trust("no_tls");
				session.log("info", "Not using TLS with %s at [%s] (secure range with tls off)", host, ip);
			end
		elseif not offers_tls and not session.secure then
			return tls_mismatch(session, host, ("%s at [%s] offers no TLS (its secure_ranges have tls: off "
				.. "for this server's address, or it has no TLS), but this server's secure_ranges do not "
				.. "have tls: off for [%s]"):format(host, ip, ip));
		end
	end, 600);

	-- Incoming: a peer that starts TLS on a stream of a "tls: off" range
	-- (where none was offered) expects TLS: its secure_ranges differ. Above
	-- mod_tls (0), which would answer <failure/> and close without a reason.
	module:hook("stanza/urn:ietf:params:xml:ns:xmpp-tls:starttls", function (event)
		local session = event.origin;
		local host = session.v6alt_plaintext_host;
		if session.type ~= "s2sin_unauthed" or not host then return; end
		return tls_mismatch(session, host, ("%s at [%s] starts TLS, but this server's secure_ranges have "
			.. "tls: off for [%s] (the peer's secure_ranges do not have tls: off for this server's "
			.. "address)"):format(host, tostring(session.ip), tostring(session.ip)));
	end, 100);

	-- Dialback elements that mod_dialback did not take (it is not loaded on
	-- this host, so this server never hands out a dialback key). A peer that
	-- loads it (the reference module's default) sends db:verify over its
	-- working stream whenever anyone, over any stream, sends it a db:result
	-- claiming this server's name; left unhandled, Prosody's router closes
	-- that working stream (unsupported-stanza-type). Each element is answered
	-- or dropped alone: a key check is "invalid" (no key is ours), a request
	-- to be authenticated by dialback is refused, an unasked answer is dropped.
	-- The namespace is written out: without mod_dialback, the stream header
	-- declares no db: prefix.
	local DIALBACK = "jabber:server:dialback";
	local function dialback_element(event)
		local origin, stanza = event.origin, event.stanza;
		local attr = stanza.attr;
		local from, to = tostring(attr.from), tostring(attr.to);
		if attr.type then
			origin.log("warn", "v6alt: dropping a dialback %s (%s) for %s that this server never asked for",
				stanza.name, tostring(attr.type), from);
		elseif stanza.name == "verify" then
			origin.log("warn", "v6alt: answering the dialback key check from %s for %s: invalid "
				.. "(this server does not use dialback, so no key is its own)", from, to);
			origin.sends2s(st.stanza("verify", { xmlns = DIALBACK; from = attr.to; to = attr.from; id = attr.id; type = "invalid" })
				:text(stanza:get_text()));
		else
			origin.log("warn", "v6alt: refusing dialback from %s: this server authenticates peers by "
				.. "certificate or address (SASL EXTERNAL), not by dialback", from);
			origin.sends2s(st.stanza("result", { xmlns = DIALBACK; from = attr.to; to = attr.from; type = "error" })
				:tag("error", { type = "cancel" })
				:tag("policy-violation", { xmlns = "urn:ietf:params:xml:ns:xmpp-stanzas" }):up()
				:tag("text", { xmlns = "urn:ietf:params:xml:ns:xmpp-stanzas" })
				:text("dialback is not offered here; authenticate with SASL EXTERNAL"));
		end
		return true;
	end
	-- Below mod_dialback's handlers (priority 0): with it loaded, it answers.
	module:hook("stanza/jabber:server:dialback:verify", dialback_element, -1000);
	module:hook("stanza/jabber:server:dialback:result", dialback_element, -1000);
end

if not lookup_url:match("^http://[^/]+$") then
	module:log("error", "v6alt_lookup_url %q is not http://HOST:PORT: v6.alt federation will fail", lookup_url);
end

-- Say at start-up whether the lookup service answers (net.http needs the
-- running server loop, hence server-started rather than load time).
module:hook("server-started", function ()
	lookup("/v1/health", {}):next(function (answer)
		module:log("info", "v6.alt federation through the lookup service at %s (v6alt %s)",
			lookup_url, tostring(answer.version));
	end, function (err)
		describe_failure(err, "v6.alt federation");
	end);
end);
