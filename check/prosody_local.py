"""``v6alt check local --prosody-config PATH``: what this host's Prosody will run with.

Prosody's config file is Lua (``VirtualHost``, ``Component``, ``Include``,
options computed from others, ``ENV_*``). Rather than guess at it, the check
asks Prosody's own config loader (``core.configmanager``), run by the Lua
interpreter and from the source directory of the installed ``prosody``
launcher (its ``#!`` line and ``CFG_SOURCEDIR``): exactly what the server
will see, on 13 and on 0.12, with nothing started and nothing written.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from v6alt.cli_common import UsageError
from v6alt.errors import abridge
from v6alt.names import is_v6alt

from .options import Options
from .report import Report, Status

__all__ = ["check_prosody"]

DEFAULT_LOOKUP_URL = "http://[::1]:5380"
DEFAULT_LOOKUP_CONCURRENCY = 16  # mod_v6alt's v6alt_lookup_concurrency
MAX_LOOKUP_CONCURRENCY = 1024
DEFAULT_LOOKUP_CONNECTIONS = 64  # the sidecar's limits.lookup_connections
MAX_CONFIG_BYTES = 1 << 20
_OPTIONS = (
    "plugin_paths",
    "installer_plugin_path",
    "modules_enabled",
    "modules_disabled",
    "s2s_secure_auth",
    "s2s_require_encryption",
    "v6alt_lookup_url",
    "v6alt_lookup_timeout",
    "v6alt_lookup_concurrency",
    "component_module",
    "data_path",
)
# Reads the config with Prosody's own loader and prints the options above as
# JSON, per host ("*": global). Only strings, numbers, booleans and lists of
# strings are printed.
_LOADER = """
local source, path = arg[1], arg[2]
package.path = source .. "/?.lua;" .. package.path
package.cpath = source .. "/?.so;" .. package.cpath
if not pcall(require, "prosody.loader") then pcall(require, "loader"); end
prosody = { paths = { source = source; config = path:match("^(.*)/[^/]*$") or "." } }
local cm = require "core.configmanager"
local json = require "util.json"
local ok, level, err = cm.load(path)
if not ok then
	io.write(json.encode({ error = tostring(level) .. ": " .. tostring(err) }))
	return
