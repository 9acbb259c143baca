"""`v6alt docker-setup` without containers: fixture addresses, a temporary /data.

What the container tests (tests/docker) rely on, checked in-process: the
name printed and written, Synapse's files with the documented settings, the
files kept on a restart, a changed name refused, the wait for an address,
the exit codes; docs/docker.md describes them.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path
from string import Template
from typing import Any

import pytest
import yaml

import v6alt.cli
from tests.cli_support import Result, run
from v6alt.cli import CORE_COMMANDS
from v6alt.codec import encode
from v6alt.deploy import cli_docker_setup
from v6alt.deploy.docker_setup import SYNAPSE_UID, SetupError, find_address, write_synapse
from v6alt.hostinfo import NoRouteError

REPO = Path(__file__).resolve().parents[2]
DOCS_SNIPPET = REPO / "docs" / "synapse-homeserver.yaml"

YGGDRASIL = IPv6Address("200:cab8:deb4:ce60:4362:4492:e539:4b5")
OTHER_YGGDRASIL = IPv6Address("201:1111:2222:3333::1")
GLOBAL = IPv6Address("2a00:1098:3a0::1")


def if_inet6(*addresses: IPv6Address) -> str:
    return "".join(f"{a.exploded.replace(':', '')} 03 40 00 80 eth0\n" for a in addresses)


def routes(source: IPv6Address | None) -> Callable[[IPv6Address], str]:
    def route_get(destination: IPv6Address) -> str:
        if source is None:
            raise NoRouteError("Network is unreachable")
        return json.dumps([{"dst": str(destination), "dev": "eth0", "prefsrc": str(source)}])

    return route_get


@pytest.fixture(autouse=True)
def no_installed_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the commands a test gives: the installed docker-setup would be a second one."""
    monkeypatch.setattr(v6alt.cli, "_plugin_entry_points", list)


def setup(
    *argv: str,
    addresses: tuple[IPv6Address, ...] = (YGGDRASIL,),
    source: IPv6Address | None = YGGDRASIL,
    environ: Mapping[str, str] | None = None,
) -> Result:
    registrar = functools.partial(
        cli_docker_setup.register,
        read_addresses=lambda: if_inet6(*addresses),
        route_get=routes(source),
        environ=environ or {},
    )
    return run("docker-setup", *argv, commands=[*CORE_COMMANDS, registrar])


@pytest.fixture
def data(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("the files are given to Synapse's user (991): needs root")
    yield tmp_path / "data"


def homeserver_yaml(data: Path) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((data / "homeserver.yaml").read_text())
    return config


def test_help_through_the_installed_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # the real `v6alt`, with the plugins pyproject.toml declares
    result = run("docker-setup", "--help")
    assert result.code == 0
    options = (
        "--range",
        "--wait",
        "--synapse DIR",
        "--prosody-certificates DIR",
        "--name-file FILE",
    )
    for option in (*options, "exit status"):
        assert option in result.out


def test_prints_the_name_and_writes_the_name_file(tmp_path: Path) -> None:
    result = setup("--name-file", str(tmp_path / "run" / "name"))
    assert (result.code, result.out, result.err) == (0, encode(YGGDRASIL) + "\n", "")
    assert (tmp_path / "run" / "name").read_text() == encode(YGGDRASIL) + "\n"


def test_the_kernels_source_is_the_name_not_another_address_in_the_range() -> None:
    result = setup(addresses=(OTHER_YGGDRASIL, YGGDRASIL), source=YGGDRASIL)
    assert result.out == encode(YGGDRASIL) + "\n"
    # Without a route, an address of the host in the range.
    result = setup(addresses=(GLOBAL, OTHER_YGGDRASIL), source=None)
    assert result.out == encode(OTHER_YGGDRASIL) + "\n"


def test_global_range() -> None:
    result = setup("--range", "2000::/3", addresses=(YGGDRASIL, GLOBAL), source=GLOBAL)
    assert (result.code, result.out) == (0, encode(GLOBAL) + "\n")


def test_no_address_in_time_is_exit_1() -> None:
    result = setup("--wait", "0", addresses=(GLOBAL,), source=None)
    assert result.code == 1 and result.out == ""
    assert result.err == (
        "v6alt: docker-setup: no address in 200::/7 after 0 s: "
        "no address in 200::/7 yet (1 mesh addresses)\n"
    )


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (("--range", "fd00::/8"), "--range fd00::/8 lies in none of the mesh ranges"),
        (("--range", "::/0"), "--range ::/0 lies in none of the mesh ranges"),
        (("--range", "200::1/7"), "invalid IPv6Network value"),
        (("--wait", "soon"), "invalid float value"),
    ],
)
def test_bad_usage_is_exit_2(argv: tuple[str, ...], reason: str) -> None:
    result = setup(*argv)
    assert result.code == 2 and result.out == ""
    assert reason in result.err


