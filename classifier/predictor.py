"""The trained classifier as the daemon uses it: mails in, :class:`Prediction` out."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np

from classifier.heads import Head, JointHeads
from classifier.language import detect_languages
from classifier.prediction import Prediction
from classifier.signals import Signal, find_signals
from classifier.taxonomy import (
    DEFAULT_SEVERITY,
    UNCLASSIFIED,
    cap_severity,
    is_default_scale,
    max_severity,
    severity_rank,
)
from classifier.textprep import prepare_text
from classifier.vectorize import HashedFeatures

__all__ = ["DEFAULT_ABSTAIN_BELOW", "ComplaintClassifier"]

DEFAULT_ABSTAIN_BELOW = 0.35
# Only a confident detection of a language the model never saw makes it abstain;
# short or mixed texts are often misdetected, and the model may still be right.
_FOREIGN_LANGUAGE_CONFIDENCE = 0.9
_RULE_CONFIDENCE = 1.0
# Texts hashed and scored together: the arrays of a chunk stay in the CPU cache.
_CHUNK = 256


class ComplaintClassifier:
    """Category and severity for complaint mails, from a category head, an optional
    severity head and the severity signals.

    Build one with :func:`classifier.train_model` or :func:`classifier.load_model`.
    Thread-safe for prediction (nothing is mutated); ``abstain_below`` may be changed.
    """

    def __init__(
        self,
        *,
        features: HashedFeatures,
        category: Head,
        severity: Head | None,
        languages: Sequence[str],
        version: str,
        abstain_below: float = DEFAULT_ABSTAIN_BELOW,
    ) -> None:
        self._features = features
        self._category = category
        self._severity_head = severity
        self._categories = category.classes
        self._severities = severity.classes if severity is not None else None
        # Signal floors live on the default scale; a custom severity scale has no
        # order we know, so floors are recorded but do not change its labels.
        self._floors_apply = self._severities is None or is_default_scale(self._severities)
        self._languages = tuple(languages)
        self.version = version
        self.abstain_below = abstain_below

    @property
    def abstain_below(self) -> float:
        """Category confidence below which the category is ``unclassified``."""
        return self._abstain_below

    @abstain_below.setter
    def abstain_below(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError("abstain_below must be between 0 and 1")
        self._abstain_below = float(value)

    @property
    def categories(self) -> tuple[str, ...]:
        """The labels the category model predicts."""
        return self._categories

    @property
    def severities(self) -> tuple[str, ...] | None:
        """The labels of the severity model, or None when it has none (signals only)."""
        return self._severities

    @property
    def languages(self) -> tuple[str, ...]:
        """Languages of the training data (ISO 639-1); others make the model abstain."""
        return self._languages

    @property
    def features(self) -> HashedFeatures:
        """How texts are hashed into counts (shared by both heads)."""
        return self._features

    @property
    def heads(self) -> dict[str, Head | None]:
        """The fitted heads (``severity`` is None without a severity head)."""
        return {"category": self._category, "severity": self._severity_head}

    def predict(self, subject: str, body: str) -> Prediction:
        """The prediction for one mail (``body`` may still contain quotes and signature)."""
        return self.predict_many([(subject, body)])[0]

    def predict_many(self, items: Sequence[tuple[str, str]]) -> list[Prediction]:
        """Predictions for many ``(subject, body)`` pairs at once (much faster per mail)."""
        return self.predict_prepared([prepare_text(subject, body) for subject, body in items])

    def predict_prepared(self, texts: Sequence[str], *, abstain: bool = True) -> list[Prediction]:
        """Predictions for texts already passed through :func:`~classifier.prepare_text`.

        With ``abstain=False`` the category is always the model's best guess (for
        evaluation).
        """
        present = [index for index, text in enumerate(texts) if text]
        predictions = [self._empty()] * len(texts)
        if not present:
            return predictions
        batch = [texts[index] for index in present]
        category_probs, severity_probs = self._probabilities(batch)
        best = category_probs.argmax(axis=1)
        confidences = category_probs[np.arange(len(batch)), best].tolist()
        best_categories = best.tolist()
        languages = detect_languages(batch)
        foreign = [self._foreign(language, confidence) for language, confidence in languages]
        severities = self._severities_of(severity_probs, batch, foreign)
        for row, index in enumerate(present):
            language, _language_confidence = languages[row]
            category = self._categories[best_categories[row]]
            confidence = confidences[row]
            if abstain and (confidence < self._abstain_below or foreign[row]):
                category = UNCLASSIFIED
            severity, severity_confidence, signals = severities[row]
            predictions[index] = Prediction(
                category=category,
                category_confidence=confidence,
                severity=severity,
                severity_confidence=severity_confidence,
                language=language,
                signals=signals,
                model_version=self.version,
            )
        return predictions

    def _empty(self) -> Prediction:
        """No text at all: nothing to classify, the default severity, no language."""
        return Prediction(UNCLASSIFIED, 0.0, DEFAULT_SEVERITY, 0.0, None, (), self.version)

    def _foreign(self, language: str | None, confidence: float) -> bool:
        return (
            language is not None
            and bool(self._languages)
            and language not in self._languages
            and confidence >= _FOREIGN_LANGUAGE_CONFIDENCE
        )

    @cached_property
    def _scorer(self) -> JointHeads:
        # Built on first use (dense weight matrices, a few tens of MB): loading stays fast.
        heads = (self._category,)
        return JointHeads(heads if self._severity_head is None else (*heads, self._severity_head))

    def _probabilities(
        self, texts: Sequence[str]
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]:
        """Category and severity probabilities, hashed and scored in cache-sized chunks."""
        parts = [
            self._scorer.probabilities(self._features.transform(texts[start : start + _CHUNK]))
            for start in range(0, len(texts), _CHUNK)
        ]
        category = np.concatenate([part[0] for part in parts])
        severity = None if self._severity_head is None else np.concatenate([p[1] for p in parts])
        return category, severity

    def _severities_of(
        self,
        probabilities: np.ndarray[Any, Any] | None,
        texts: Sequence[str],
        foreign: Sequence[bool],
    ) -> list[tuple[str, float, tuple[str, ...]]]:
        """``(severity, confidence, signal names)`` of each text.

        On the default scale, a text in a language the model was not trained on
        gets no estimate from the model (it cannot read it: a fire reported in
        Japanese must not come out a confident ``low``), only the default
        severity and the signal floors.
        """
        found = [find_signals(text) for text in texts]
        if probabilities is None or self._severities is None:
            return [(*self._rule_severity(signals), _names(signals)) for signals in found]
        indices = probabilities.argmax(axis=1)
        confidences = probabilities[np.arange(len(texts)), indices].tolist()
        best = indices.tolist()
        results = []
        for row, signals in enumerate(found):
            if foreign[row] and self._floors_apply:  # a custom scale has no default to fall to
                results.append((*self._rule_severity(signals), _names(signals)))
                continue
            estimate = self._severities[best[row]]
            confidence = confidences[row]
            if self._floors_apply and not signals:
                estimate = estimate.lower()  # the default scale is reported in lower case
            elif self._floors_apply:
                floors = [signal.floor for signal in signals]
                final = cap_severity(max_severity(estimate, *floors), self._severities)
                if severity_rank(final) > severity_rank(estimate):
                    confidence = _RULE_CONFIDENCE
                estimate = final
            results.append((estimate, confidence, _names(signals)))
        return results

    def _rule_severity(self, signals: list[Signal]) -> tuple[str, float]:
        """Severity without the model: the highest floor above the default, else the default."""
        if signals and self._floors_apply:
            floor = max_severity(*(signal.floor for signal in signals))
            if severity_rank(floor) > severity_rank(DEFAULT_SEVERITY):
                return floor, _RULE_CONFIDENCE
        return DEFAULT_SEVERITY, 0.0


def _names(signals: list[Signal]) -> tuple[str, ...]:
    return tuple(signal.name for signal in signals)
