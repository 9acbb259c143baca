#!/usr/local/bin/python
"""The stand-in image's entrypoint, with the official /start.py's interface.

Modes (first argument, default ``run``):
- ``generate``: SYNAPSE_SERVER_NAME and SYNAPSE_REPORT_STATS required; writes
  homeserver.yaml, a signing key and a log config into SYNAPSE_CONFIG_DIR
  (default /data) with Synapse's own --generate-config.
- ``run``: runs ``python -m $SYNAPSE_WORKER`` (default synapse.app.homeserver)
  with the remaining arguments, adding ``--config-path $SYNAPSE_CONFIG_PATH``
  (default /data/homeserver.yaml) when none is given.
As root it drops to UID:GID (default 991:991) first; the official image uses
gosu for that, this one setpriv.
"""

from __future__ import annotations

import os
import subprocess
import sys


def fail(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
    sys.exit(2)


def drop(ownership: str | None, argv: list[str]) -> list[str]:
    if ownership is None:
        return argv
    uid, gid = ownership.split(":")
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *argv]


def main(argv: list[str], env: dict[str, str]) -> None:
    mode = argv[1] if len(argv) > 1 else "run"
    ownership = None
    if "UID" in env:
        ownership = f"{int(env['UID'])}:{int(env.get('GID', '991'))}"
    elif os.getuid() == 0:
        ownership = "991:991"
    config_dir = env.get("SYNAPSE_CONFIG_DIR", "/data")
    config_path = env.get("SYNAPSE_CONFIG_PATH", config_dir + "/homeserver.yaml")
    if mode == "generate":
        for name in ("SYNAPSE_SERVER_NAME", "SYNAPSE_REPORT_STATS"):
            if name not in env:
                fail(f"Environment variable '{name}' is mandatory in `generate` mode.")
        data_dir = env.get("SYNAPSE_DATA_DIR", "/data")
        command = [
            sys.executable, "-m", "synapse.app.homeserver",
            "--server-name", env["SYNAPSE_SERVER_NAME"],
            "--report-stats", env["SYNAPSE_REPORT_STATS"],
            "--config-path", config_path, "--config-directory", config_dir,
            "--data-directory", data_dir, "--generate-config", "--open-private-ports",
        ]  # fmt: skip
        if ownership is not None:
            subprocess.run(["chown", ownership, data_dir], check=True)
        subprocess.run(drop(ownership, command), check=True)
        return
    if mode != "run":
        fail(f"Unknown execution mode '{mode}'")
    args = argv[2:]
    if "-m" not in args:
        args = ["-m", env.get("SYNAPSE_WORKER", "synapse.app.homeserver"), *args]
    if not any(a.startswith(("--config-path", "-c")) for a in args):
        if not os.path.exists(config_path):
            fail(f"Config file '{config_path}' does not exist.")
        args += ["--config-path", config_path]
    command = drop(ownership, [sys.executable, *args])
    print("Starting synapse with args " + " ".join(args), flush=True)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv, dict(os.environ))
