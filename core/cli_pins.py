"""``v6alt pins list|show NAME|forget NAME``: the pin file, for an admin, offline.

The file is the one the server uses (``--file``), or the one a config file
names (``--config``: its ``pinning.file``). Nothing else is read: the
command works while the server runs (a running server sees ``forget`` at its
next check) and while it is stopped.
"""

from __future__ import annotations

import argparse
import datetime
from typing import TYPE_CHECKING, Final

from .cli_common import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Streams,
    SubParsers,
    add_command,
    dump_json,
)

if TYPE_CHECKING:
    from .pins import Pin

__all__ = ["register_pins"]

_EPILOG: Final = """\
the pin file: --file PATH, or --config FILE (a v6alt config whose
  pinning.file names it). Synapse keeps it, unless pinning.file says
  otherwise, as v6alt-pins.json beside its media store; the sidecar in
  /var/lib/v6alt/xmpp-pins.json.

exit status: 0 ok; 1 NAME has no pin (show, forget); 2 usage error, or the
  file cannot be read or written (one line on stderr).
"""


def register_pins(subparsers: SubParsers) -> None:
    parser = add_command(
        subparsers,
        "pins",
        summary="list, show or forget pinned keys of v6.alt peers",
        description=(
            "The keys remembered on first contact with v6.alt peers outside the\n"
            "crypto-addressed meshes (trust on first use; docs/security.md)."
        ),
        handler=None,
        epilog=_EPILOG,
    )
    actions = parser.add_subparsers(title="commands", dest="pins_command", metavar="COMMAND")
    actions.required = True
    for name, summary, handler, takes_name in (
        ("list", "every pinned peer, one line each", _run_list, False),
        ("show", "one peer's pin in full", _run_show, True),
        ("forget", "remove a peer's pin: its next key is pinned anew", _run_forget, True),
    ):
        sub = add_command(
            actions, name, summary=summary, description=summary, handler=handler, epilog=_EPILOG
        )
        if takes_name:
            sub.add_argument("name", metavar="NAME", help="the peer's name as pinned")
        where = sub.add_mutually_exclusive_group(required=True)
        where.add_argument("--file", metavar="PATH", help="the pin file")
        where.add_argument("--config", metavar="FILE", help="a v6alt config naming pinning.file")
        sub.add_argument("--json", action="store_true", help="print the result as JSON")


class _NoFile(Exception):
    pass


def _store_path(args: argparse.Namespace) -> str:
    if args.file:
        return str(args.file)
    from .config import load_config

    config = load_config(args.config)
    if config.pinning.file is None:
        raise _NoFile(
            f"{args.config}: pinning.file is not set (the server uses its default place); "
            "pass --file"
        )
    return config.pinning.file


def _when(ms: int) -> str:
    if not ms:
        return "-"
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _open(args: argparse.Namespace, streams: Streams) -> tuple[str, object] | None:
    from .config import ConfigError
    from .pin_store import PinStore
    from .pins import PinFileError

    try:
        path = _store_path(args)
        store = PinStore(path)
        store.all()  # read once: a broken file is reported here
    except (ConfigError, PinFileError, _NoFile) as e:
        streams.error("pins", str(e))
        return None
    return path, store


def _run_list(args: argparse.Namespace, streams: Streams) -> int:
    from .pin_store import PinStore

    opened = _open(args, streams)
    if opened is None:
        return EXIT_USAGE
    path, store = opened
    assert isinstance(store, PinStore)
    pins = store.all()
    if args.json:
        dump_json({"file": path, "pins": [pins[n].to_dict() for n in sorted(pins)]}, streams.stdout)
        return EXIT_OK
    if not pins:
        streams.stdout.write(f"{path}: no pins\n")
        return EXIT_OK
    for name in sorted(pins):
        pin = pins[name]
        tls = pin.spki_sha256[:16] + "..." if pin.spki_sha256 else "-"
        keys = ",".join(sorted(pin.verify_keys)) or "-"
        streams.stdout.write(
            f"{name}\t{pin.protocol}\t[{pin.address}]\ttls sha256 {tls}\tkeys {keys}"
            f"\tsince {_when(pin.first_seen_ms)}\n"
        )
    return EXIT_OK


def _show_lines(pin: Pin) -> list[str]:
    lines = [
        f"name: {pin.name}",
        f"protocol: {pin.protocol}",
        f"address: {pin.address}",
        f"tls key (sha256 of SubjectPublicKeyInfo): {pin.spki_sha256 or '(none pinned)'}",
    ]
    if pin.protocol == "matrix":
        lines.append("signing keys:" if pin.verify_keys else "signing keys: (none pinned)")
        lines.extend(f"  {k}: {v}" for k, v in sorted(pin.verify_keys.items()))
    lines += [f"first seen: {_when(pin.first_seen_ms)}", f"updated: {_when(pin.updated_ms)}"]
    if pin.history:
        lines.append("history:")
        for note in pin.history:
            ms, _, text = note.partition(" ")
            lines.append(f"  {_when(int(ms)) if ms.isdigit() else ms} {text}")
    return lines


def _run_show(args: argparse.Namespace, streams: Streams) -> int:
    from .pin_store import PinStore

    opened = _open(args, streams)
    if opened is None:
        return EXIT_USAGE
    path, store = opened
    assert isinstance(store, PinStore)
    name = str(args.name).lower()
    pin = store.get(name)
    if pin is None:
        streams.error("pins", f"{name}: no pin in {path}")
        if args.json:
            dump_json({"file": path, "name": name, "pin": None}, streams.stdout)
        return EXIT_CHECK_FAILED
    if args.json:
        dump_json({"file": path, "name": name, "pin": pin.to_dict()}, streams.stdout)
    else:
        streams.stdout.writelines(f"{line}\n" for line in _show_lines(pin))
    return EXIT_OK


def _run_forget(args: argparse.Namespace, streams: Streams) -> int:
    from .pin_store import PinStore
    from .pins import PinFileError

    opened = _open(args, streams)
    if opened is None:
        return EXIT_USAGE
    path, store = opened
    assert isinstance(store, PinStore)
    name = str(args.name).lower()
    try:
        removed = store.forget(name)
    except PinFileError as e:
        streams.error("pins", str(e))
        return EXIT_USAGE
    if args.json:
        pin = removed.to_dict() if removed is not None else None
        dump_json({"file": path, "name": name, "forgotten": pin}, streams.stdout)
    if removed is None:
        streams.error("pins", f"{name}: no pin in {path}")
        return EXIT_CHECK_FAILED
    if not args.json:
        streams.stdout.write(
            f"{name}: pin removed from {path}; the next key {name} presents will be pinned\n"
        )
    return EXIT_OK
