"""The default labels and the order of severities.

Categories are open: a model trained on an admin's own data predicts that data's
labels. Severities have a fixed order only when they are the default scale; the
signal floors (see :mod:`classifier.signals`) apply on that scale.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "DEFAULT_CATEGORIES",
    "DEFAULT_SEVERITY",
    "SEVERITIES",
    "UNCLASSIFIED",
    "cap_severity",
    "is_default_scale",
    "max_severity",
    "severity_rank",
]

DEFAULT_CATEGORIES: tuple[str, ...] = (
    "billing",
    "delivery",
    "product_quality",
    "refund_return",
    "account_access",
    "technical",
    "service_conduct",
    "privacy_security",
    "safety",
    "other",
)
UNCLASSIFIED = "unclassified"
"""The category of a prediction the model is not confident about (human triage)."""

SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")
"""The default severity scale, least severe first."""

DEFAULT_SEVERITY = "medium"
"""Severity when nothing estimates one (no severity head, no signal, no text).

Medium rather than low: an unknown complaint should not wait behind the ones we
know to be minor, nor jump ahead of the ones we know to be urgent.
"""

_RANK = {name: index for index, name in enumerate(SEVERITIES)}


def severity_rank(severity: str) -> int:
    """Position of ``severity`` on the default scale (case-insensitive), -1 if not on it."""
    return _RANK.get(severity.lower(), -1)


def is_default_scale(labels: Iterable[str]) -> bool:
    """True when every label is one of the default severities (case-insensitive)."""
    return all(severity_rank(label) >= 0 for label in labels)


def max_severity(*severities: str) -> str:
    """The most severe of ``severities`` on the default scale (lower-cased)."""
    known = [s.lower() for s in severities if severity_rank(s) >= 0]
    if not known:
        raise ValueError("no severity on the default scale")
    return max(known, key=severity_rank)


def cap_severity(severity: str, labels: Iterable[str]) -> str:
    """``severity``, lowered to the most severe of ``labels`` when the scale stops short.

    An admin whose data uses only low/medium/high has no "critical": for that scale
    a critical floor means their top level, "high".
    """
    ranks = [severity_rank(label) for label in labels if severity_rank(label) >= 0]
    if not ranks or severity_rank(severity) <= max(ranks):
        return severity.lower()
    return SEVERITIES[max(ranks)]
