"""v6alt: every IPv6 address has a host name under ``.v6.alt``.

The public API of the pure core: the codec (:func:`encode`, :func:`decode`),
server-name parsing (:mod:`v6alt.names`), the dial/trust policy
(:mod:`v6alt.policy`) and the shared config schema (:mod:`v6alt.config`).
"""

from .codec import (
    SUFFIX,
    decode,
    decode_label,
    encode,
    encode_label,
    from_reverse_pointer,
    is_canonical_label,
    to_address,
    to_reverse_pointer,
)
from .config import Config, ConfigError, load_config, parse_config
from .errors import V6AltError, V6AltNameError
from .names import HostKind, ServerName, parse_host, parse_matrix_server_name, parse_xmpp_domain
from .policy import DialDecision, Policy, Trust

__version__ = "0.1.0"

__all__ = [
    "SUFFIX",
    "Config",
    "ConfigError",
    "DialDecision",
    "HostKind",
    "Policy",
    "ServerName",
    "Trust",
    "V6AltError",
    "V6AltNameError",
    "__version__",
    "decode",
    "decode_label",
    "encode",
    "encode_label",
    "from_reverse_pointer",
    "is_canonical_label",
    "load_config",
    "parse_config",
    "parse_host",
    "parse_matrix_server_name",
    "parse_xmpp_domain",
    "to_address",
    "to_reverse_pointer",
]
