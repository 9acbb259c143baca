"""The exception types of the public API."""

from __future__ import annotations

__all__ = ["V6AltError", "V6AltNameError"]


class V6AltError(Exception):
    """Base class of every error raised on purpose by v6alt."""


class V6AltNameError(V6AltError, ValueError):
    """A name, label or address is malformed; the message says what is wrong.

    Raised by every parsing function of the codec and of :mod:`v6alt.names`.
    It subclasses :class:`ValueError` so callers that already catch that keep
    working.
    """
