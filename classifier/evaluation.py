"""Scoring: a saved model on labelled data, or the training pipeline by cross-validation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from classifier.data import LabelledExample, check_labels
from classifier.errors import DataError
from classifier.heads import ModelConfig
from classifier.predictor import ComplaintClassifier
from classifier.taxonomy import is_default_scale
from classifier.textprep import prepare_text
from classifier.training import DEFAULT_CONFIG, cross_validate, metrics

__all__ = ["evaluate"]

Head = Literal["category", "severity"]


def evaluate(
    examples: Sequence[LabelledExample],
    *,
    model: ComplaintClassifier | None = None,
    cv_folds: int | None = None,
    head: Head = "category",
    seed: int = 0,
    progress: bool = False,
    config: ModelConfig = DEFAULT_CONFIG,
) -> dict[str, Any]:
    """``{"n", "accuracy", "macro_f1", "per_class": {label: {precision, recall, f1, support}}}``.

    With ``cv_folds``: stratified, seeded cross-validation of the whole training
    pipeline on ``examples``, whatever their labels. With ``model``: that model's
    predictions, without abstention (its best guess), against the labels; for the
    severity head, the final severity (signal floors included).

    Raises :class:`DataError` for unusable data (one label, a missing severity, too
    few examples per label for the folds).
    """
    truth = _labels(examples, head)
    texts = [prepare_text(example.subject, example.body) for example in examples]
    if cv_folds is not None and model is None:
        if cv_folds < 2:
            raise DataError("cross-validation needs at least 2 folds")
        check_labels(truth, f"{head} labels")
        result = cross_validate(
            config.features.transform(texts), truth, seed=seed, folds=cv_folds,
            progress=progress, config=config, desc=f"cross-validating {head}",
        )  # fmt: skip
        return metrics(list(result.truth), [str(label) for label in result.predicted])
    if model is None or cv_folds is not None:
        raise ValueError("give exactly one of model or cv_folds")
    predictions = model.predict_prepared(texts, abstain=False)
    if head == "category":
        return metrics(truth, [prediction.category for prediction in predictions])
    if model.severities is None or is_default_scale(model.severities):
        truth = [label.lower() for label in truth]
    return metrics(truth, [prediction.severity for prediction in predictions])


def _labels(examples: Sequence[LabelledExample], head: Head) -> list[str]:
    if not examples:
        raise DataError("no examples to evaluate on")
    if head == "category":
        return [example.category for example in examples]
    missing = sum(1 for example in examples if not example.severity)
    if missing:
        raise DataError(f"{missing} example(s) have no severity; cannot score the severity head")
    return [str(example.severity) for example in examples]
