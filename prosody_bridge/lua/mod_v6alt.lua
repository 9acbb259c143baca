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
--  * dialback: a claim of a v6.alt domain is verified (by mod_dialback) at
--    the address the name encodes, and refused from any other address;
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

local compat = module:require("v6alt_compat");
local import = compat.import;

local async = import "util.async";
local inet_pton = import "util.net".pton;
local st = import "util.stanza";

-- Every write into Prosody's own data (session fields, queues) is there.
local internals = module:require("v6alt_internals");
local recovery = module:require("v6alt_s2s_recovery");

-- Options ------------------------------------------------------------------
--
-- Every option of the module (docs/prosody.md, "Configuration"), each
-- number judged by one validator, the same on Prosody 13 and 0.12: a bad
-- value is logged naming the option, and the default is used.

local number_option = compat.number_option;

local lookup_url = module:get_option_string("v6alt_lookup_url", "http://[::1]:5380"):gsub("/+$", "");
if not lookup_url:match("^http://[^/]+$") then
	module:log("error", "v6alt_lookup_url %q is not http://HOST:PORT: v6.alt federation will fail", lookup_url);
end
local lookup_timeout = number_option(module, "v6alt_lookup_timeout", 2, 0.1);
-- Below the sidecar's lookup_connections (64), so that a burst of lookups
-- never reaches its eviction of open connections.
local lookup_concurrency = number_option(module, "v6alt_lookup_concurrency", 16, 1, 1024);
local probe_interval = number_option(module, "v6alt_s2s_probe_interval", 2, 0.1, 3600);
local probe_rate = number_option(module, "v6alt_s2s_probe_rate", 300, 1, 100000);
local probe_timeout = number_option(module, "v6alt_s2s_probe_timeout", 2 * probe_interval, 0.1, 3600);
local probe_after = number_option(module, "v6alt_s2s_probe_after", 2, 0.1, 3600);
-- Dialback verifications pending (docs/prosody.md, "Dialback"): each is
-- a connection to the claimed domain, so a peer's flood of claims is bounded.
local dialback_options = {
	per_stream = number_option(module, "v6alt_dialback_max_per_stream", 10, 1, 1000);
	max_pending = number_option(module, "v6alt_dialback_max_pending", 200, 1, 100000);
	timeout = number_option(module, "v6alt_dialback_timeout", 30, 1, 600);
};

-- The stall recovery's options, which each host may set for itself.
local function recovery_options(host_module)
	return {
		stall_timeout = number_option(host_module, "v6alt_s2s_stall_timeout", 15, 0);
		hold_time = number_option(host_module, "v6alt_s2s_hold_time", 3600, 1);
		hold_max = number_option(host_module, "v6alt_s2s_hold_max", 1000, 1);
		probe_after = probe_after;
	};
end

-- Services -----------------------------------------------------------------

