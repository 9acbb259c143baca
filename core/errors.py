"""The exception types of the public API, and how an error message quotes input."""

from __future__ import annotations

from typing import Final

__all__ = ["EXCERPT_LIMIT", "V6AltError", "V6AltNameError", "abridge", "excerpt"]

#: How many characters of a bad input an error message quotes at most.
EXCERPT_LIMIT: Final = 64


class V6AltError(Exception):
    """Base class of every error raised on purpose by v6alt."""


class V6AltNameError(V6AltError, ValueError):
    """A name, label or address is malformed; the message says what is wrong.

    Raised by every parsing function of the codec and of :mod:`v6alt.names`.
    It subclasses :class:`ValueError` so callers that already catch that keep
    working.
    """


def excerpt(text: str, limit: int = EXCERPT_LIMIT) -> str:
    """``repr(text)``, or for a longer text its first ``limit`` characters and
    the length: an error message quotes input, never echoes it whole."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"


def abridge(text: str, limit: int = 2 * EXCERPT_LIMIT) -> str:
    """``text`` itself, or for a longer one its start and its end around
    ``...``: for file paths, whose end names the file."""
    if len(text) <= limit:
        return text
    keep = limit // 2
    return f"{text[:keep]}...{text[-keep:]} ({len(text):,} characters)"
