"""``v6alt prosody-module-path``: where the Prosody module (mod_v6alt.lua) is installed.

The Lua module ships as package data of ``v6alt.prosody_bridge``; Prosody
finds it when this directory is listed in ``plugin_paths``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Final

from v6alt.cli_common import EXIT_CHECK_FAILED, EXIT_OK, Streams, SubParsers, add_command, dump_json

__all__ = ["MODULE_FILE", "module_directory", "register"]

MODULE_FILE: Final = "mod_v6alt.lua"

_EPILOG: Final = """\
Use it in prosody.cfg.lua:
  plugin_paths = { "<the printed directory>" }
  modules_enabled = { ...; "v6alt" }

exit status: 0 ok; 1 the module file is missing from the installation; 2 bad usage.
"""


def module_directory() -> Path:
    """The directory holding ``mod_v6alt.lua`` (for Prosody's ``plugin_paths``)."""
    return Path(__file__).resolve().parent / "lua"


def _run(args: argparse.Namespace, io: Streams) -> int:
    directory = module_directory()
    present = (directory / MODULE_FILE).is_file()
    if args.json:
        dump_json(
            {"path": str(directory), "module": MODULE_FILE, "present": present},
            io.stdout,
        )
    else:
        io.stdout.write(f"{directory}\n")
    if not present:
        io.error("prosody-module-path", f"{MODULE_FILE} is missing from {directory}")
        return EXIT_CHECK_FAILED
    return EXIT_OK


def register(subparsers: SubParsers) -> None:
    """Add ``prosody-module-path`` to the ``v6alt`` command."""
    parser = add_command(
        subparsers,
        "prosody-module-path",
        summary="print the directory to add to Prosody's plugin_paths",
        description=(
            "Print the directory that holds mod_v6alt.lua, the Prosody module of\n"
            "v6alt, for the plugin_paths option of prosody.cfg.lua."
        ),
        handler=_run,
        epilog=_EPILOG,
    )
    parser.add_argument("--json", action="store_true", help="print path and status as JSON")
