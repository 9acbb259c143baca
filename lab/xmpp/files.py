"""The files of one lab XMPP site: sidecar config, self-signed certificate, prosody.cfg.lua.

The Prosody configuration is rendered from ``prosody_site.cfg.lua``, which is
the ``prosody-config`` block of ``docs/prosody.md`` byte for byte (a test
keeps the two equal), so the lab runs exactly the documented setup. Only the
per-instance plumbing (pid file, data, admin socket, log) is added in front:
several Prosody servers share this machine, one per namespace.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Final

from v6alt.prosody_bridge.cli_prosody_module_path import install_module

from ..certificates import self_signed_certificate

__all__ = [
    "DNS_LISTEN",
    "LOOKUP_LISTEN",
    "PROSODY_USER",
    "SiteFiles",
    "instance_plumbing",
    "render_prosody_config",
    "site_template",
    "write_site_files",
]

PROSODY_USER: Final = "prosody"
# Each lab host is its own namespace, so the documented default ports are free there.
DNS_LISTEN: Final = "[::1]:5353"
LOOKUP_LISTEN: Final = "[::1]:5380"
LOOKUP_URL: Final = "http://[::1]:5380"
TEMPLATE: Final = Path(__file__).with_name("prosody_site.cfg.lua")

_PLUMBING: Final = """\
-- Instance plumbing (one server per namespace, its files under one directory).
pidfile = "{tree}/prosody.pid"
data_path = "{tree}/data"
admin_socket = "{tree}/admin.sock"
certificates = "{tree}"
log = {{ {log_level} = "{tree}/prosody.log" }}

"""


@dataclass(frozen=True)
class SiteFiles:
    """Paths of one site's files, all inside ``tree``."""

    tree: Path
    domain: str

    @property
    def sidecar_config(self) -> Path:
        return self.tree / "sidecar.yaml"

    @property
    def sidecar_log(self) -> Path:
        return self.tree / "sidecar.log"

    @property
    def prosody_config(self) -> Path:
        return self.tree / "prosody.cfg.lua"

    @property
    def prosody_log(self) -> Path:
        return self.tree / "prosody.log"

    @property
    def prosody_output(self) -> Path:
        return self.tree / "prosody.out"

    @property
    def modules(self) -> Path:
        """Prosody's plugin path: a copy of the installed mod_v6alt.lua."""
        return self.tree / "modules"

    @property
    def certificate(self) -> Path:
        return self.tree / f"{self.domain}.crt"

    @property
    def key(self) -> Path:
        return self.tree / f"{self.domain}.key"


def site_template() -> str:
    """The documented prosody.cfg.lua block (``docs/prosody.md``, prosody-config)."""
    return TEMPLATE.read_text()


def instance_plumbing(tree: Path, log_level: str = "info") -> str:
    """The global lines that let several Prosody servers share this machine.

    Pid file, data, admin socket, certificates and ``prosody.log`` (from
    ``log_level`` up) all go under ``tree``; they go in front of the
    documented configuration, which leaves them to the distribution.
    """
    return _PLUMBING.format(tree=tree, log_level=log_level)


def render_prosody_config(files: SiteFiles) -> str:
    body = Template(site_template()).substitute(
        plugin_path=files.modules,
        domain=files.domain,
        certificate=files.certificate,
        key=files.key,
        lookup_url=LOOKUP_URL,
    )
    return instance_plumbing(files.tree) + body


def _make_certificate(files: SiteFiles) -> None:
    """Self-signed certificate for the domain and its subdomains (the MUC component)."""
    self_signed_certificate(files.domain, files.key, files.certificate, subdomains=True)
    shutil.chown(files.key, PROSODY_USER, PROSODY_USER)
    files.key.chmod(0o600)


def write_site_files(files: SiteFiles) -> None:
    """Fill the (new, empty) tree: sidecar config, certificate, Prosody config, data dir.

    The tree belongs to the prosody user, which writes its pid file, data and
    log there; the key is readable by it alone. mod_v6alt.lua is copied in,
    because v6alt may be installed where Prosody's user cannot read (a
    virtualenv under /root).
    """
    shutil.chown(files.tree, PROSODY_USER, PROSODY_USER)
    install_module(files.modules)
    files.sidecar_config.write_text(
        "# v6alt sidecar of a lab host: the defaults, listening on the namespace's loopback,\n"
        "# with the pins of its peers kept in the lab host's own tree.\n"
        f'sidecar:\n  dns_listen: "{DNS_LISTEN}"\n  lookup_listen: "{LOOKUP_LISTEN}"\n'
        f'pinning:\n  file: "{files.tree / "xmpp-pins.json"}"\n'
    )
    _make_certificate(files)
    files.prosody_config.write_text(render_prosody_config(files))
    data = files.tree / "data"
    data.mkdir(mode=0o750)
    shutil.chown(data, PROSODY_USER, PROSODY_USER)