local metrics = module:require("v6alt_metrics").new();
local lookup_service = module:require("v6alt_lookup_client").new({
	url = lookup_url; timeout = lookup_timeout; concurrency = lookup_concurrency; counted = metrics.lookup;
});
-- One probe scheduler for the whole server (docs/prosody.md, "Link cuts
-- and stalled streams"): every host's waiting peers share its rate bound.
local scheduler = module:require("v6alt_probe_scheduler").new({
	rate = probe_rate; interval = probe_interval; timeout = probe_timeout; counted = metrics.probe;
});

local new_resolver = module:require("v6alt_resolver").new(lookup_service, metrics);
local check_pin = module:require("v6alt_pinning").new(lookup_service);

-- Peers --------------------------------------------------------------------

local function is_v6alt(domain)
	return type(domain) == "string" and domain:lower():sub(-7) == ".v6.alt";
end

local function same_address(a, b)
	if not (a and b) then return false; end
	local pa, pb = inet_pton((a:gsub("^%[(.*)%]$", "%1"))), inet_pton((b:gsub("^%[(.*)%]$", "%1")));
	return pa ~= nil and pa == pb;
end

-- The peer's address: mod_s2s sets session.ip only after an outgoing
-- stream is opened, so the connection is asked before that.
local function peer_ip(session)
	return session.ip or (session.conn and session.conn:ip());
end

-- Closes the stream with a v6.alt peer that is not to be trusted: logged
-- with the reason, counted (trust_decisions "refused"), the reason told to
-- the peer. `text`, when given, is the whole error the peer and the
-- senders of queued stanzas get.
-- `refused` alone logs and counts a refusal that leaves the stream open
-- (a dialback claim, answered with its own error).
local function refused(session, host, reason)
	metrics.trust("refused");
	session.log("warn", "Refusing v6.alt peer %s at [%s]: %s", tostring(host), peer_ip(session) or "?", reason);
end

local function refuse(session, host, reason, text)
	local ip = peer_ip(session) or "?";
	refused(session, host, reason);
	session:close({
		condition = "policy-violation";
		text = text or ("v6.alt domain %s refused for [%s]: %s"):format(tostring(host), ip, reason);
	}, nil, text or "v6.alt peer refused: " .. reason);
end

-- Both ends of a stream must agree on TLS: a "tls: off" secure range on one
-- side only cannot work. The stream is refused with a text that says so.
local function tls_mismatch(session, host, detail)
	local text = "secure range mismatch: " .. detail .. "; both servers need the same secure_ranges";
	refuse(session, host, text, text);
	return true;
end

-- Per-connection peer decisions -------------------------------------------

-- The lookup service's decision for `host` on this connection, cached on the
-- session. Returns answer, or nil, reason.
local function peer_decision(session, host)
	local decided = session.v6alt_peers;
	if decided and decided[host] then return decided[host]; end
	local ip = peer_ip(session);
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
		answer, err = async.wait_for(lookup_service:ask("/v1/peer", { name = host; address = ip }));
		if not answer then
			return nil, lookup_service:failure(err, ("the connection with %s at [%s]"):format(host, ip));
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

-- Certificates: above mod_s2s_auth_certs (509) so that its verdict on a
-- self-signed certificate never applies to a v6.alt peer; other domains
-- fall through to it and to mod_s2s's s2s_secure_auth policy.
module:hook("s2s-check-certificate", function (event)
	local session, host = event.session, event.host;
	if not is_v6alt(host) then return; end
	local decision, reason = peer_decision(session, host);
	if not decision then
		refuse(session, host, reason);
		return false;
	end
	if decision.trust ~= "ip_bound" and decision.trust ~= "any" then
		metrics.trust("ca");
		return; -- a secure range that wants CA-valid certificates
	end
	local pinned, pin_reason, no_cert, pin_checked = check_pin(session, host, peer_ip(session), event.cert, decision);
	if not pinned and no_cert then
		-- Not trusted by its address; Prosody's own checks (and dialback,
		-- which dials the pinned peer) still apply.
		metrics.trust("ca");
		session.log("info", "Not trusting %s at [%s] by its address: %s", host, peer_ip(session), pin_reason);
		return;
	elseif not pinned then
		refuse(session, host, pin_reason);
		return false;
	end
	metrics.trust(pin_checked and "pinned" or decision.trust == "ip_bound" and "address_bound" or "any_certificate");
	internals.trust_certificate(session);
	session.log("info", "Trusting %s at [%s] (%s): %s", host, peer_ip(session), decision.trust, tostring(decision.rule));
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
	local ip = peer_ip(session);
	if not ip or not async.ready() then return; end
	local answer, err = async.wait_for(lookup_service:ask("/v1/peer", { name = host; address = ip }));
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

local dialback = module:require("v6alt_dialback").new(dialback_options, {
	is_v6alt = is_v6alt;
	decide = peer_decision;
	address_of = function (name) return lookup_service:ask("/v1/resolve", { name = name }); end;
	wait = function (promise)
		if not async.ready() then return nil, "outside an async context"; end
		return async.wait_for(promise);
	end;
	refused = refused;
	is_destroyed = internals.is_destroyed;
});

function module.add_host(module)
	dialback.watch_host(module);
	recovery.watch_host(module, recovery_options(module), {
		metrics = metrics;
		scheduler = scheduler;
		is_v6alt = is_v6alt;
		resolve = function (name) return lookup_service:ask("/v1/resolve", { name = name }); end;
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
				host, peer_ip(session));
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
			refuse(session, host, reason);
			return true;
		end
		local ip = peer_ip(session) or "?";
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
		local ip = tostring(peer_ip(session));
		return tls_mismatch(session, host, ("%s at [%s] starts TLS, but this server's secure_ranges have "
			.. "tls: off for [%s] (the peer's secure_ranges do not have tls: off for this server's "
			.. "address)"):format(host, ip, ip));
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

-- Say at start-up whether the lookup service answers (net.http needs the
-- running server loop, hence server-started rather than load time).
module:hook("server-started", function ()
	lookup_service:ask("/v1/health", {}):next(function (answer)
		module:log("info", "v6.alt federation through the lookup service at %s (v6alt %s)",
			lookup_url, tostring(answer.version));
	end, function (err)
		lookup_service:failure(err, "v6.alt federation");
	end);
end);
