"""Where the module attaches to Synapse, and how it attaches.

Synapse has no module hook for destination lookup, TLS or the X-Matrix
origin, and modules are loaded after the federation client exists. So the
module wraps a few methods whose names and signatures have been stable
from Synapse 1.100 to 1.163, at class level (every instance, including
those created later, goes through them):

- ``FederationPolicyForHTTPS.get_options(host)``: TLS and refusals;
- ``WellKnownResolver.get_well_known(server_name)``: no .well-known fetch
  for a v6.alt name;
- ``SrvResolver.resolve_service(service_name)``: no SRV query for a
  v6.alt name;
- ``Authenticator.authenticate_request(request, content)``: the inbound
  X-Matrix origin checks;
- ``PerspectivesKeyFetcher.get_keys(server_name, key_ids, min_valid_ts)``:
  no notary is asked about a v6.alt server (its keys come from it directly).

Wrapping is idempotent: the original is kept on the class and a second
install replaces the wrapper instead of stacking one on another.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("v6alt.synapse_module")

_ORIGINALS = "_v6alt_originals"


def wrap_method(cls: type, name: str, make_wrapper: Callable[[Any], Any]) -> None:
    """Replace ``cls.name`` by ``make_wrapper(original)``, keeping the original once."""
    originals: dict[str, Any] = cls.__dict__.get(_ORIGINALS) or {}
    if name not in originals:
        original = getattr(cls, name, None)  # may be inherited
        if not callable(original):
            raise RuntimeError(f"v6alt: Synapse's {cls.__qualname__} has no method {name}")
        originals[name] = original
        setattr(cls, _ORIGINALS, originals)
    setattr(cls, name, make_wrapper(originals[name]))
    logger.debug("v6alt: wrapped %s.%s.%s", cls.__module__, cls.__qualname__, name)


def unwrap_method(cls: type, name: str) -> None:
    """Put the original method back (used by tests that load the module twice)."""
    originals: dict[str, Any] = cls.__dict__.get(_ORIGINALS) or {}
    if name in originals:
        setattr(cls, name, originals.pop(name))


def install_federation_seams(
    options_for: Callable[[bytes, Callable[[], Any]], Any],
    skip_lookup: Callable[[bytes], bool],
) -> None:
    """Wrap TLS policy, .well-known and SRV for outbound federation."""
    from synapse.crypto.context_factory import FederationPolicyForHTTPS
    from synapse.http.federation.srv_resolver import SrvResolver
    from synapse.http.federation.well_known_resolver import (
        WellKnownLookupResult,
        WellKnownResolver,
    )

    def tls_wrapper(original: Any) -> Any:
        def get_options(self: Any, host: bytes) -> Any:
            return options_for(host, lambda: original(self, host))

        return get_options

    def well_known_wrapper(original: Any) -> Any:
        async def get_well_known(self: Any, server_name: bytes) -> Any:
            if skip_lookup(server_name):
                return WellKnownLookupResult(delegated_server=None)
            return await original(self, server_name)

        return get_well_known

    def srv_wrapper(original: Any) -> Any:
        async def resolve_service(self: Any, service_name: bytes) -> Any:
            # service_name is b"_matrix-fed._tcp.<host>" or b"_matrix._tcp.<host>"
            parts = service_name.split(b".", 2)
            if len(parts) == 3 and skip_lookup(parts[2]):
                return []
            return await original(self, service_name)

        return resolve_service

    wrap_method(FederationPolicyForHTTPS, "get_options", tls_wrapper)
    wrap_method(WellKnownResolver, "get_well_known", well_known_wrapper)
    wrap_method(SrvResolver, "resolve_service", srv_wrapper)


def install_inbound_seam(check_origin: Callable[..., None]) -> None:
    """Wrap the X-Matrix authenticator: ``check_origin(origin, request, authenticated=)``
    raises to refuse.

    It runs on every origin the Authorization headers claim before Synapse
    verifies signatures (so no key fetch is made for a refused name) and on
    the origin Synapse authenticated.
    """
    from synapse.federation.transport.server._base import Authenticator

    from .inbound import claimed_origins

    def wrapper(original: Any) -> Any:
        async def authenticate_request(self: Any, request: Any, content: Any) -> str:
            for claimed in claimed_origins(request):
                check_origin(claimed, request, authenticated=False)
            origin: str = await original(self, request, content)
            check_origin(origin, request, authenticated=True)
            return origin

        return authenticate_request

    wrap_method(Authenticator, "authenticate_request", wrapper)


def install_key_seam(skip_notary: Callable[[str], bool]) -> None:
    """Never ask a notary (``trusted_key_servers``) about a server ``skip_notary`` names."""
    from synapse.crypto.keyring import PerspectivesKeyFetcher

    def wrapper(original: Any) -> Any:
        async def get_keys(
            self: Any, server_name: str, key_ids: list[str], minimum_valid_until_ts: int
        ) -> Any:
            if skip_notary(server_name):
                return {}
            return await original(self, server_name, key_ids, minimum_valid_until_ts)

        return get_keys

    wrap_method(PerspectivesKeyFetcher, "get_keys", wrapper)
