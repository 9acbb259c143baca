"""The Matrix half of the lab: Synapse homeservers with the v6alt module, or stock.

- :mod:`.homeserver`: the one homeserver launcher (:class:`~.homeserver.Homeserver`),
  in a network namespace or on loopback, with the module or stock;
- :mod:`.mesh`: homeservers on the Yggdrasil lab's hosts, recorded in its state file;
- :mod:`.stock`: stock Synapse and unbound on lab hosts (the benchmarks' baseline);
- :mod:`.files`, :mod:`.stock_files`: the files they run on;
- :mod:`.client`: a small client-server API client (registration, rooms, messages);
- :mod:`.loopback`: the Matrix half of ``v6alt demo`` without root.

Everything but :func:`synapse_installed` needs matrix-synapse (its helpers)
in this interpreter.
"""

from __future__ import annotations

from importlib.util import find_spec

__all__ = ["synapse_installed"]


def synapse_installed() -> bool:
    """matrix-synapse is importable in this interpreter."""
    return find_spec("synapse") is not None
