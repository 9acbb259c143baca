"""The contract between the module and the installed Synapse: every internal it touches.

Runs in every synapse-* tox env, so a Synapse release that renames a method,
changes a signature, moves the TLS verifier or a column of ``destinations``
fails here, not in a user's federation. The start-up checks that refuse a
Synapse without them are tested with the real Synapse classes.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("synapse.app.homeserver", reason="matrix-synapse is not installed")

import synapse
from synapse.config._base import ConfigError
from synapse.http.federation.srv_resolver import SrvResolver

from v6alt.config import parse_config
from v6alt.synapse_module import V6AltFederation, synapse_contract
from v6alt.synapse_module.synapse_contract import (
    DESTINATIONS_COLUMNS,
    INSTANCE_ATTRIBUTES,
    METHODS,
    Method,
    instance_attribute_problem,
    internals_problems,
    method_problem,
    tls_verifier_problem,
    version_tested,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "synapse.md"


@pytest.mark.parametrize("method", METHODS, ids=[m.name for m in METHODS])
def test_every_touched_method_exists_with_the_expected_parameters(method: Method) -> None:
    assert method_problem(method) is None


@pytest.mark.parametrize(
    ("module", "cls", "attribute"),
    [(m, c, a) for m, c, a, _ in INSTANCE_ATTRIBUTES],
    ids=[f"{c}.{a}" for _, c, a, _ in INSTANCE_ATTRIBUTES],
)
def test_every_read_instance_attribute_is_set_by_its_class(
    module: str, cls: str, attribute: str
) -> None:
    assert instance_attribute_problem(module, cls, attribute) is None


def test_a_lost_instance_attribute_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from synapse.federation.sender.per_destination_queue import PerDestinationQueue

    def __init__(self: Any) -> None:  # sets no transmission_loop_running
        self.running = False

    monkeypatch.setattr(PerDestinationQueue, "__init__", __init__)
    assert internals_problems(None) == [
        "synapse.federation.sender.per_destination_queue.PerDestinationQueue no longer "
        "sets transmission_loop_running"
    ]


def _tls_config(verify: bool) -> Any:
    # The attributes FederationPolicyForHTTPS reads from HomeServerConfig.tls.
    return SimpleNamespace(
        tls=SimpleNamespace(
            federation_ca_trust_root=None,
            federation_client_minimum_tls_version="1",
            federation_verify_certificates=verify,
            federation_certificate_verification_whitelist=[],
        )
    )


@pytest.mark.parametrize("verify", [True, False])
def test_synapse_sets_its_tls_verifier_on_the_protocol(verify: bool) -> None:
    assert tls_verifier_problem(_tls_config(verify)) is None


def test_the_installed_synapse_is_in_the_tested_range() -> None:
    """The newest-release env (synapse-latest) fails here once Synapse moves past
    the tested range: time to test it and widen TESTED_VERSIONS."""
    assert version_tested(synapse.__version__), synapse.__version__


def test_destinations_table_has_the_columns_the_recovery_reads(pair: Any) -> None:
    a, _ = pair
    with sqlite3.connect(f"file:{a.files.tree / 'homeserver.db'}?mode=ro", uri=True) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(destinations)")}
    assert set(DESTINATIONS_COLUMNS) <= columns, columns


def test_a_missing_method_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(SrvResolver, "resolve_service")
    problems = internals_problems(None)
    assert problems == [
        "synapse.http.federation.srv_resolver.SrvResolver.resolve_service is missing "
        "(type object 'SrvResolver' has no attribute 'resolve_service')"
    ]


def test_a_changed_signature_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    async def resolve_service(self: Any, service_name: bytes, timeout: float) -> list[Any]:
        return []

    monkeypatch.setattr(SrvResolver, "resolve_service", resolve_service)
    assert internals_problems(None) == [
        "synapse.http.federation.srv_resolver.SrvResolver.resolve_service takes "
        "(service_name, timeout), the module expects (service_name)"
    ]


def test_a_lost_tls_verifier_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from synapse.crypto import context_factory

    def no_verifier(self: Any, tls_protocol: Any) -> Any:
        return None

    monkeypatch.setattr(
        context_factory.SSLClientConnectionCreator, "clientConnectionForTLS", no_verifier
    )
    problem = tls_verifier_problem(_tls_config(True))
    assert problem is not None and "_synapse_tls_verifier" in problem


def test_the_module_refuses_to_start_without_its_internals(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delattr(SrvResolver, "resolve_service")
    api = SimpleNamespace()  # no _hs: as if Synapse renamed it
    with caplog.at_level(logging.ERROR, "v6alt.synapse_module"), pytest.raises(ConfigError) as e:
        V6AltFederation(parse_config({}), api)
    message = str(e.value)
    assert "lacks internals the module needs" in message
    assert "ModuleApi._hs is missing" in message
    assert "SrvResolver.resolve_service is missing" in message
    assert "tested on Synapse 1.100 to 1.163" in message
    assert e.value.path == ["modules"]
    assert "v6alt: cannot start on Synapse" in caplog.text


def test_an_untested_synapse_version_is_warned_about(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(synapse, "__version__", "1.999.0")
    with caplog.at_level(logging.WARNING, "v6alt.synapse_module"), pytest.raises(ConfigError):
        V6AltFederation(parse_config({}), SimpleNamespace())
    assert (
        "v6alt: Synapse 1.999.0 is outside the versions this module is tested on "
        "(1.100 to 1.163)" in caplog.text
    )


@pytest.mark.parametrize(
    ("version", "tested"),
    [("1.100.0", True), ("1.163.2", True), ("1.99.0", False), ("1.164.0", False), ("x", False)],
)
def test_version_range(version: str, tested: bool) -> None:
    assert version_tested(version) is tested


def test_docs_list_every_touch_point() -> None:
    text = DOCS.read_text()
    missing = [m.qualname for m in METHODS if f"`{m.qualname}`" not in text]
    missing += [a for a in synapse_contract.HOMESERVER_ATTRIBUTES if f"`{a}`" not in text]
    missing += [f"{c}.{a}" for _, c, a, _ in INSTANCE_ATTRIBUTES if f"`{c}.{a}`" not in text]
    for name in (
        "`ModuleApi._hs`",
        f"`{synapse_contract.TLS_VERIFIER_ATTRIBUTE}`",
        "`destinations`",
    ):
        if name not in text:
            missing.append(name)
    assert not missing, f"docs/synapse.md does not list: {missing}"


def test_a_missing_method_is_a_config_error_while_the_config_is_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Synapse prints an error from parse_config as one clean configuration error,
    before the homeserver exists; the methods need no homeserver to be checked."""
    monkeypatch.delattr(SrvResolver, "resolve_service")
    with pytest.raises(ConfigError) as e:
        V6AltFederation.parse_config({})
    assert "SrvResolver.resolve_service is missing" in str(e.value)
    assert e.value.path == ["modules"]
