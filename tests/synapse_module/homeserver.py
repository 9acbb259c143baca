"""The Synapse tests' homeservers: the lab's launcher on the documented homeserver.yaml.

Each is a :class:`v6alt.lab.matrix.homeserver.Homeserver` on a host of the
tests' :class:`~v6alt.lab.netns.FlatNet`, whose homeserver.yaml is the
documented snippet (docs/synapse-homeserver.yaml, filled in with
``string.Template``) plus the settings of every disposable homeserver (SQLite,
a registration secret, the client API on a unix socket, generous rate
limits); the module's ``config:`` mapping may be replaced per test. Each
host's only DNS server is a recorder (:mod:`v6alt.lab.dns_recorder`) writing
``dns-queries.log``.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv6Address
from pathlib import Path
from typing import Any

from v6alt.lab.certificates import LabCa, make_lab_ca
from v6alt.lab.matrix import homeserver as launcher
from v6alt.lab.matrix.client import quote
from v6alt.lab.matrix.files import LAB_LOGGERS, HomeserverFiles, homeserver_config
from v6alt.lab.matrix.files import log_config as _log_config
from v6alt.lab.netns import FlatHost, FlatNet

__all__ = ["Homeserver", "flat_mesh", "log_config", "make_ca", "quote", "render_config"]

REPO = Path(__file__).resolve().parents[2]
DOCS_SNIPPET = REPO / "docs" / "synapse-homeserver.yaml"
#: Hosts of the tests' link: host number i (from 1) gets ``<SUBNET><i>``.
SUBNET = "202:6a1f:77::"
#: The lab's loggers, plus the federation client's requests (tests look for them in the log).
TEST_LOGGERS = {
    **LAB_LOGGERS,
    "synapse.http.federation": "DEBUG",
    "synapse.storage.txn": "WARNING",
}
#: The client socket serves keys too: tests query a peer's keys through their own server.
CLIENT_RESOURCES = ("client", "keys")


def flat_mesh(names: tuple[str, ...], tag: str) -> Iterator[FlatNet]:
    """Hosts ``names`` on one 200::/7 link (namespaces ``v6s-<tag>-<name>``)."""
    with FlatNet(f"v6s-{tag}-") as net:
        for index, name in enumerate(names, start=1):
            net.add_host(name, f"{SUBNET}{index:x}")
        yield net


def log_config(log: Path) -> str:
    """The tests' Synapse logging config: everything into ``log``, the federation client too."""
    return _log_config(log, TEST_LOGGERS)


def render_config(values: dict[str, str], module_config: Any = None, extra: Any = None) -> Any:
    """The merged homeserver config as data: the documented snippet, the disposable server's
    settings (``values["data_dir"]``, ``values["registration_secret"]``), then the overrides."""
    files = HomeserverFiles(Path(values["data_dir"]), values["server_name"])
    return homeserver_config(
        files,
        IPv6Address(values["mesh_address"]),
        values["registration_secret"],
        template=DOCS_SNIPPET,
        module_config=module_config,
        extra=extra,
        client_resources=CLIENT_RESOURCES,
    )


class Homeserver(launcher.Homeserver):
    """A homeserver on ``host`` in ``data_dir``, from the documented snippet."""

    def __init__(
        self,
        host: FlatHost,
        data_dir: Path,
        *,
        ca_dir: Path | None = None,
        dns_records: dict[str, str] | None = None,
        **settings: Any,
    ) -> None:
        """``ca_dir``: a test CA (:func:`make_ca`) issues the certificate; ``dns_records``:
        AAAA records the host's DNS recorder answers (name -> address); ``settings``:
        the launcher's (``module_config``, ``extra``, ``env``, ``server_name``, ...)."""
        super().__init__(
            data_dir,
            host.address,
            netns=host.netns,
            template=DOCS_SNIPPET,
            issuer=LabCa(ca_dir).issue if ca_dir is not None else None,
            loggers=TEST_LOGGERS,
            client_resources=CLIENT_RESOURCES,
            **settings,
        )
        self.host = host
        self.data_dir = data_dir
        self.dns_records = dns_records
        self.dns_log = data_dir / "dns-queries.log"

    def register(  # type: ignore[override]
        self, localpart: str, password: str = "v6alt-test-password"
    ) -> str:
        """Register a user with the shared secret; returns an access token."""
        return super().register(localpart, password).token


def make_ca(directory: Path) -> Path:
    """A test certificate authority: ``ca.crt`` and ``ca.key`` in ``directory``."""
    return make_lab_ca(directory, "v6alt test CA").directory
