"""Recording a classifier prediction on a ticket (new tickets and customer follow-ups)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from classifier.language import detect_language
from daemon.parsing import ParsedMessage
from daemon.records import new_event
from models import Ticket

if TYPE_CHECKING:
    from classifier import Prediction

__all__ = ["SEVERITY_ORDER", "Classify", "apply_prediction"]

Classify = Callable[[Sequence[tuple[str, str]]], "list[Prediction] | None"]
"""Classifies (subject, new text) pairs; None when no model is available."""

SEVERITY_ORDER = {"low": 0, "medium": 1, "high": 2, "critical": 3}


def apply_prediction(
    session: Session,
    ticket: Ticket,
    parsed: ParsedMessage,
    prediction: Prediction | None,
    now: datetime,
    *,
    new: bool,
) -> None:
    """Record a prediction on a ticket and in its history.

    A new ticket takes the prediction as it is. A follow-up never lowers the
    severity (a calm third mail does not undo an earlier legal threat), adds
    its signals, and changes the category only of an unclassified ticket.
    """
    if prediction is None:
        if ticket.language is None:
            ticket.language = detect_language(f"{parsed.subject}\n{parsed.text}")
        return
    if new or ticket.language is None:
        ticket.language = prediction.language
    if new or ticket.category in (None, "unclassified"):
        ticket.category = prediction.category
        ticket.category_confidence = prediction.category_confidence
    old_rank = SEVERITY_ORDER.get(ticket.severity or "", -1)
    if new or SEVERITY_ORDER.get(prediction.severity, -1) > old_rank:
        ticket.severity = prediction.severity
        ticket.severity_confidence = prediction.severity_confidence
    ticket.signals = sorted({*(ticket.signals or []), *prediction.signals})
    ticket.model_version = prediction.model_version
    session.add(
        new_event(
            ticket,
            now,
            "classified",
            "system",
            {
                "category": prediction.category,
                "category_confidence": round(prediction.category_confidence, 4),
                "severity": prediction.severity,
                "severity_confidence": round(prediction.severity_confidence, 4),
                "signals": list(prediction.signals),
                "language": prediction.language,
                "model_version": prediction.model_version,
                "on": "new ticket" if new else "customer follow-up",
            },
        )
    )
