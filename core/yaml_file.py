"""Reading a YAML file within bounds: one clear error, never a traceback.

Config files (the sidecar's, ``check --config``) and the homeserver.yaml
that ``v6alt check local`` reads come from users and sometimes from
anywhere; PyYAML alone turns a deeply nested file into a RecursionError, an
alias bomb into exponential work, a huge file into as much memory. Here a
file is read only up to :data:`MAX_YAML_BYTES`, nesting is bounded by
:data:`MAX_YAML_DEPTH` and the values, aliases expanded, by
:data:`MAX_YAML_VALUES`; every problem is a :class:`ConfigError` with a
one-line reason that starts with the file name.
"""

from __future__ import annotations

import os
from typing import Any, Final

import yaml

from . import config_fields as fields
from .config_fields import ConfigError
from .errors import abridge, excerpt

__all__ = ["MAX_YAML_BYTES", "MAX_YAML_DEPTH", "MAX_YAML_VALUES", "read_yaml_file"]


#: The largest config file read (homeserver.yaml files are tens of kB).
MAX_YAML_BYTES: Final = 1 << 20
#: The deepest nesting of lists and mappings a config file may have.
MAX_YAML_DEPTH: Final = 64
#: The most values (scalars, lists, mappings) a file may hold, counted with
#: every alias expanded, so an alias bomb ("billion laughs") is refused.
MAX_YAML_VALUES: Final = 100_000


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses nesting deeper than :data:`MAX_YAML_DEPTH`.

    PyYAML composes and constructs recursively: without a bound a file of a
    few thousand ``[`` ends in a RecursionError instead of an error message.
    """

    _depth = 0
    _composed = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        self._composed += 1
        try:
            if self._composed > MAX_YAML_VALUES:
                # Stop early: composing a huge flat list costs time and memory.
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"more than {MAX_YAML_VALUES:,} values",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested deeper than {MAX_YAML_DEPTH} levels",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _UniqueKeyLoader(_BoundedLoader):
    """Also refuses duplicate keys: PyYAML would keep the last one silently,
    hiding half of what the user wrote."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Any:
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:  # unhashable; construct_mapping reports it
            continue
        if duplicate:
            shown = excerpt(key) if isinstance(key, str) else fields.describe(key)
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {shown}", key_node.start_mark
            )
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_size(root: yaml.Node) -> None:
    """Count the values with aliases expanded; refuse recursive aliases and bombs."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # the nodes on the current path
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            size = 1 + sum(sizes[id(child)] for child in _children(node))
            if size > MAX_YAML_VALUES:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"more than {MAX_YAML_VALUES:,} values with aliases expanded",
                    node.start_mark,
                )
            sizes[key] = size
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise yaml.composer.ComposerError(
                None, None, "an alias refers to a node that contains it", node.start_mark
            )
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)


def read_yaml_file(path: str | os.PathLike[str], *, unique_keys: bool = True) -> Any:
    """Read one YAML document from a file, within bounds; the data, or None if empty.

    Every problem raises :class:`ConfigError` with an empty key path and a
    one-line reason starting with the file name: a missing, unreadable or
    non-regular file, more than :data:`MAX_YAML_BYTES`, binary or non-UTF-8
    content, YAML syntax, nesting deeper than :data:`MAX_YAML_DEPTH`, more
    than :data:`MAX_YAML_VALUES` values (aliases expanded), recursive aliases,
    duplicate keys (with ``unique_keys``), a value YAML cannot build.
    """
    name = os.fspath(path)
    shown = abridge(name)
    try:
        with open(name, "rb") as handle:
            raw = handle.read(MAX_YAML_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError((), f"{shown}: no such file") from None
    except IsADirectoryError:
        raise ConfigError((), f"{shown}: is a directory, not a config file") from None
    except OSError as e:
        raise ConfigError((), f"{shown}: cannot read: {e.strerror or e}") from None
    if len(raw) > MAX_YAML_BYTES:
        raise ConfigError(
            (), f"{shown}: larger than {MAX_YAML_BYTES >> 20} MiB, too large for a config file"
        )
    if b"\0" in raw:
        raise ConfigError(
            (), f"{shown}: binary content (a NUL byte at byte {raw.index(0)}), not YAML text"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError((), f"{shown}: not UTF-8 text (byte {e.start})") from None
    loader = (_UniqueKeyLoader if unique_keys else _BoundedLoader)(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_size(node)
        return loader.construct_document(node)
    except yaml.YAMLError as e:
        raise ConfigError((), f"{shown}: {_yaml_reason(e)}") from None
    except (ValueError, OverflowError) as e:
        # A scalar that resolves to a type it does not fit: 2001-13-01 as a
        # date, an integer of more than 4,300 digits.
        raise ConfigError((), f"{shown}: a YAML value cannot be read: {_first_line(e)}") from None
    except RecursionError:  # a bound above was not enough; never a traceback
        raise ConfigError((), f"{shown}: YAML nested too deeply") from None
    finally:
        loader.dispose()


def _first_line(error: Exception) -> str:
    lines = str(error).splitlines()
    text = lines[0].partition("; use sys.")[0] if lines else type(error).__name__
    return text if len(text) <= 200 else text[:200] + "..."


def _yaml_reason(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or _first_line(error)
    if len(problem) > 200:
        problem = problem[:200] + "..."
    if mark is None:
        return f"YAML error: {problem}"
    return f"YAML error at line {mark.line + 1}, column {mark.column + 1}: {problem}"
