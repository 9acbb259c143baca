-- Stalled s2s streams to v6.alt peers: notice, hold, reconnect, resend once.
--
-- When a mesh link is cut, an s2s TCP connection over it does not fail: the
-- kernel retransmits at doubling intervals (up to two minutes apart), so
-- after the link returns the stanzas written during the cut wait for the
-- next retransmission, and if the kernel gives up first they are lost
-- (Prosody has no stream resumption on s2s). When the peer's server is
-- down, Prosody bounces what is sent to it. Here, per (local host, v6.alt
-- peer):
--
--  * every stanza routed to the peer is kept until a ping sent after it
--    (a barrier) is answered: the stream is ordered, so an answer confirms
--    everything before it;
--  * a barrier unanswered for the probe delay: the peer's port is probed
--    with a bare TCP connect (v6alt_probe_scheduler: shared, rate-bounded);
--    one that connects while the barrier is still unanswered means the
--    route works but the stream is stuck (a short cut, in the kernel's
--    retransmission backoff): the stream is replaced at once;
--  * no answer within the stall timeout, or a connection attempt that
--    fails before the peer ever answered (refused, unreachable, timed out):
--    the peer is stalled: the stream is closed, new stanzas are held, the
--    probes go on;
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
-- reloaded.

local import = module:require("v6alt_compat").import;

local cache = import "util.cache";
local jid_host = import "util.jid".host;
local new_id = import "util.id".short;
local st = import "util.stanza";
local time_now = import "util.time".now;

local internals = module:require("v6alt_internals");

local RESENT_NS = "urn:v6alt:resent:0";
local PING_NS = "urn:xmpp:ping";
local BARRIER_DELAY = 0.05; -- lets a burst of stanzas share one barrier
local DEDUP_ENTRIES = 10000;
local TARGET_TTL = 60; -- seconds a stalled peer's looked-up address is reused by its probes
-- A stanza resent this often without a confirmation is sent once more and
-- no longer tracked: the peer takes it but cannot answer (one-way
-- reachability), and resending on would loop for ever.
local MAX_RESENDS = 3;
-- Why a connection attempt failed, when it says the peer is out of reach
-- (not refused by policy or by a certificate check): its stanzas are held.
local UNREACHABLE = { "refused", "timeout", "timed out", "unreachable", "no route", "reset" };

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

local function out_of_reach(reason)
	if type(reason) == "table" then reason = reason.condition or reason.text; end
	local text = tostring(reason):lower();
	for _, word in ipairs(UNREACHABLE) do
		if text:find(word, 1, true) then return true; end
	end
	return false;
end

