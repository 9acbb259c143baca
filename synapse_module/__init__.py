"""Synapse module: federation with .v6.alt server names.

Load it from homeserver.yaml::

    modules:
      - module: v6alt.synapse_module.V6AltFederation
        config: {}

The class is imported on first access, so the adapters (resolver, inbound
checks) can be imported where Synapse and pyOpenSSL are not installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .module import V6AltFederation

__all__ = ["V6AltFederation"]


def __getattr__(name: str) -> Any:
    if name == "V6AltFederation":
        from .module import V6AltFederation

        return V6AltFederation
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