def test_waits_for_the_address() -> None:
    answers = iter(["", "", if_inet6(YGGDRASIL)])
    slept: list[float] = []
    found = find_address(
        IPv6Network("200::/7"), 60, lambda: next(answers), routes(None), slept.append
    )
    assert found == YGGDRASIL and slept == [0.5, 0.5]


def test_synapse_files(data: Path) -> None:
    result = setup("--synapse", str(data), environ={"V6ALT_REGISTRATION_SECRET": "s3cret"})
    assert (result.code, result.out, result.err) == (0, encode(YGGDRASIL) + "\n", "")
    config = homeserver_yaml(data)
    name = encode(YGGDRASIL)
    assert config["server_name"] == name
    # The documented settings, unchanged but for the module's recovery limits
    # (docs/synapse.md: the defaults written out).
    documented = yaml.safe_load(
        Template(DOCS_SNIPPET.read_text()).substitute(
            server_name=name,
            mesh_address=str(YGGDRASIL),
            tls_certificate_path=str(data / "tls.crt"),
            tls_private_key_path=str(data / "tls.key"),
        )
    )
    module = documented["modules"][0]
    module["config"]["synapse"].update(recovery_probe_rate=300, recovery_probe_interval=2)
    assert config["modules"] == [module]
    for listener in documented.pop("listeners"):
        assert listener in config["listeners"]
    for key, value in documented.items():
        assert config[key] == value, key
    client = {"port": 8008, "bind_addresses": ["::"], "type": "http", "x_forwarded": True,
              "resources": [{"names": ["client"], "compress": False}]}  # fmt: skip
    assert client in config["listeners"] and len(config["listeners"]) == 2
    assert config["database"] == {
        "name": "sqlite3",
        "args": {"database": str(data / "homeserver.db")},
    }
    for key in ("log_config", "signing_key_path", "registration_shared_secret_path"):
        assert Path(config[key]).is_file(), key
    assert (data / "registration_shared_secret").read_text() == "s3cret\n"
    assert "level: INFO" in (data / "log.config").read_text()
    signing_key = (data / "signing.key").read_text()
    assert re.fullmatch(r"ed25519 a_[0-9a-f]{8} [A-Za-z0-9+/]{43}\n", signing_key)
    for path in [data, *data.rglob("*")]:
        assert (path.stat().st_uid, path.stat().st_gid) == (SYNAPSE_UID, SYNAPSE_UID), path
    for secret in ("tls.key", "signing.key", "registration_shared_secret"):
        assert stat.S_IMODE((data / secret).stat().st_mode) == 0o600, secret


def test_the_certificate_is_self_signed_for_the_name_for_years(data: Path) -> None:
    x509 = pytest.importorskip("cryptography.x509")
    setup("--synapse", str(data))
    certificate = x509.load_pem_x509_certificate((data / "tls.crt").read_bytes())
    assert certificate.issuer == certificate.subject
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert names.value.get_values_for_type(x509.DNSName) == [encode(YGGDRASIL)]
    years = certificate.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)
    assert years > datetime.timedelta(days=9 * 365)


def test_the_signing_key_is_one_synapse_reads(data: Path) -> None:
    signedjson = pytest.importorskip("signedjson.key")
    setup("--synapse", str(data))
    (key,) = signedjson.read_signing_keys((data / "signing.key").read_text().splitlines())
    assert key.alg == "ed25519" and key.version.startswith("a_")


def test_a_restart_keeps_the_files(data: Path) -> None:
    assert setup("--synapse", str(data)).code == 0
    before = {path: path.read_bytes() for path in data.rglob("*") if path.is_file()}
    (data / "homeserver.yaml").write_text(
        (data / "homeserver.yaml").read_text() + "# the operator's edit\n"
    )
    before[data / "homeserver.yaml"] = (data / "homeserver.yaml").read_bytes()
    result = setup("--synapse", str(data))
    assert (result.code, result.out) == (0, encode(YGGDRASIL) + "\n")
    assert {path: path.read_bytes() for path in data.rglob("*") if path.is_file()} == before