-- Wires the recovery into one host. `settings`: the host's options, read
-- and checked by mod_v6alt: stall_timeout (0: off), probe_after, hold_time,
-- hold_max. `services`: is_v6alt(domain) -> bool, resolve(domain) ->
-- promise of the lookup service's /v1/resolve answer, scheduler (the
-- server's one v6alt_probe_scheduler) and metrics (mod_v6alt's counters) to
-- count stalls, recoveries and stanzas.
local function watch_host(host_module, settings, services)
	local stall_timeout = settings.stall_timeout;
	if stall_timeout == 0 then
		host_module:log("debug", "Stalled s2s recovery is off (v6alt_s2s_stall_timeout = 0)");
		return;
	end
	local probe_after, hold_time, hold_max = settings.probe_after, settings.hold_time, settings.hold_max;
	local is_v6alt, resolve = services.is_v6alt, services.resolve;
	local metrics, scheduler = services.metrics, services.scheduler;

	local peers = {}; -- to_host -> state
	local barriers = setmetatable({}, { __mode = "k" }); -- our own pings: not tracked
	local send_barrier, start_probing; -- forward declarations: they call each other

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
			scheduler:remove(peer);
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
		if not peer.stalled then scheduler:remove(peer); end
		if #kept > 0 then send_barrier(peer); else forget_if_idle(peer); end
	end

	local function release(peer)
		local resend, held = peer.unconfirmed, peer.held;
		peer.unconfirmed, peer.held, peer.stalled, peer.barrier = {}, {}, nil, nil;
		scheduler:remove(peer);
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
		scheduler:remove(peer);
		metrics.stanzas("bounced", lost);
		for _, entry in ipairs(entries) do bounce(host_module, entry.stanza, "remote-server-timeout", text); end
		for _, stanza in ipairs(held) do bounce(host_module, stanza, "remote-server-timeout", text); end
		forget_if_idle(peer);
	end

	-- Closes the peer's stream (a connection still being made is dropped)
	-- and holds what is sent from now on; the probes go on.
	local function stall(peer, why)
		local first = not peer.stalled;
		peer.stalled, peer.barrier = true, nil;
		if first then
			peer.stalled_at = now();
			host_module:log("warn", "s2s to %s: %s; closing the stream, holding %d unconfirmed stanza(s), probing every %gs",
				peer.to_host, why, #peer.unconfirmed, scheduler:period());
			metrics.stalled();
		end
		local session = internals.outgoing_session(peer.from_host, peer.to_host);
		if session then
			-- Every stanza in it is in peer.unconfirmed: resent later, not bounced now.
			internals.drop_send_queue(session);
			session.v6alt_stalled = true;
			if internals.is_connecting(session) then
				internals.destroy_session(session, "v6.alt peer stalled: " .. why);
			else
				session:close({ condition = "connection-timeout"; text = "no answer to pings" }, nil, "stalled");
			end
		end
		start_probing(peer, 0);
	end

	-- A stream whose barrier has gone unanswered for the probe delay, not
	-- one still negotiating (its own timeouts apply).
	local function suspect(peer)
		local barrier = peer.barrier;
		if not (barrier and barrier.sent_at) or time_now() - barrier.sent_at < probe_after then return false; end
		local session = internals.outgoing_session(peer.from_host, peer.to_host);
		return not (session and internals.is_negotiating(session));
	end

	local function refresh_target(peer)
		if peer.resolving then return; end
		peer.resolving = true;
		resolve(peer.to_host):next(function (answer)
			peer.resolving = nil;
			if not (answer.allowed and answer.address) then
				if peer.stalled then give_up(peer, "v6.alt policy: " .. tostring(answer.rule)); end
				return;
			end
			peer.target = { address = answer.address; port = tonumber(answer.port) or 5269; at = now() };
		end, function (err)
			peer.resolving = nil;
			host_module:log("debug", "s2s to %s: probe skipped, lookup failed: %s", peer.to_host,
				type(err) == "table" and tostring(err.reason) or tostring(err));
		end);
	end

	local function probe_target(peer)
		if peer.stalled then
			local held_for = now() - peer.stalled_at;
			if held_for > hold_time then
				give_up(peer, ("no answer for %ds (v6alt_s2s_hold_time)"):format(held_for));
				return nil;
			end
		elseif not suspect(peer) then
			return nil;
		end
		local target = peer.target;
		if not target or now() - target.at > TARGET_TTL then refresh_target(peer); end
		if target then return target.address, target.port; end
	end

	local function probe_result(peer, outcome)
		if outcome ~= "connected" then return; end
		local target = peer.target;
		if peer.stalled then
			host_module:log("info", "s2s to %s: [%s]:%d answers again after %ds; resending %d unconfirmed and %d held stanza(s)",
				peer.to_host, target.address, target.port, now() - peer.stalled_at, #peer.unconfirmed, #peer.held);
		elseif suspect(peer) then
			host_module:log("info", "s2s to %s: a ping unanswered for %.1fs, but [%s]:%d answers; replacing the stream, resending %d unconfirmed stanza(s)",
				peer.to_host, time_now() - peer.barrier.sent_at, target.address, target.port, #peer.unconfirmed);
			stall(peer, "stream stuck while the peer answers");
		else
			return;
		end
		release(peer);
	end

	function start_probing(peer, delay)
		scheduler:add(peer, {
			target = function () return probe_target(peer); end;
			result = function (outcome) return probe_result(peer, outcome); end;
		}, delay);
	end

	-- A ping to the peer: answered(true) on any answer, a result or an error
	-- (even Prosody's own bounce: it means the stanzas before it bounced
	-- too), answered(false) after the stall timeout. Tracked here, not with
	-- module:send_iq, whose cache keeps 256 outstanding iqs per host and
	-- rejects the oldest beyond that (13.0.1, 0.12.3): with more peers
	-- waiting, their barriers would be taken as answered.
	local function ping(peer, answered)
		local id = "v6alt-" .. new_id();
		local result_event, error_event = "iq-result/host/" .. id, "iq-error/host/" .. id;
		local done, answer = false, nil;
		local function finish(ok)
			done = true;
			host_module:unhook(result_event, answer);
			host_module:unhook(error_event, answer);
			answered(ok);
		end
		function answer(event)
			if done or event.stanza.attr.from ~= peer.to_host then return; end
			finish(true);
			return true;
		end
		host_module:hook(result_event, answer, 1);
		host_module:hook(error_event, answer, 1);
		host_module:add_timer(stall_timeout, function ()
			if not done then finish(false); end
		end);
		local stanza = st.iq({ type = "get"; from = peer.from_host; to = peer.to_host; id = id })
			:tag("ping", { xmlns = PING_NS }):up();
		barriers[stanza] = true;
		host_module:send(stanza);
	end

	function send_barrier(peer)
		if peer.barrier or peer.stalled then return; end
		local barrier = {}; -- covers: the stanzas recorded when its ping goes out
		peer.barrier = barrier;
		host_module:add_timer(BARRIER_DELAY, function ()
			if peer.barrier ~= barrier then return; end
			barrier.covers, barrier.sent_at = peer.seq, time_now();
			start_probing(peer, probe_after);
			ping(peer, function (ok)
				if peer.barrier ~= barrier then return; end
				if ok then return confirm(peer, barrier.covers); end
				stall(peer, ("no answer to a ping for %gs"):format(stall_timeout));
			end);
		end);
	end

	-- A connection attempt to the peer that fails before the peer ever
	-- opened a stream, for want of reaching it (not a policy or lookup
	-- refusal, which bounce as before): its queue is held, not bounced.
	host_module:hook("s2sout-created", function (event)
		local session = event.session;
		if not is_v6alt(session.to_host) then return; end
		internals.on_connect_failure(session, function (reason)
			local peer = peers[session.to_host];
			if not peer or session.v6alt_stalled or session.had_stream or session.v6alt_lookup_failed
				or not out_of_reach(reason) then
				return false;
			end
			if #peer.unconfirmed == 0 and #peer.held == 0 then return false; end
			stall(peer, "connection failed: " .. tostring(type(reason) == "table" and reason.text or reason));
			return true;
		end);
	end);

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
