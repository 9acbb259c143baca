-- mod_v6alt's counters (docs/metrics.md).
--
-- Prosody's metrics API (module:metric, the same in 0.12.3 and 13.0.1:
-- core/moduleapi.lua and util/openmetrics.lua), which mod_http_openmetrics
-- exports on /metrics as prosody_mod_v6alt__<name>_total. The module is
-- global, so its families carry no host label. Without `statistics`
-- configured Prosody hands out a dummy that ignores every call. Every label
-- value is from a fixed set (the lookup service's verdicts are checked
-- against theirs, its rule identifiers against their shape and length): no
-- domain or address is ever a label, so no peer can add a series.
--
-- new() -> metrics: lookup(path, ok, value) counts a settled lookup (ok:
-- value is the answer; else the failure, { unavailable = bool }),
-- trust(kind), stalled(), recovered(), stanzas(event, count), probe(outcome).

local LOOKUP_ENDPOINTS = { ["/v1/resolve"] = "resolve"; ["/v1/peer"] = "peer"; ["/v1/pin"] = "pin"; ["/v1/health"] = "health" };
-- The lookup service's verdicts (prosody_bridge/lookup_answer.py, Verdict).
local ANSWER_VERDICTS = { ok = true; not_v6alt = true; allowed = true; refused = true; mismatch = true; accepted = true };
local TRUST_KINDS = { "address_bound", "pinned", "any_certificate", "ca", "no_tls", "refused" };
local STANZA_EVENTS = { "held", "resent", "duplicate_dropped", "bounced" };
local PROBE_OUTCOMES = { "connected", "refused", "failed", "timeout" };

local function rule_label(answer)
	local rule = answer.rule_id;
	if type(rule) ~= "string" then return ""; end
	if #rule > 40 or not rule:match("^[a-z0-9_]*$") then return "other"; end
	return rule;
end

-- The verdict of one lookup. An answer says its own (the sidecar decides
-- it); one without a verdict this module knows (a sidecar older than the
-- field, or a newer one's new verdict) is "unknown". A lookup without an
-- answer is "unavailable" (the service did not answer) or "error" (it
-- refused the input).
local function verdict_label(ok, value)
	if not ok then
		return type(value) == "table" and value.unavailable and "unavailable" or "error";
	end
	local verdict = value.verdict;
	if ANSWER_VERDICTS[verdict] then return verdict; end
	return "unknown";
end

local function new()
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
		lookups:with_labels(endpoint, verdict_label(ok, value), ok and rule_label(value) or ""):add(1);
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

return { new = new };
