"""Settings that are valid but weaken trust: what ``v6alt config check`` warns about.

Pure: a function of the config, one sentence per finding, naming the key path.
"""

from __future__ import annotations

from ipaddress import IPv6Network
from typing import Final

from .config import Config
from .ipranges import CJDNS, GLOBAL_UNICAST, KEY_ADDRESSED, YGGDRASIL

__all__ = ["config_warnings"]

#: The mesh ranges, where the route to an address passes a node holding its key (in
#: a routed 300::/8 subnet: the node that advertises it), so a certificate adds little.
_MESHES: Final = (YGGDRASIL, CJDNS)


def _inside(network: IPv6Network, ranges: tuple[IPv6Network, ...]) -> bool:
    return any(network.subnet_of(mesh) for mesh in ranges)


def config_warnings(config: Config) -> list[str]:
    """One line per setting that lets a peer go unchecked outside the meshes
    (200::/7, fc00::/8; for pinning: outside the key-derived addresses,
    200::/8 and fc00::/8, so 300::/8 subnets count as outside)."""
    warnings = []
    for i, secure in enumerate(config.secure_ranges):
        where = f"secure_ranges[{i}]"
        network = secure.network
        if secure.trust_any_certificate and not _inside(network, _MESHES):
            warnings.append(
                f"{where}.trust_any_certificate: true covers {network}, outside 200::/7 and "
                "fc00::/8: any certificate is accepted from an address there, also for DNS "
                "names that resolve into it; whoever answers at such an address (a hijacked "
                "route, a spoofed AAAA record) is believed"
            )
        if secure.tls == "off" and network.overlaps(GLOBAL_UNICAST):
            warnings.append(
                f"{where}.tls: off covers public addresses ({network} overlaps {GLOBAL_UNICAST}): "
                "federation with v6.alt names there is unencrypted and authenticated by the "
                "address alone"
            )
        if secure.pinning in ("off", "warn") and not _inside(network, KEY_ADDRESSED):
            warnings.append(
                f"{where}.pinning: {secure.pinning} covers {network}, outside 200::/8 and "
                "fc00::/8 (where addresses are keys): a changed key of a v6.alt peer there "
                "is not refused"
            )
    if config.pinning.default != "enforce":
        warnings.append(
            f"pinning.default: {config.pinning.default}: a changed key of a v6.alt peer outside "
            "200::/8 and fc00::/8 (in 300::/8 subnets too) is not refused"
        )
    return warnings
