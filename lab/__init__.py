"""A mesh on one machine: N hosts in network namespaces, each a real Yggdrasil node.

See :class:`Lab` for the Python API and ``docs/lab.md`` for the command line
(``v6alt lab up | status | down``). The rest of the lab, which the tests and
the benchmarks use too: :mod:`.netns` (the one namespace harness, with
:class:`~.netns.FlatNet` for hosts that need only addresses),
:mod:`.certificates`, :mod:`.matrix` (the one homeserver launcher, the Matrix
half of the demo), :mod:`.xmpp` (the XMPP half), :mod:`.demo`. The product
packages never import the lab.
"""

from .errors import (
    LabCommandError,
    LabConflictError,
    LabEnvironmentError,
    LabError,
    LabNotUpError,
    LabStateError,
    LabTimeoutError,
    LabUsageError,
)
from .host import LabHost
from .lab import DEFAULT_RUN_DIR, DEFAULT_TIMEOUT, Lab
from .status import HostStatus, LabStatus
from .teardown import TeardownReport
from .topology import DEFAULT_PREFIX, MAX_NODES, YGGDRASIL_PORT, Topology

__all__ = [
    "DEFAULT_PREFIX",
    "DEFAULT_RUN_DIR",
    "DEFAULT_TIMEOUT",
    "MAX_NODES",
    "YGGDRASIL_PORT",
    "HostStatus",
    "Lab",
    "LabCommandError",
    "LabConflictError",
    "LabEnvironmentError",
    "LabError",
    "LabHost",
    "LabNotUpError",
    "LabStateError",
    "LabStatus",
    "LabTimeoutError",
    "LabUsageError",
    "TeardownReport",
    "Topology",
]
