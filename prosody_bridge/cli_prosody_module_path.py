"""``v6alt prosody-module-path``: where the Prosody module (mod_v6alt.lua) is installed.

The Lua module ships as package data of ``v6alt.prosody_bridge``; Prosody
finds it when this directory is listed in ``plugin_paths``. Prosody runs as
its own user, so a package inside a private venv (under /root, or tox's
0700 work dir) is out of its reach: ``--install DIR`` copies the module to a
directory Prosody can read, and the command warns when the shipped one is not.
"""

from __future__ import annotations

import argparse
import shutil
import stat
from pathlib import Path
from typing import Final

from v6alt.cli_common import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Streams,
    SubParsers,
    add_command,
    dump_json,
)
from v6alt.errors import excerpt

__all__ = ["MODULE_FILE", "install_module", "module_directory", "register", "unreachable_part"]

MODULE_FILE: Final = "mod_v6alt.lua"

_EPILOG: Final = """\
Use it in prosody.cfg.lua:
  plugin_paths = { "<the printed directory>" }
  modules_enabled = { ...; "v6alt" }

exit status: 0 ok; 1 the module file is missing from the installation, or
  copying failed; 2 bad usage, or a DIR that is not a directory.
"""


def module_directory() -> Path:
    """The directory holding ``mod_v6alt.lua`` (for Prosody's ``plugin_paths``)."""
    return Path(__file__).resolve().parent / "lua"


def unreachable_part(directory: Path) -> Path | None:
    """The first directory on the way to ``directory`` that other users
    (Prosody's own user among them) cannot enter, or None."""
    for part in [*reversed(directory.parents), directory]:
        try:
            mode = part.stat().st_mode
        except OSError:
            return part
        if not mode & stat.S_IXOTH:
            return part
    return None


def install_target_problem(text: str) -> str | None:
    """Why ``--install TEXT`` cannot be a directory to install into, or None."""
    if not text.strip():
        return "an empty path; give the directory to install into"
    path = Path(text)
    for part in [path, *path.parents]:
        try:
            if part.is_dir():
                return None
        except OSError as error:
            return f"cannot examine {part}: {error.strerror or error}"
        if part.exists() or part.is_symlink():
            which = "is" if part == path else f"lies under {part}, which is"
            return (
                f"{which} a file, not a directory"
                if part.is_file()
                else (f"{which} not a directory")
            )
    return None


def install_module(target: Path) -> Path:
    """Copy mod_v6alt.lua and the libraries it loads into ``target`` (created
    world-readable when it does not exist; an existing directory keeps its
    mode); return it."""
    if not target.is_dir():
        target.mkdir(parents=True)
        target.chmod(0o755)
    for source in sorted(module_directory().glob("*.lua")):
        destination = target / source.name
        shutil.copyfile(source, destination)
        destination.chmod(0o644)
    return target


def _run(args: argparse.Namespace, io: Streams) -> int:
    directory = module_directory()
    present = (directory / MODULE_FILE).is_file()
    if present and args.install is not None:
        problem = install_target_problem(args.install)
        if problem is not None:
            io.error("prosody-module-path", f"--install {excerpt(args.install, 256)}: {problem}")
            return EXIT_USAGE
        try:
            directory = install_module(Path(args.install).resolve())
        except OSError as error:
            reason = error.strerror or str(error)
            io.error("prosody-module-path", f"cannot install into {args.install}: {reason}")
            return EXIT_CHECK_FAILED
    blocked = unreachable_part(directory) if present else None
    if blocked is not None:
        io.stderr.write(
            f"v6alt: warning: Prosody runs as its own user and cannot read {directory}: "
            f"{blocked} is closed to other users; use --install DIR "
            "(e.g. /usr/local/lib/v6alt/prosody-modules)\n"
        )
    if args.json:
        dump_json(
            {
                "path": str(directory),
                "module": MODULE_FILE,
                "present": present,
                "readable_by_prosody": present and blocked is None,
            },
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
    parser.add_argument(
        "--install",
        metavar="DIR",
        help="copy mod_v6alt.lua and its libraries (*.lib.lua) into DIR (created,"
        " world-readable) and print DIR",
    )