def test_a_changed_name_is_refused(data: Path, tmp_path: Path) -> None:
    assert setup("--synapse", str(data)).code == 0
    name_file = tmp_path / "name"
    result = setup(
        "--synapse", str(data), "--name-file", str(name_file),
        addresses=(OTHER_YGGDRASIL,), source=OTHER_YGGDRASIL,
    )  # fmt: skip
    assert result.code == 1 and result.out == ""
    assert result.err == (
        f"v6alt: docker-setup: {data / 'homeserver.yaml'} is for {encode(YGGDRASIL)!r}, but this "
        f"host is now {encode(OTHER_YGGDRASIL)} ({OTHER_YGGDRASIL}): a homeserver cannot change "
        "its name; use a new volume\n"
    )
    assert homeserver_yaml(data)["server_name"] == encode(YGGDRASIL)
    assert not name_file.exists()


def test_an_unwritable_data_directory_is_exit_1(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    result = setup("--synapse", str(tmp_path / "file" / "data"))
    assert result.code == 1 and result.out == ""
    assert result.err.startswith("v6alt: docker-setup: cannot write ")


def test_workers_postgres_and_never_dial_lifted(data: Path) -> None:
    environ = {
        "V6ALT_INBOUND_WORKER": "federation_inbound",
        "V6ALT_FEDERATION_SENDERS": "2",
        "POSTGRES_HOST": "postgres",
        "POSTGRES_PASSWORD": "pw",
        "REDIS_HOST": "redis",
        "V6ALT_UNSAFE_ALLOW": "3fff:6a1::/32",
    }
    result = setup("--range", "2000::/3", "--synapse", str(data),
                   addresses=(GLOBAL,), source=GLOBAL, environ=environ)  # fmt: skip
    assert result.code == 0, result.err
    config = homeserver_yaml(data)
    assert config["modules"][0]["config"]["ranges"]["unsafe_allow"] == ["3fff:6a1::/32"]
    assert config["database"]["name"] == "psycopg2"
    assert config["database"]["args"]["password"] == "pw"
    assert config["redis"] == {"enabled": True, "host": "redis", "port": 6379}
    assert config["federation_sender_instances"] == ["federation_sender1", "federation_sender2"]
    by_port = {listener["port"]: listener for listener in config["listeners"]}
    # The inbound worker has the address; the main process keeps TLS on loopback.
    assert by_port[8448]["bind_addresses"] == ["::1"] and by_port[8448]["tls"] is True
    assert by_port[9093]["resources"] == [{"names": ["replication"]}]
    inbound = yaml.safe_load((data / "workers" / "federation_inbound.yaml").read_text())
    assert inbound["worker_listeners"][0]["bind_addresses"] == [str(GLOBAL)]
    assert inbound["worker_listeners"][0]["port"] == 8448
    for sender in ("federation_sender1", "federation_sender2"):
        worker = yaml.safe_load((data / "workers" / f"{sender}.yaml").read_text())
        assert worker["worker_name"] == sender and worker["worker_listeners"] == []


def test_a_bad_sender_count_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match="V6ALT_FEDERATION_SENDERS='two'"):
        write_synapse(tmp_path, encode(YGGDRASIL), YGGDRASIL,
                      {"V6ALT_FEDERATION_SENDERS": "two"}, owner=None)  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_prosody_certificate_made_once(tmp_path: Path) -> None:
    x509 = pytest.importorskip("cryptography.x509")
    certs = tmp_path / "prosody" / "v6alt"
    name = encode(YGGDRASIL)
    assert setup("--prosody-certificates", str(certs)).code == 0
    certificate = x509.load_pem_x509_certificate((certs / f"{name}.crt").read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert names.value.get_values_for_type(x509.DNSName) == [name]
    assert stat.S_IMODE((certs / f"{name}.key").stat().st_mode) == 0o600
    made = {path.name: path.read_bytes() for path in certs.iterdir()}
    assert sorted(made) == [f"{name}.crt", f"{name}.key"]
    # A restart keeps them; a name of its own gets its own pair.
    assert setup("--prosody-certificates", str(certs)).code == 0
    assert {path.name: path.read_bytes() for path in certs.iterdir()} == made
    other = encode(OTHER_YGGDRASIL)
    result = setup(
        "--prosody-certificates", str(certs), addresses=(OTHER_YGGDRASIL,), source=OTHER_YGGDRASIL
    )
    assert (result.code, result.out) == (0, other + "\n")
    assert (certs / f"{other}.crt").is_file() and (certs / f"{other}.key").is_file()
