-- Stalled s2s streams to v6.alt peers: notice, hold, reconnect, resend once.
--
-- When a mesh link is cut, an s2s TCP connection over it does not fail: the
-- kernel retransmits at doubling intervals (up to two minutes apart), so
-- after the link returns the stanzas written during the cut wait for the
-- next retransmission, and if the kernel gives up first they are lost
-- (Prosody has no stream resumption on s2s). Here, per (local host, v6.alt
-- peer):
--
--  * every stanza routed to the peer is kept until a ping sent after it
--    (a barrier) is answered: the stream is ordered, so an answer confirms
--    everything before it;
--  * no answer within the stall timeout: the stream is closed, new stanzas
--    are held, and the peer's port is probed with a bare TCP connect;
--  * the first probe that connects: the unconfirmed stanzas are resent,
--    marked, then the held ones, over a fresh connection;
--  * the receiving side drops a stanza it has already seen from the same
--    sender with the same id when either copy carries the mark, so a stanza
--    that did arrive before the cut (its answer did not) is not shown twice.
--
-- Held stanzas are bounced (wait/remote-server-timeout) when the hold time
-- or the hold limit is exceeded, as Prosody bounces stanzas to unreachable
-- servers.
--
-- Every timer is a module's (module:add_timer, Prosody 13.0.1 and 0.12.3),
-- never util.timer's directly, so it stops when its module is unloaded or
-- reloaded; a callback that returns a number runs again after that many
-- seconds, as with util.timer.

local import = module:require("v6alt_compat");

local cache = import "util.cache";
local jid_host = import "util.jid".host;
local new_id = import "util.id".short;
local server = import "net.server";
local st = import "util.stanza";

local internals = module:require("v6alt_internals");

local RESENT_NS = "urn:v6alt:resent:0";
local PING_NS = "urn:xmpp:ping";
local BARRIER_DELAY = 0.05; -- lets a burst of stanzas share one barrier
local DEDUP_ENTRIES = 10000;
-- A stanza resent this often without a confirmation is sent once more and
-- no longer tracked: the peer takes it but cannot answer (one-way
-- reachability), and resending on would loop for ever.
local MAX_RESENDS = 3;

local hooked_stanzas = {
	"message/bare", "message/full", "message/host",
	"presence/bare", "presence/full", "presence/host",
	"iq/bare", "iq/full", "iq/host",
};

local function now() return os.time(); end

local function bounce(host_module, stanza, condition, text)
	local kind = stanza.attr.type;
	if kind == "error" or kind == "result" then return; end
	host_module:send(st.error_reply(stanza, "wait", condition, text));
end

-- A TCP connect to address:port; done(true) once it connects, done(false)
-- on failure or after `timeout` seconds.
local function tcp_probe(address, port, timeout, done)
	local settled = false;
	local function settle(ok)
		if settled then return; end
		settled = true;
		done(ok);
	end
	local listener = {
		onconnect = function (c) settle(true); c:close(); end;
		ondisconnect = function () settle(false); end;
		onincoming = function () end;
	};
	local conn, err = server.addclient(address, port, listener, "*a", nil, "tcp6");
	if not conn then
		module:log("debug", "v6alt probe of [%s]:%d not started: %s", address, port, tostring(err));
		return settle(false);
	end
	module:add_timer(timeout, function ()
		if settled then return; end
		settle(false);
		conn:close();
	end);
end

