"""The routing package's one exception hierarchy.

Everything in :mod:`routing` is deterministic, so every error here is
*permanent*: retrying the same call with the same values fails the same way.
(Configuration problems are reported by pydantic as ``ValidationError`` with
the key path, not by these classes.)
"""

from __future__ import annotations

__all__ = ["CalendarError", "RoutingError", "TemplateError"]


class RoutingError(Exception):
    """Base class of every error raised by :mod:`routing`."""


class CalendarError(RoutingError, ValueError):
    """Business-time arithmetic got a value it cannot work with.

    Raised for naive datetimes, negative durations and calendars that are
    never open within the search horizon.
    """


class TemplateError(RoutingError):
    """A template is missing, fails to compile or fails to render."""
