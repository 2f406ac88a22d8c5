"""The daemon's exception hierarchy: one base, split by whether a retry can help."""

from __future__ import annotations

__all__ = ["ComplaintdError", "ConfigError", "PermanentError", "TransientError"]


class ComplaintdError(Exception):
    """Base of every error complaintd raises on purpose."""


class TransientError(ComplaintdError):
    """A failure that may go away by itself (network, lock, server restart): retry later."""


class PermanentError(ComplaintdError):
    """A failure that the same input will always hit: record it, do not retry."""


class ConfigError(PermanentError):
    """The configuration is invalid; ``problems`` lists each as ``key: what is wrong``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
