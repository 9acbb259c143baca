-- Every place mod_v6alt writes into Prosody's own data, and the one place it
-- reads a table of Prosody's that no API hands out. These are internals, not
-- an API: each was checked by reading Prosody 13.0.1 (Debian backports) and
-- 0.12.3 (Debian bookworm); a new Prosody release must be checked against
-- this list.
--
-- The module's own state on sessions lives in fields named v6alt_*, which
-- Prosody never reads; events' own fields (event.resolver of
-- s2sout-pre-connect) are hook API and stay where they are used.

local import = module:require("v6alt_compat").import;

local s2s_destroy_session = import "core.s2smanager".destroy_session;

local internals = {};

-- session.secure: mod_tls sets it once TLS is up, and offers or starts
-- STARTTLS only while it is false (mod_tls 13.0.1); mod_s2s runs the
-- certificate check only on a secure stream (13.0.1, 0.12.3). Set on a
-- stream inside a secure range with "tls: off": no STARTTLS, the mesh
-- encrypts. session.ssl_ctx: mod_tls's TLS context for the session; false
-- makes its can_do_tls answer no, which is what stops STARTTLS on 0.12.3
-- (its can_do_tls does not look at session.secure) and changes nothing on
-- 13.0.1.
function internals.mark_secure(session)
	session.secure = true;
	session.ssl_ctx = false;
end

-- session.cert_chain_status and session.cert_identity_status: the verdict of
-- an s2s-check-certificate handler (mod_s2s_auth_certs writes them the same
-- way); mod_s2s authenticates a peer under s2s_secure_auth, and
-- mod_saslauth accepts SASL EXTERNAL, only when both are "valid" (13.0.1,
-- 0.12.3).
function internals.trust_certificate(session)
	session.cert_chain_status = "valid";
	session.cert_identity_status = "valid";
end

-- session.authenticated_remote: mod_s2s sets it on an outgoing stream whose
-- peer passed the certificate check when the stream opened, and refuses to
-- authenticate an outgoing stream under s2s_secure_auth without it
-- (make_authenticated, 13.0.1 and 0.12.3). Set, with the certificate verdict,
-- on an outgoing stream of a "tls: off" range learnt only from the peer's
-- features (0.12), after the stream opened.
function internals.trust_remote(session)
	internals.trust_certificate(session);
	session.authenticated_remote = true;
end

-- prosody.hosts[from_host].s2sout[to_host]: mod_s2s's outgoing session from
-- one local host to a remote one, pending or established (13.0.1, 0.12.3).
function internals.outgoing_session(from_host, to_host)
	local host = prosody.hosts[from_host];
	return host and host.s2sout[to_host];
end

-- session.sendq: mod_s2s's queue of stanzas waiting for an outgoing stream
-- to be established (a util.queue in 13.0.1, a plain list in 0.12.3); its
-- bounce_sendq answers every one with an error when the session closes.
-- Dropped when a stalled stream is closed: the recovery holds the same
-- stanzas and resends them.
function internals.drop_send_queue(session)
	session.sendq = nil;
end

-- session.outgoing_stanza_queue: mod_smacks's stanzas not yet acknowledged;
-- its s2sout-destroyed and s2sin-destroyed handlers (priority 0) bounce them,
-- or resend them with smacks_s2s_resend, when the session is destroyed
-- (13.0.1, 0.12.3). Dropped, from a handler above that priority, when the
-- stream was closed as stalled, for the same reason as sendq.
function internals.drop_smacks_queue(session)
	session.outgoing_stanza_queue = nil;
end

-- session.destroyed: s2smanager's destroy_session turns a torn-down session
-- into a "destroyed" one with this field true (13.0.1, 0.12.3). A handler
-- that waited in the session's async runner (a lookup) reads it before it
-- acts on the session again.
function internals.is_destroyed(session)
	return session.destroyed == true;
end

-- session.type and session.conn of an outgoing session: "s2sout_unauthed"
-- until it is authenticated; conn is set (mod_s2s's onattach, through
-- net.connect) only once the TCP connection is made (13.0.1, 0.12.3).
-- Connecting: no TCP connection yet (a SYN may be in the kernel's backoff).
function internals.is_connecting(session)
	return session.type == "s2sout_unauthed" and session.conn == nil;
end

-- Negotiating: connected, the stream not yet authenticated (TLS, SASL).
function internals.is_negotiating(session)
	return session.type == "s2sout_unauthed" and session.conn ~= nil;
end

-- s2smanager's destroy_session (13.0.1, 0.12.3): removes the session from
-- hosts[from].s2sout, bounces its sendq and retires it. For a session still
-- connecting, whose close() does nothing without a connection. A TCP
-- connection made for it later gets a retired session, which opens no
-- stream: the peer closes it after its own timeout.
function internals.destroy_session(session, reason)
	return s2s_destroy_session(session, reason);
end

-- session.bounce_sendq: mod_s2s sets it on every new outgoing session before
-- s2sout-created (13.0.1, 0.12.3); destroy_session calls it with the reason
-- the session ended, to answer every queued stanza with an error.
-- Wrapped: when hold(reason) is true the queue is dropped instead.
function internals.on_connect_failure(session, hold)
	local bounce = session.bounce_sendq;
	session.bounce_sendq = function (s, reason)
		if hold(reason) then
			s.sendq = nil;
			return;
		end
		if bounce then return bounce(s, reason); end
	end;
end

return internals;