-- Wires the recovery into one host. `options`: is_v6alt(domain) -> bool,
-- resolve(domain) -> promise of the lookup service's /v1/resolve answer, and
-- metrics (mod_v6alt's counters) to count stalls, recoveries and stanzas.
local function watch_host(host_module, options)
	local stall_timeout = host_module:get_option_number("v6alt_s2s_stall_timeout", 15, 0);
	if stall_timeout == 0 then
		host_module:log("debug", "Stalled s2s recovery is off (v6alt_s2s_stall_timeout = 0)");
		return;
	end
	local probe_interval = host_module:get_option_number("v6alt_s2s_probe_interval", 2, 0.5);
	local hold_time = host_module:get_option_number("v6alt_s2s_hold_time", 300, 1);
	local hold_max = host_module:get_option_number("v6alt_s2s_hold_max", 1000, 1);
	local is_v6alt, resolve = options.is_v6alt, options.resolve;
	local metrics = options.metrics;

	local peers = {}; -- to_host -> state
	local barriers = setmetatable({}, { __mode = "k" }); -- our own pings: not tracked
	local send_barrier; -- forward declaration: barriers and confirmations call each other

	local function peer_of(from_host, to_host)
		local peer = peers[to_host];
		if not peer then
			peer = { from_host = from_host; to_host = to_host; seq = 0; unconfirmed = {}; held = {} };
			peers[to_host] = peer;
		end
		return peer;
	end

	local function forget_if_idle(peer)
		if #peer.unconfirmed == 0 and #peer.held == 0 and not peer.barrier and not peer.stalled then
			peers[peer.to_host] = nil;
		end
	end

	local function confirm(peer, covers)
		local kept = {};
		for _, entry in ipairs(peer.unconfirmed) do
			if entry.seq > covers then kept[#kept + 1] = entry; end
		end
		peer.unconfirmed = kept;
		peer.barrier = nil;
		if #kept > 0 then send_barrier(peer); else forget_if_idle(peer); end
	end

	local function release(peer)
		local resend, held = peer.unconfirmed, peer.held;
		peer.unconfirmed, peer.held, peer.stalled, peer.barrier = {}, {}, nil, nil;
		metrics.recovered();
		metrics.stanzas("resent", #resend);
		for _, entry in ipairs(resend) do
			if not entry.stanza:get_child("resent", RESENT_NS) then
				entry.stanza:tag("resent", { xmlns = RESENT_NS }):up();
			end
			entry.stanza.v6alt_resends = entry.resends + 1;
			host_module:send(entry.stanza);
		end
		for _, stanza in ipairs(held) do host_module:send(stanza); end
		forget_if_idle(peer);
	end

	local function give_up(peer, reason)
		local lost = #peer.unconfirmed + #peer.held;
		host_module:log("warn", "s2s to %s: %s; bouncing %d stanza(s)", peer.to_host, reason, lost);
		local text = "v6.alt peer " .. peer.to_host .. " unreachable: " .. reason;
		local entries, held = peer.unconfirmed, peer.held;
		peer.unconfirmed, peer.held, peer.stalled, peer.barrier = {}, {}, nil, nil;
		metrics.stanzas("bounced", lost);
		for _, entry in ipairs(entries) do bounce(host_module, entry.stanza, "remote-server-timeout", text); end
		for _, stanza in ipairs(held) do bounce(host_module, stanza, "remote-server-timeout", text); end
		forget_if_idle(peer);
	end

	-- `stall` is the peer's current stall (a table): a probe loop started
	-- for an earlier one ends by itself.
	local function probe(peer, stall)
		if peer.stalled ~= stall then return; end
		local held_for = now() - peer.stalled_at;
		if held_for > hold_time then
			return give_up(peer, ("no answer for %ds (v6alt_s2s_hold_time)"):format(held_for));
		end
		resolve(peer.to_host):next(function (answer)
			if not (answer.allowed and answer.address) then
				return give_up(peer, "v6.alt policy: " .. tostring(answer.rule));
			end
			local port = tonumber(answer.port) or 5269;
			tcp_probe(answer.address, port, probe_interval * 2, function (ok)
				if not ok or peer.stalled ~= stall then return; end
				host_module:log("info", "s2s to %s: [%s]:%d answers again after %ds; resending %d unconfirmed and %d held stanza(s)",
					peer.to_host, answer.address, port, now() - peer.stalled_at, #peer.unconfirmed, #peer.held);
				release(peer);
			end);
		end, function (err)
			host_module:log("debug", "s2s to %s: probe skipped, lookup failed: %s", peer.to_host,
				type(err) == "table" and tostring(err.reason) or tostring(err));
		end);
		return probe_interval; -- a timer callback that returns a delay runs again
	end

	local function stall(peer)
		local this_stall = {};
		peer.stalled, peer.stalled_at, peer.barrier = this_stall, now(), nil;
		host_module:log("warn", "s2s to %s: no answer to a ping for %gs; closing the stream, holding %d unconfirmed stanza(s), probing every %gs",
			peer.to_host, stall_timeout, #peer.unconfirmed, probe_interval);
		metrics.stalled();
		local session = internals.outgoing_session(peer.from_host, peer.to_host);
		if session then
			-- Every stanza in it is in peer.unconfirmed: resent later, not bounced now.
			internals.drop_send_queue(session);
			session.v6alt_stalled = true;
			session:close({ condition = "connection-timeout"; text = "no answer to pings" }, nil, "stalled");
		end
		host_module:add_timer(0, function () return probe(peer, this_stall); end);
	end

	function send_barrier(peer)
		if peer.barrier or peer.stalled then return; end
		local barrier = {}; -- covers: the stanzas recorded when its ping goes out
		peer.barrier = barrier;
		host_module:add_timer(BARRIER_DELAY, function ()
			if peer.barrier ~= barrier then return; end
			barrier.covers = peer.seq;
			local ping = st.iq({ type = "get"; from = peer.from_host; to = peer.to_host; id = "v6alt-" .. new_id() })
				:tag("ping", { xmlns = PING_NS }):up();
			barriers[ping] = true;
			host_module:send_iq(ping, nil, stall_timeout):next(function ()
				if peer.barrier == barrier then confirm(peer, barrier.covers); end
			end, function (err)
				if peer.barrier ~= barrier then return; end
				local answered_by = type(err) == "table" and err.context and err.context.origin;
				if err and err.condition == "remote-server-timeout" and not answered_by then
					return stall(peer);
				end
				-- Any answer, even an error, passed through the peer's stream
				-- after our stanzas; a local bounce means Prosody bounced them too.
				confirm(peer, barrier.covers);
			end);
		end);
	end

	host_module:hook("route/remote", function (event)
		local stanza, to_host = event.stanza, event.to_host;
		if not is_v6alt(to_host) or barriers[stanza] then return; end
		local name = stanza.name;
		if name ~= "message" and name ~= "presence" and name ~= "iq" then return; end
		-- Answers are not tracked: the peer's answers to our barriers would
		-- otherwise need barriers of their own, and so on without end.
		if name == "iq" and (stanza.attr.type == "result" or stanza.attr.type == "error") then return; end
		local peer = peer_of(event.from_host, to_host);
		if peer.stalled then
			if #peer.held >= hold_max then
				host_module:log("warn", "s2s to %s: %d stanzas held (v6alt_s2s_hold_max); bouncing", to_host, hold_max);
				metrics.stanzas("bounced", 1);
				bounce(host_module, stanza, "resource-constraint", "too many stanzas held for " .. to_host);
			else
				metrics.stanzas("held", 1);
				peer.held[#peer.held + 1] = st.clone(stanza);
			end
			return true;
		end
		local resends = stanza.v6alt_resends or 0;
		if resends >= MAX_RESENDS then
			host_module:log("warn", "s2s to %s: a %s (id %s) was resent %d times without a confirmation; sending it once more, untracked",
				to_host, name, tostring(stanza.attr.id), resends);
			return;
		end
		peer.seq = peer.seq + 1;
		peer.unconfirmed[#peer.unconfirmed + 1] = { seq = peer.seq; stanza = st.clone(stanza); resends = resends };
		send_barrier(peer);
	end, 10);

	-- Above mod_smacks (0): its queue of a stream closed as stalled holds
	-- the same stanzas as peer.unconfirmed; bouncing them would report a
	-- failure for stanzas that are about to be resent.
	local function drop_smacks_queue(event)
		if event.session.v6alt_stalled then internals.drop_smacks_queue(event.session); end
	end
	host_module:hook("s2sout-destroyed", drop_smacks_queue, 100);
	host_module:hook("s2sin-destroyed", drop_smacks_queue, 100); -- a bidirectional stream

	local seen = cache.new(DEDUP_ENTRIES);
	local function drop_duplicate(event)
		local origin, stanza = event.origin, event.stanza;
		if not origin or (origin.type ~= "s2sin" and origin.type ~= "s2sout") then return; end
		if not is_v6alt(jid_host(stanza.attr.from)) then return; end
		local resent = stanza:get_child("resent", RESENT_NS) ~= nil;
		if resent then stanza:remove_children("resent", RESENT_NS); end
		local id = stanza.attr.id;
		if not id then return; end
		local key = table.concat({ stanza.name, stanza.attr.type or "", stanza.attr.from, stanza.attr.to or "", id }, "\0");
		local before = seen:get(key);
		if before == nil then
			seen:set(key, resent and "resent" or "original");
			return;
		end
		if resent or before == "resent" then
			host_module:log("info", "Dropping a %s from %s (id %s) received twice after a resend", stanza.name, stanza.attr.from, id);
			metrics.stanzas("duplicate_dropped", 1);
			return true;
		end
	end
	for _, event_name in ipairs(hooked_stanzas) do
		host_module:hook(event_name, drop_duplicate, 1000);
	end
end

return { watch_host = watch_host; RESENT_NS = RESENT_NS };
