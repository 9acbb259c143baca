plugin_paths = { "${plugin_path}" }

-- mod_v6alt is a global module: listed here, it runs for every VirtualHost.
-- dialback: for peers that do not accept this server's certificate (a
-- stock Prosody, ejabberd); mod_v6alt binds it to the address.
modules_enabled = {
	"tls"; "saslauth"; "dialback"; "disco"; "roster"; "ping";
	"v6alt";
}

-- Keep certificate checking on for every domain: mod_v6alt trusts a v6.alt
-- peer by its address (by certificate, or by dialback to that address),
-- nothing else is relaxed.
s2s_secure_auth = true
s2s_require_encryption = true

-- The sidecar's lookup service (sidecar.lookup_listen); seconds to wait for it.
v6alt_lookup_url = "${lookup_url}"
v6alt_lookup_timeout = 2

-- Self-signed is fine for v6.alt domains.
ssl = { certificate = "${certificate}"; key = "${key}" }

VirtualHost "${domain}"

-- Components do not inherit modules_enabled: list v6alt again.
Component "groups.${domain}" "muc"
	modules_enabled = { "v6alt" }
	muc_room_locking = false