end
local function plain(value)
	local kind = type(value)
	if kind == "string" or kind == "number" or kind == "boolean" then return value end
	if kind == "table" then
		local list = {}
		for _, item in ipairs(value) do
			if type(item) == "string" then list[#list + 1] = item end
		end
		for key, item in pairs(value) do
			if type(key) == "string" and item == true then list[#list + 1] = key end
		end
		return setmetatable(list, json.array_mt)
	end
	return nil
end
local names = { %s }
local hosts = {}
for host in pairs(cm.getconfig()) do
	local options = {}
	for _, name in ipairs(names) do
		local value = host == "*" and cm.get("*", name) or cm.rawget(host, name)
		options[name] = plain(value)
	end
	hosts[host] = options
end
io.write(json.encode({ hosts = hosts }))
"""


def _launcher() -> tuple[str, str] | str:
    """(Lua interpreter, Prosody source directory) of the installed launcher, or why not."""
    found = shutil.which("prosody")
    if found is None:
        return "no prosody launcher in PATH"
    try:
        text = Path(found).read_text(errors="replace")[:20000]
    except OSError as exc:
        return f"{found}: {exc.strerror or exc}"
    shebang = text.splitlines()[0] if text else ""
    interpreter = shebang.removeprefix("#!").split()
    if interpreter[:1] == ["/usr/bin/env"]:
        interpreter = interpreter[1:]
    source = re.search(r"CFG_SOURCEDIR\s*=\s*CFG_SOURCEDIR\s+or\s+'([^']+)'", text) or re.search(
        r"CFG_SOURCEDIR\s*=\s*'([^']+)'", text
    )
    if not interpreter or source is None:
        return f"{found} has no #! line or CFG_SOURCEDIR"
    return interpreter[0], source.group(1)


def read_prosody_config(path: str, timeout: float) -> dict[str, dict[str, Any]] | str:
    """The options per host ("*" global), or what went wrong."""
    launcher = _launcher()
    if isinstance(launcher, str):
        return launcher
    lua, source = launcher
    script = _LOADER % "; ".join(f'"{name}"' for name in _OPTIONS)
    try:
        done = subprocess.run(
            [lua, "-", source, str(Path(path).resolve())],
            input=script,
            capture_output=True,
            text=True,
            timeout=max(timeout, 10.0),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{lua}: {exc}"
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        return (done.stderr.strip() or done.stdout.strip() or f"{lua} exit {done.returncode}")[:300]
    if not isinstance(answer, dict) or "error" in answer or "hosts" not in answer:
        error = answer.get("error") if isinstance(answer, dict) else answer
        return str(error)[:300]
    hosts = answer["hosts"]
    return hosts if isinstance(hosts, dict) else "no hosts"


def _list(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def validate_prosody_config(path: str) -> None:
    """A path that is not a readable file of at most 1 MiB is bad input
    (:class:`UsageError`, exit 2), as for the YAML files, before anything is checked."""
    shown = abridge(path)
    try:
        size = Path(path).stat().st_size
        if not Path(path).is_file():
            raise UsageError(f"check local: --prosody-config {shown}: not a regular file")
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise UsageError(
            f"check local: --prosody-config {shown}: {exc.strerror or type(exc).__name__}"
        ) from None
    if size > MAX_CONFIG_BYTES:
        raise UsageError(f"check local: --prosody-config {shown}: over 1 MiB")


def check_prosody(
    report: Report,
    options: Options,
    path: str,
    lookup_listen: str | None,
    lookup_connections: int = DEFAULT_LOOKUP_CONNECTIONS,
) -> None:
    """The prosody.* checks; ``lookup_listen``: the sidecar's lookup address, when
    known; ``lookup_connections``: its ``sidecar.limits.lookup_connections``."""
    shown = abridge(path)
    config = read_prosody_config(path, options.timeout)
    if isinstance(config, str):
        report.add_new(
            "prosody.config",
            Status.FAIL,
            f"{shown}: {config}",
            "give the prosody.cfg.lua Prosody runs with (--prosody-config PATH); "
            "`prosodyctl check config` shows the same errors",
        )
        return
    report.add_new("prosody.config", Status.PASS, f"read {shown} with Prosody's own loader")
    report.data["prosody_config"] = path
    glob = config.get("*", {})
    hosts = {h: o for h, o in config.items() if h != "*"}
    _module(report, glob, hosts)
    _plugin_paths(report, glob)
    _security(report, glob)
    _lookup_url(report, glob, lookup_listen)
    _lookup_concurrency(report, glob, lookup_connections)
    _mixed(report, hosts)


def _module(report: Report, glob: dict[str, Any], hosts: dict[str, Any]) -> None:
    enabled = _list(glob.get("modules_enabled"))
    disabled = _list(glob.get("modules_disabled"))
    if "v6alt" in enabled and "v6alt" not in disabled:
        report.add_new("prosody.module", Status.PASS, "v6alt in the global modules_enabled")
    else:
        only_hosts = [h for h, o in hosts.items() if "v6alt" in _list(o.get("modules_enabled"))]
        where = f" (only under {', '.join(sorted(only_hosts))})" if only_hosts else ""
        report.add_new(
            "prosody.module",
            Status.FAIL,
            f"v6alt is not in the global modules_enabled{where}",
            'mod_v6alt is a global module: add "v6alt" to modules_enabled before the first '
            "VirtualHost (docs/prosody.md, Configuration)",
        )
    if "s2s_v6mesh" in enabled:
        report.add_new(
            "prosody.module.v6mesh",
            Status.FAIL,
            "s2s_v6mesh is loaded too",
            "load one of mod_s2s_v6mesh and mod_v6alt, not both (docs/prosody.md, "
            '"Coming from mod_s2s_v6mesh")',
        )
    components = [
        h
        for h, o in hosts.items()
        if o.get("component_module") and "v6alt" not in _list(o.get("modules_enabled"))
    ]
    for host in sorted(components):
        report.add_new(
            "prosody.component",
            Status.WARN,
            f'Component "{host}" does not list v6alt',
            f'components do not inherit modules_enabled: add modules_enabled = {{ "v6alt" }} '
            f'under Component "{host}"',
        )


def _plugin_paths(report: Report, glob: dict[str, Any]) -> None:
    paths = _list(glob.get("plugin_paths"))
    installer = glob.get("installer_plugin_path")
    candidates = [*paths, *([installer] if isinstance(installer, str) else [])]
    found = [p for p in candidates if (Path(p) / "mod_v6alt.lua").is_file()]
    found += [
        str(q.parent)
        for p in candidates
        for q in Path(p).glob("*/*/mod_v6alt*.lua")  # installer trees (prosodyctl install)
        if Path(p).is_dir()
    ][:1]
    if found:
        report.add_new("prosody.plugin_paths", Status.PASS, f"mod_v6alt.lua in {found[0]}")
    else:
        shown = ", ".join(candidates) or "none"
        report.add_new(
            "prosody.plugin_paths",
            Status.FAIL,
            f"no mod_v6alt.lua in plugin_paths ({shown})",
            "add the directory `v6alt prosody-module-path` prints to plugin_paths, or install "
            "the rock with prosodyctl install (docs/prosody.md)",
        )


def _security(report: Report, glob: dict[str, Any]) -> None:
    secure_auth = glob.get("s2s_secure_auth")
    if secure_auth is True:
        report.add_new("prosody.s2s_secure_auth", Status.PASS, "s2s_secure_auth = true")
    else:
        shown = "not set (false in Prosody 13)" if secure_auth is None else repr(secure_auth)
        report.add_new(
            "prosody.s2s_secure_auth",
            Status.WARN,
            f"s2s_secure_auth is {shown}",
            "set s2s_secure_auth = true: otherwise self-signed servers with DNS names are "
            "accepted through dialback; v6.alt peers are trusted by address either way",
        )
    encryption = glob.get("s2s_require_encryption")
    if encryption is False:
        report.add_new(
            "prosody.s2s_require_encryption",
            Status.WARN,
            "s2s_require_encryption = false",
            "set s2s_require_encryption = true; a mesh without TLS is a secure range with "
            "tls: off in the sidecar's config, not a global switch",
        )
    else:
        report.add_new(
            "prosody.s2s_require_encryption", Status.PASS, "s2s_require_encryption is on"
        )


def _lookup_url(report: Report, glob: dict[str, Any], lookup_listen: str | None) -> None:
    url = glob.get("v6alt_lookup_url")
    url = url if isinstance(url, str) else DEFAULT_LOOKUP_URL
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.path.strip("/"):
        report.add_new(
            "prosody.lookup_url",
            Status.FAIL,
            f"v6alt_lookup_url {url[:64]!r} is not http://HOST:PORT",
            'set v6alt_lookup_url = "http://[::1]:5380" (the sidecar\'s lookup_listen)',
        )
        return
    host = parts.hostname
    where = f"[{host}]:{parts.port or 80}" if ":" in host else f"{host}:{parts.port or 80}"
    if lookup_listen is not None and where != lookup_listen:
        report.add_new(
            "prosody.lookup_url",
            Status.FAIL,
            f"v6alt_lookup_url {url} is not the sidecar's lookup_listen {lookup_listen}",
            f'set v6alt_lookup_url = "http://{lookup_listen}" in prosody.cfg.lua',
        )
        return
    report.add_new("prosody.lookup_url", Status.PASS, f"v6alt_lookup_url {url}")


def _lookup_concurrency(report: Report, glob: dict[str, Any], lookup_connections: int) -> None:
    # mod_v6alt opens one connection per lookup; past the sidecar's limit the
    # sidecar closes open ones, and those lookups fail closed.
    value = glob.get("v6alt_lookup_concurrency", DEFAULT_LOOKUP_CONCURRENCY)
    wanted = max(1, min(DEFAULT_LOOKUP_CONCURRENCY, lookup_connections - 1))
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 1 <= value <= MAX_LOOKUP_CONCURRENCY
    ):
        report.add_new(
            "prosody.lookup_concurrency",
            Status.FAIL,
            f"v6alt_lookup_concurrency {str(value)[:32]!r} is not a number from 1 to "
            f"{MAX_LOOKUP_CONCURRENCY} (mod_v6alt uses {DEFAULT_LOOKUP_CONCURRENCY} instead)",
            f"set v6alt_lookup_concurrency = {wanted} in prosody.cfg.lua, or remove it",
        )
        return
    if value >= lookup_connections:
        report.add_new(
            "prosody.lookup_concurrency",
            Status.FAIL,
            f"v6alt_lookup_concurrency {value:g} is not below the sidecar's "
            f"limits.lookup_connections {lookup_connections}: a burst of lookups "
            "gets open ones closed, and those fail closed",
            f"set v6alt_lookup_concurrency = {wanted} in prosody.cfg.lua, or raise "
            "sidecar.limits.lookup_connections",
        )
        return
    report.add_new(
        "prosody.lookup_concurrency",
        Status.PASS,
        f"v6alt_lookup_concurrency {value:g}, below the sidecar's "
        f"limits.lookup_connections {lookup_connections}",
    )


def _mixed(report: Report, hosts: dict[str, Any]) -> None:
    for host in sorted(h for h, o in hosts.items() if not o.get("component_module")):
        if is_v6alt(host):
            continue
        report.add_new(
            "prosody.virtualhost",
            Status.INFO,
            f'VirtualHost "{host}" is a DNS name: peers check its certificate against CAs',
            'to be reached by mesh peers too, see docs/mixed.md, "Keeping a DNS name on the '
            'mesh"; to run it on a v6.alt name, "Delegating a DNS name to a v6.alt server"',
        )
