#!/bin/sh
# The v6alt-prosody image's entrypoint: the VirtualHost is the stack's server
# name, which `v6alt docker-setup` wrote to $V6ALT_NAME_FILE (default
# /run/v6alt/name), with the self-signed certificate it made for the name
# (--prosody-certificates /var/lib/prosody/v6alt; IP-bound trust needs no
# CA); the configuration below is written, then Prosody runs in the
# foreground as the user prosody.
set -eu
name_file=${V6ALT_NAME_FILE:-/run/v6alt/name}
lookup=${V6ALT_LOOKUP_URL:-http://[::1]:5380}
name=$(cat "$name_file")
certs=/var/lib/prosody/v6alt
if [ ! -f "$certs/$name.crt" ] || [ ! -f "$certs/$name.key" ]; then
    echo "prosody-start: no certificate for $name in $certs; the stack's setup makes it" \
        "(v6alt docker-setup --prosody-certificates $certs, docs/docker.md)" >&2
    exit 1
fi
chown -R prosody:prosody /var/lib/prosody
mkdir -p /run/prosody && chown prosody:prosody /run/prosody
cat > /run/prosody/prosody.cfg.lua <<CONFIG
-- Written by prosody-start for $name; mod_v6alt comes from the rock that
-- prosodyctl installed into the installer plugin directory.
pidfile = "/run/prosody/prosody.pid"
admin_socket = "/run/prosody/prosody.sock"
data_path = "/var/lib/prosody"
installer_plugin_path = "/usr/local/lib/prosody/plugins"
log = { { levels = { min = "info" }, to = "console" } }

modules_enabled = {
	"tls"; "saslauth"; "disco"; "roster"; "ping"; "admin_shell";
	"v6alt";
}

-- Keep certificate checking on for every domain: mod_v6alt trusts a v6.alt
-- peer by its address, nothing else is relaxed.
s2s_secure_auth = true
s2s_require_encryption = true
c2s_require_encryption = true

v6alt_lookup_url = "$lookup"
v6alt_lookup_timeout = 2

ssl = { certificate = "$certs/$name.crt"; key = "$certs/$name.key" }

VirtualHost "$name"
CONFIG
chmod 644 /run/prosody/prosody.cfg.lua
exec runuser -u prosody -- prosody --config /run/prosody/prosody.cfg.lua -F
