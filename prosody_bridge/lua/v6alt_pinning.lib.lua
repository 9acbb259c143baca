-- Trust on first use for a v6.alt peer the address check trusts and whose
-- pinning (from the lookup service's answer) is not "off": the sidecar
-- judges the certificate's key against its pin file (/v1/pin).
--
-- new(lookup_service) -> check_pin(session, host, ip, cert, decision):
-- returns true, or false, the reason and whether there was no certificate
-- at all; a fourth value true says the key was judged against a pin and
-- passed. Fails closed under "enforce". Waits in the session's async
-- runner.

local import = module:require("v6alt_compat").import;

local async = import "util.async";
local base64 = import "util.encodings".base64;
local sha256 = import "util.hashes".sha256;

local internals = module:require("v6alt_internals");

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

local function new(lookup_service)
	return function (session, host, ip, cert, decision)
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
		local answer, err = async.wait_for(lookup_service:ask("/v1/pin", { name = host; address = ip; spki = spki }));
		if internals.is_destroyed(session) then
			return false, "the stream closed while its pin was checked";
		end
		if not answer then
			local reason = lookup_service:failure(err, ("the pin check of %s at [%s]"):format(host, tostring(ip)));
			return mode ~= "enforce", reason;
		end
		if type(answer.message) == "string" then
			session.log(answer.status == "mismatch" and "warn" or "info", "v6alt: %s", answer.message);
		end
		if answer.accept ~= true then
			return false, tostring(answer.reason or "refused by its pin");
		end
		return true, nil, nil, true;
	end;
end

return { new = new };
