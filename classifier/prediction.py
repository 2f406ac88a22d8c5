"""What the classifier says about one mail."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Prediction"]


@dataclass(frozen=True)
class Prediction:
    """Category and severity of one mail, with calibrated confidences and the reasons.

    ``category`` is ``"unclassified"`` when the model abstained (confidence below the
    threshold, no text, or a language the model was not trained on);
    ``category_confidence`` is still the model's probability for its best guess.
    ``severity_confidence`` is the model's probability for ``severity``, or 1.0
    when a signal's floor set it (``signals`` names why), or 0.0 when nothing
    estimated it and the default applies.
    """

    category: str
    category_confidence: float
    severity: str
    severity_confidence: float
    language: str | None
    signals: tuple[str, ...]
    model_version: str
