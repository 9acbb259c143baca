#!/opt/v6alt/bin/python
"""Start the stack's Yggdrasil node (the v6alt-yggdrasil image's entrypoint).

The node's keys live in /etc/yggdrasil/yggdrasil.conf, a volume: generated on
the first start (`yggdrasil -genconf -json`), kept afterwards, so the node's
address, and with it the server name, survives restarts and upgrades.
From the environment, applied on every start:

- YGGDRASIL_PEERS: space-separated peer URIs (tls://host:port, tcp://...);
- YGGDRASIL_LISTEN: space-separated listen URIs (default tls://[::]:9001);
- YGGDRASIL_MULTICAST: "on" to find peers on the local link (default off).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CONFIG = Path("/etc/yggdrasil/yggdrasil.conf")
RUNTIME = Path("/run/yggdrasil/yggdrasil.conf")


def main() -> int:
    if not CONFIG.exists():
        CONFIG.parent.mkdir(parents=True, exist_ok=True)
        generated = subprocess.run(
            ["yggdrasil", "-genconf", "-json"], capture_output=True, text=True, check=True
        ).stdout
        CONFIG.write_text(generated)
        CONFIG.chmod(0o600)
    config = json.loads(CONFIG.read_text())
    config["Peers"] = os.environ.get("YGGDRASIL_PEERS", "").split()
    config["Listen"] = os.environ.get("YGGDRASIL_LISTEN", "tls://[::]:9001").split()
    if os.environ.get("YGGDRASIL_MULTICAST", "off") != "on":
        config["MulticastInterfaces"] = []
    config["AdminListen"] = "unix:///run/yggdrasil/yggdrasil.sock"
    config["IfName"] = "ygg0"
    RUNTIME.parent.mkdir(parents=True, exist_ok=True)
    RUNTIME.write_text(json.dumps(config))
    RUNTIME.chmod(0o600)
    sys.stdout.flush()
    os.execvp("yggdrasil", ["yggdrasil", "-useconffile", str(RUNTIME), "-logto", "stdout"])


if __name__ == "__main__":
    sys.exit(main())
